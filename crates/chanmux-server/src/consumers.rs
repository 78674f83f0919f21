//! The consumers of the reference test suite, served by the demo and the
//! conformance example, and the demo's `chat`, `room:{id}` and
//! `ticker:{symbol}`.

use std::time::Duration;

use chanmux::layer::{GroupName, LayerError, MAX_NAME_LEN};
use chanmux::{BoxError, Consumer, Context, GroupError, Text};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

/// `echostream`: sends every payload back unchanged, as a reply (with the
/// frame's `ref`, when it had one).
#[derive(Debug, Default)]
pub struct Echo;

impl Consumer for Echo {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.reply_text(text).await?;
        Ok(())
    }
}

/// `altechostream`: replies `{"received": <payload>, "alt_value": 123}`.
///
/// The payload is embedded as raw JSON, so it keeps its exact text (a parsed
/// value would turn `1e3` into `1000.0`) and the keys keep this order.
#[derive(Debug, Default)]
pub struct AltEcho;

#[derive(Serialize)]
struct AltReply<'a> {
    received: &'a RawValue,
    alt_value: u32,
}

impl Consumer for AltEcho {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let received: &RawValue = serde_json::from_str(text.as_str())?;
        ctx.send_json(&AltReply {
            received,
            alt_value: 123,
        })
        .await?;
        Ok(())
    }
}

/// `closeafterfirst`: echoes once, then closes its stream (code 1000).
#[derive(Debug, Default)]
pub struct CloseAfterFirst;

impl Consumer for CloseAfterFirst {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close().await?;
        Ok(())
    }
}

/// `closewithcode`: echoes once, then closes with 4001 and reason "bye".
#[derive(Debug, Default)]
pub struct CloseWithCode;

impl Consumer for CloseWithCode {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close_with(4001, "bye").await?;
        Ok(())
    }
}

/// `neveraccept` (and `/ws/single/`'s `test`): an echo consumer that never accepts.
#[derive(Debug, Default)]
pub struct NeverAccept;

impl Consumer for NeverAccept {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// `raiseinaccept`: fails in connect.
#[derive(Debug, Default)]
pub struct RaiseInConnect;

impl Consumer for RaiseInConnect {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        Err("Test my error".into())
    }
}

/// `chat`: rooms over the channel layer.
///
/// - `{"join": "<room>"}` joins and answers `{"joined": "<room>"}`;
/// - `{"leave": "<room>"}` leaves and answers `{"left": "<room>"}`;
/// - `{"room": "<room>", "message": <any JSON>}` delivers
///   `{"room": "<room>", "message": <same JSON>}` on this stream to every
///   connection that joined the room, in every process sharing the layer
///   (the sender too, if it joined). Sending to a room one has not joined is
///   allowed.
///
/// Anything else is answered with `{"error": "<what was expected>"}`. Room
/// names are 1–95 ASCII letters, digits, `-`, `_`, `.`; a connection may be
/// in as many rooms as the layer allows per consumer (1,000 by default).
#[derive(Debug, Default)]
pub struct Chat;

#[derive(Deserialize)]
struct ChatRequest<'a> {
    join: Option<String>,
    leave: Option<String>,
    room: Option<String>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Said<'a> {
    room: &'a str,
    message: &'a RawValue,
}

/// Rooms are groups named `chat.<room>`, so a room name may be this long.
const MAX_ROOM_LEN: usize = MAX_NAME_LEN - "chat.".len();

/// The group of a chat room; errors speak of the room name the client sent.
fn room_group(room: &str) -> Result<GroupName, String> {
    if room.is_empty() {
        return Err("a room name cannot be empty".to_owned());
    }
    if room.len() > MAX_ROOM_LEN {
        return Err(format!(
            "room name is {} bytes long; at most {MAX_ROOM_LEN} are allowed",
            room.len()
        ));
    }
    GroupName::new(&format!("chat.{room}")).map_err(|_| {
        format!("room name {room:?} may only hold ASCII letters, digits, '-', '_' and '.'")
    })
}

/// What a client is told when joining fails.
fn join_error(error: &GroupError) -> String {
    match error {
        GroupError::Layer(LayerError::TooManyGroups { limit }) => {
            format!("you may be in at most {limit} rooms; leave one first")
        }
        other => other.to_string(),
    }
}

