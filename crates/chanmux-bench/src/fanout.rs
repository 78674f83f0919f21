//! Fan-out: N clients join one room; one more client sends to it, one
//! message at a time; for each message, the time until the *last* member
//! has it.
//!
//! Speaks the demo's `chat` stream by default: a member sends
//! `{"stream": S, "payload": {"join": ROOM}}` and waits for a reply that
//! mentions `joined`; the sender sends
//! `{"stream": S, "payload": {"room": ROOM, "message": {"round": N}}}` and
//! every member (the sender too) must receive a frame carrying `"round":N`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::idle;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// `ws://127.0.0.1:port/path` (an IP address, so sources can be chosen).
    pub url: String,
    /// Members of the room (the sender is one more).
    pub clients: usize,
    /// Measured messages (one unmeasured warm-up message comes first).
    pub rounds: usize,
    /// The stream that joins and broadcasts.
    pub stream: String,
    /// The room (group) name.
    pub room: String,
    /// Source addresses 127.0.0.1 … 127.0.0.N, as for `idle`.
    pub sources: u8,
    /// How long the last member may take to get a message before the run fails.
    pub timeout: Duration,
    /// Print a progress line to stderr while members join.
    pub progress: bool,
}

/// The outcome, printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutSummary {
    /// Members that joined.
    pub clients: usize,
    /// Measured messages.
    pub rounds: usize,
    /// Median time until the last member had a message.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// The slowest round.
    pub max_ms: f64,
    /// The median divided by the members: the cost per recipient.
    pub per_recipient_us: f64,
}

/// Joins the members, sends the rounds and measures them.
///
/// # Errors
///
/// A bad URL, a member that cannot connect or join (with the reason: a
/// refused connection, too few file descriptors), or a round that does
/// not reach every member within the timeout (a lost message).
pub async fn run(config: &FanoutConfig) -> anyhow::Result<FanoutSummary> {
    let target = idle::target(&config.url)?;
    // Every member reports (round, arrival time) of each message it gets.
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(u64, Instant)>();
    let sources = config.sources.max(1);
    let mut joined = 0;
    while joined < config.clients {
        let batch = 200.min(config.clients - joined);
        let members = futures_util::future::try_join_all(
            (joined..joined + batch).map(|i| join(config, target, i, sources)),
        )
        .await?;
        for mut member in members {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = member.next().await {
                    if let Message::Text(text) = message
                        && let Some(round) = round_of(&text)
                    {
                        let _ = arrivals.send((round, Instant::now()));
                    }
                }
            });
        }
        joined += batch;
        if config.progress && joined % 1000 < batch {
            eprintln!("  … {joined} members joined");
        }
    }
    let mut sender = join(config, target, config.clients, sources).await?;
    let mut last_delivery = Vec::with_capacity(config.rounds);
    for round in 0..=config.rounds as u64 {
        let frame = serde_json::json!({
            "stream": config.stream,
            "payload": {"room": config.room, "message": {"round": round}},
        });
        let sent = Instant::now();
        sender.send(Message::text(frame.to_string())).await?;
        let mut received = 0;
        let mut last = sent;
        while received < config.clients {
            let Ok(Some((r, at))) = tokio::time::timeout(config.timeout, arrived.recv()).await
            else {
                bail!(
                    "round {round}: {received} of {} members got the message within {:?}",
                    config.clients,
                    config.timeout
                );
            };
            if r == round {
                received += 1;
                last = last.max(at);
            }
        }
        // The sender is a member too: take its copy off the socket.
        let _ = tokio::time::timeout(config.timeout, sender.next()).await;
        // Round 0 warms up and is not counted.
        if round > 0 {
            last_delivery.push(last - sent);
        }
    }
    last_delivery.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = percentile(&last_delivery, 0.5);
    Ok(FanoutSummary {
        clients: config.clients,
        rounds: config.rounds,
        p50_ms: ms(p50),
        p99_ms: ms(percentile(&last_delivery, 0.99)),
        max_ms: ms(last_delivery.last().copied().unwrap_or_default()),
        per_recipient_us: p50.as_secs_f64() * 1e6 / config.clients.max(1) as f64,
    })
}

type Client = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects member `i` and joins the room.
async fn join(
    config: &FanoutConfig,
    target: SocketAddr,
    i: usize,
    sources: u8,
) -> anyhow::Result<Client> {
    let mut client = idle::open(&config.url, target, i, sources).await?;
    let frame = serde_json::json!({"stream": config.stream, "payload": {"join": config.room}});
    client.send(Message::text(frame.to_string())).await?;
    let reply = tokio::time::timeout(config.timeout, client.next())
        .await
        .context("no answer to the join")?;
    match reply {
        Some(Ok(Message::Text(text))) if text.contains("joined") => Ok(client),
        other => bail!(
            "joining {:?} on stream {:?} failed: {other:?}",
            config.room,
            config.stream
        ),
    }
}

/// The `round` number inside a broadcast frame, without parsing it all.
fn round_of(text: &str) -> Option<u64> {
    let start = text.find(r#""round":"#)? + r#""round":"#.len();
    let digits = text[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(&text[start..], |end| &text[start..start + end]);
    digits.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_found_in_any_frame_that_carries_them() {
        assert_eq!(
            round_of(r#"{"stream":"chat","payload":{"room":"r","message":{"round":12}}}"#),
            Some(12)
        );
        assert_eq!(round_of(r#"{"round":7}"#), Some(7));
        assert_eq!(round_of(r#"{"joined":"r"}"#), None);
    }
}