impl Consumer for Chat {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let request: ChatRequest<'_> = match serde_json::from_str(text.as_str()) {
            Ok(request) => request,
            Err(_) => return reply_error(ctx, "expected an object").await,
        };
        let outcome = match request {
            ChatRequest {
                join: Some(room), ..
            } => match room_group(&room) {
                Ok(group) => match ctx.group_add(group.as_str()).await {
                    Ok(()) => {
                        // In the connection's and the stream's spans.
                        tracing::debug!(%room, "joined a room");
                        Ok(json!({"joined": room}))
                    }
                    Err(e) => return reply_error(ctx, &join_error(&e)).await,
                },
                Err(e) => return reply_error(ctx, &e).await,
            },
            ChatRequest {
                leave: Some(room), ..
            } => match room_group(&room) {
                Ok(group) => ctx
                    .group_discard(group.as_str())
                    .await
                    .map(|()| json!({"left": room})),
                Err(e) => return reply_error(ctx, &e).await,
            },
            ChatRequest {
                room: Some(room),
                message: Some(message),
                ..
            } => {
                let group = match room_group(&room) {
                    Ok(group) => group,
                    Err(e) => return reply_error(ctx, &e).await,
                };
                // The message is passed on as raw JSON: exact text, one serialisation.
                let said = Said {
                    room: &room,
                    message,
                };
                return match ctx.group_send(group.as_str(), &said).await {
                    Ok(()) => Ok(()),
                    Err(e) => reply_error(ctx, &format!("not delivered: {e}")).await,
                };
            }
            _ => {
                return reply_error(
                    ctx,
                    r#"expected {"join"}, {"leave"} or {"room", "message"}"#,
                )
                .await;
            }
        };
        match outcome {
            Ok(reply) => ctx.send_json(&reply).await?,
            Err(e) => reply_error(ctx, &e.to_string()).await?,
        }
        Ok(())
    }
}

async fn reply_error(ctx: &Context, error: &str) -> Result<(), BoxError> {
    ctx.send_json(&json!({"error": error})).await?;
    Ok(())
}

/// `room:{id}`: a room per id. Subscribing (or a first frame) joins it; a
/// data frame to `room:X` reaches every connection on `room:X`, the sender
/// included, as `{"stream": "room:X", "payload": <the same JSON>}`, in every
/// process sharing the layer. Leaving the stream leaves the room.
#[derive(Debug, Default)]
pub struct Room {
    group: String,
}

impl Consumer for Room {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let id = ctx.capture("id").unwrap_or_default();
        // Rooms are groups named `room.<id>`; an id is at most 100 bytes,
        // so a long one may not fit a group name.
        self.group = format!("room.{id}");
        if let Err(e) = ctx.group_add(&self.group).await {
            ctx.refuse_with(match e {
                GroupError::Name(_) => format!(
                    "room id {id:?} is too long; at most {} bytes",
                    MAX_NAME_LEN - "room.".len()
                ),
                other => join_error(&other),
            });
            return Ok(());
        }
        ctx.accept().await?;
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        // The payload goes on as received: exact text, serialised once.
        ctx.group_send_text(&self.group, text).await?;
        Ok(())
    }
}

/// `ticker:{symbol}`: after accepting, pushes `{"symbol": "<symbol>",
/// "seq": n}` with n = 1, 2, 3… every `params.interval_ms` milliseconds
/// (default 1000, at least 50, at most 3,600,000) until the stream ends.
#[derive(Debug, Default)]
pub struct Ticker;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TickerParams {
    interval_ms: Option<u64>,
}

#[derive(Serialize)]
struct Tick<'a> {
    symbol: &'a str,
    seq: u64,
}

/// The ticker's bounds on `interval_ms`.
const TICK_MS: std::ops::RangeInclusive<u64> = 50..=3_600_000;

impl Consumer for Ticker {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let interval_ms = match ctx.params::<TickerParams>() {
            Ok(params) => params.and_then(|p| p.interval_ms).unwrap_or(1000),
            Err(e) => {
                ctx.refuse_with(format!(
                    r#"params must be {{"interval_ms": <milliseconds>}}: {e}"#
                ));
                return Ok(());
            }
        };
        if !TICK_MS.contains(&interval_ms) {
            ctx.refuse_with(format!(
                "interval_ms must be between {} and {}",
                TICK_MS.start(),
                TICK_MS.end()
            ));
            return Ok(());
        }
        ctx.accept().await?;
        let symbol = ctx.capture("symbol").unwrap_or_default().to_owned();
        let pusher = ctx.clone();
        // Stopped when the stream ends, however it ends.
        ctx.spawn(async move {
            let period = Duration::from_millis(interval_ms);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for seq in 1.. {
                ticks.tick().await;
                let tick = Tick {
                    symbol: &symbol,
                    seq,
                };
                if pusher.send_json(&tick).await.is_err() {
                    break;
                }
            }
        });
        Ok(())
    }
}
