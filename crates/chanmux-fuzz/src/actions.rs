//! Client action sequences through the in-process communicator.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use chanmux::layer::{ChannelLayer, GroupName, InMemoryLayer, Message};
use chanmux::testing::{Communicator, ConnectOutcome, Output, ReceiveError};
use chanmux::{BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, ErrorCode, Text};
use chanmux_core::wrap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::json::Json;
use crate::panics;

/// At most this many actions are run per input, so one run stays short and
/// the `staller` stream's queue (64 by default) can never fill up.
pub const MAX_ACTIONS: usize = 64;

/// How long the client waits for more output after each action. Under the
/// paused clock this elapses as soon as the runtime is idle.
const QUIET: Duration = Duration::from_millis(20);

/// How long the `staller` stream sleeps in `receive_text`: longer than any
/// run, so it is always cut off by the close timeout.
const STALL: Duration = Duration::from_secs(24 * 3600);

/// The group the `member` stream joins.
const GROUP: &str = "fuzz-room";

/// The demultiplexer's streams, as the fuzzer picks them.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Echoes every payload.
    Echo,
    /// Echoes its first payload, then closes its stream.
    Closer,
    /// Panics on its first payload (the panic closes only its stream).
    Panicker,
    /// Refuses in connect, so it never accepts frames.
    Refuser,
    /// Sleeps for a day in `receive_text`, never answering.
    Staller,
    /// Joins a group in connect; relays each payload through the group to
    /// itself and sends it back from its `event` handler.
    Member,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Echo => "echo",
            Target::Closer => "closer",
            Target::Panicker => "panicker",
            Target::Refuser => "refuser",
            Target::Staller => "staller",
            Target::Member => "member",
        }
    }

    fn from_name(name: &str) -> Option<Target> {
        [
            Target::Echo,
            Target::Closer,
            Target::Panicker,
            Target::Refuser,
            Target::Staller,
            Target::Member,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// How a valid data frame is written: the same envelope in several spellings.
#[derive(Arbitrary, Debug, Clone)]
pub struct Layout {
    /// `payload` before `stream`.
    payload_first: bool,
    /// Spaces and newlines between tokens, and a pretty-printed payload.
    spaced: bool,
    /// The stream name's first character as a `\uXXXX` escape.
    escape_name: bool,
    /// A `stream` field naming another stream before the real one (the last wins).
    decoy_stream: bool,
    /// An extra field, which is ignored.
    extra: Option<Json>,
}

/// One thing the client does.
#[derive(Arbitrary, Debug, Clone)]
pub enum Action {
    /// Sends a valid data frame to a stream.
    Send {
        /// The stream.
        target: Target,
        /// The payload.
        payload: Json,
        /// How the frame is spelt.
        layout: Layout,
    },
    /// Sends a valid frame cut short, or followed by more text (`invalid_json`).
    InvalidJson {
        /// The payload of the frame before it is broken.
        payload: Json,
        /// Where it is cut (modulo its length), unless `trailing`.
        cut: u16,
        /// Appends text after the frame instead of cutting it.
        trailing: bool,
    },
    /// Sends JSON that is not an object (`not_an_object`).
    NotAnObject(Json),
    /// Sends an object with a payload but no string `stream` (`missing_stream`).
    MissingStream {
        /// The payload.
        payload: Json,
        /// A non-string `stream` value, or none.
        stream: Option<Json>,
    },
    /// Sends `{"stream": <target>}` (`missing_payload`).
    MissingPayload(Target),
    /// Sends a frame to a stream that does not exist (`unknown_stream`).
    UnknownStream {
        /// The name (a known name gets a prefix).
        name: String,
        /// The payload.
        payload: Json,
    },
    /// Sends any text; the expected answer is worked out from serde_json's
    /// reading of it.
    RawText(String),
    /// Sends a binary message (`binary_not_supported`).
    Binary(Vec<u8>),
    /// Lets the paused clock run for this many milliseconds.
    Advance(u16),
    /// Closes from the client with this code and waits for the server.
    Close(u16),
    /// Drops the connection without a close frame and waits for the server.
    Abort,
    /// Drops the communicator without waiting and connects a new one.
    Reconnect,
}

/// Decodes `data` into at most [`MAX_ACTIONS`] actions and runs them with
/// [`run_actions`]. Inputs that decode to nothing run a plain connect and
/// close.
///
/// # Panics
///
/// When an invariant breaks (see [`run_actions`]).
pub fn actions(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut list = Vec::new();
    while list.len() < MAX_ACTIONS {
        match Action::arbitrary(&mut u) {
            Ok(action) => list.push(action),
            Err(_) => break,
        }
        if u.is_empty() {
            break;
        }
    }
    run_actions(&list);
}

/// Runs `actions` (at most [`MAX_ACTIONS`] of them) on a current-thread Tokio
/// runtime with a paused clock, through a `Communicator` against a
/// demultiplexer with the streams of [`Target`] and an `InMemoryLayer`.
///
/// After each action it collects what the server sent until the client has
/// been idle for 20 ms (virtual) and checks that:
/// - every connect is accepted (`echo` accepts; `refuser` refuses);
/// - a data frame to `echo` (or `member`, through the group) gets exactly its
///   echo, byte for byte `{"stream":"<name>","payload":<payload text>}`;
///   `closer` echoes once, then answers `stream_not_accepting`, as does
///   `panicker` after its first frame and `refuser` always; `staller` never
///   answers;
/// - every invalid frame gets exactly one error frame with the README's code
///   and stream (`null` when the frame named none), and no `payload` key;
/// - nothing else arrives (no close: `echo` never closes), and no panic
///   other than the `panicker`'s deliberate one happens anywhere;
/// - once a connection has ended (close, abort, or the end of the run) and
///   the close timeout has passed, the layer holds no channel, group or
///   membership.
///
/// # Panics
///
/// When an invariant breaks.
pub fn run_actions(actions: &[Action]) {
    panics::install_hook();
    let before = panics::unexpected();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(Session::new().run(&actions[..actions.len().min(MAX_ACTIONS)]));
    drop(runtime);
    assert_eq!(
        panics::unexpected(),
        before,
        "a panic other than the panicker's deliberate one happened"
    );
}

/// What one action should make the server send.
#[derive(Debug)]
enum Expected {
    /// Nothing.
    Nothing,
    /// This exact text.
    Text(String),
    /// A data frame on `stream` whose payload is equal (as JSON) to `payload`.
    Data { stream: String, payload: Value },
    /// A text frame equal (as JSON) to this value.
    Json(Value),
    /// An error frame.
    Error {
        code: ErrorCode,
        stream: Option<String>,
    },
}

/// The live connection and what the model knows about its streams.
struct Connection {
    comm: Communicator,
    closer_open: bool,
    panicker_open: bool,
}

struct Session {
    layer: InMemoryLayer,
    config: ConnectionConfig,
    connection: Option<Connection>,
    step: usize,
}

impl Session {
    fn new() -> Self {
        Session {
            layer: InMemoryLayer::new(),
            config: ConnectionConfig::default(),
            connection: None,
            step: 0,
        }
    }

    async fn run(mut self, actions: &[Action]) {
        for action in actions {
            self.step += 1;
            self.act(action).await;
        }
        if let Some(mut connection) = self.connection.take() {
            connection.comm.disconnect(1000).await;
            self.check_layer_empty().await;
        }
    }

    async fn connect(&mut self) -> &mut Connection {
        if self.connection.is_none() {
            let demux = Demultiplexer::builder()
                .stream("echo", || Echo)
                .stream("closer", || Closer)
                .stream("panicker", || Panicker)
                .stream("refuser", || Refuser)
                .stream("staller", || Staller)
                .stream("member", || Member)
                .channel_layer(self.layer.clone())
                .build();
            let mut comm = Communicator::new(demux, "/ws/")
                .config(self.config.clone())
                .receive_timeout(QUIET);
            let outcome = comm.connect().await;
            assert_eq!(
                outcome,
                ConnectOutcome::Accepted { subprotocol: None },
                "step {}: connect",
                self.step
            );
            self.connection = Some(Connection {
                comm,
                closer_open: true,
                panicker_open: true,
            });
        }
        self.connection.as_mut().expect("connected above")
    }

    async fn act(&mut self, action: &Action) {
        let step = self.step;
        match action {
            Action::Send {
                target,
                payload,
                layout,
            } => {
                let payload = payload.to_value();
                let payload_text = if layout.spaced {
                    serde_json::to_string_pretty(&payload)
                } else {
                    serde_json::to_string(&payload)
                }
                .expect("a value serialises");
                let frame = data_frame(target.name(), &payload_text, layout);
                let connection = self.connect().await;
                let expected = connection.expect_data(*target, &payload_text);
                connection.comm.send_text_to(&frame).await;
                connection.check(step, &frame, expected).await;
            }
            Action::InvalidJson {
                payload,
                cut,
                trailing,
            } => {
                let payload = serde_json::to_string(&payload.to_value()).expect("serialises");
                let mut frame = wrap("echo", &payload);
                if *trailing {
                    frame.push_str(" x");
                } else {
                    let mut at = usize::from(*cut) % frame.len();
                    while !frame.is_char_boundary(at) {
                        at -= 1;
                    }
                    frame.truncate(at);
                }
                self.send_error_case(&frame, ErrorCode::InvalidJson, None)
                    .await;
            }
            Action::NotAnObject(json) => {
                let value = match json.to_value() {
                    Value::Object(object) => Value::Array(vec![Value::Object(object)]),
                    other => other,
                };
                self.send_error_case(&value.to_string(), ErrorCode::NotAnObject, None)
                    .await;
            }
            Action::MissingStream { payload, stream } => {
                let mut object = Map::new();
                if let Some(stream) = stream {
                    let stream = match stream.to_value() {
                        Value::String(_) => Value::Null,
                        other => other,
                    };
                    object.insert("stream".into(), stream);
                }
                object.insert("payload".into(), payload.to_value());
                let frame = Value::Object(object).to_string();
                self.send_error_case(&frame, ErrorCode::MissingStream, None)
                    .await;
            }
            Action::MissingPayload(target) => {
                let frame = serde_json::json!({ "stream": target.name() }).to_string();
                self.send_error_case(&frame, ErrorCode::MissingPayload, Some(target.name()))
                    .await;
            }
            Action::UnknownStream { name, payload } => {
                let name = if Target::from_name(name).is_some() {
                    format!("x{name}")
                } else {
                    name.clone()
                };
                let frame = serde_json::json!({ "stream": name, "payload": payload.to_value() })
                    .to_string();
                self.send_error_case(&frame, ErrorCode::UnknownStream, Some(&name))
                    .await;
            }
            Action::RawText(text) => {
                let connection = self.connect().await;
                let Some(expected) = connection.expect_raw(text) else {
                    return;
                };
                connection.comm.send_text_to(text).await;
                connection.check(step, text, expected).await;
            }
            Action::Binary(data) => {
                let connection = self.connect().await;
                connection.comm.send_binary_to(data.clone()).await;
                let expected = Expected::Error {
                    code: ErrorCode::BinaryNotSupported,
                    stream: None,
                };
                connection.check(step, "<binary>", expected).await;
            }
            Action::Advance(ms) => {
                let wait = Duration::from_millis(u64::from(*ms));
                match &mut self.connection {
                    // A client keeps reading while time passes, as a real
                    // one does, and so answers the server's pings.
                    Some(connection) => {
                        let quiet = connection.comm.receive_nothing_within(wait).await;
                        assert!(
                            quiet,
                            "step {step}: a message arrived during a {wait:?} wait"
                        );
                    }
                    None => tokio::time::sleep(wait).await,
                }
            }
            Action::Close(code) => {
                if let Some(mut connection) = self.connection.take() {
                    connection.comm.disconnect(*code).await;
                    self.check_layer_empty().await;
                }
            }
            Action::Abort => {
                if let Some(mut connection) = self.connection.take() {
                    connection.comm.abort().await;
                    self.check_layer_empty().await;
                }
            }
            Action::Reconnect => {
                // The old server notices its client vanished and ends on its
                // own, within the close timeout.
                drop(self.connection.take());
                self.connect().await;
            }
        }
    }

    async fn send_error_case(&mut self, frame: &str, code: ErrorCode, stream: Option<&str>) {
        let step = self.step;
        let connection = self.connect().await;
        let expected = Expected::Error {
            code,
            stream: echoed(stream),
        };
        connection.comm.send_text_to(frame).await;
        connection.check(step, frame, expected).await;
    }

    /// Every connection so far has ended: after the close timeout, nothing
    /// may be left in the layer.
    async fn check_layer_empty(&self) {
        tokio::time::sleep(self.config.close_timeout + Duration::from_secs(1)).await;
        let stats = self.layer.stats();
        assert_eq!(
            (stats.channels, stats.groups, stats.memberships),
            (0, 0, 0),
            "step {}: the layer still holds {stats:?} after every connection ended",
            self.step
        );
    }
}

impl Connection {
    /// The answer to a valid data frame for `target`, updating the model.
    fn expect_data(&mut self, target: Target, payload: &str) -> Expected {
        let name = target.name();
        let not_accepting = Expected::Error {
            code: ErrorCode::StreamNotAccepting,
            stream: Some(name.to_owned()),
        };
        match target {
            Target::Echo | Target::Member => Expected::Text(wrap(name, payload)),
            Target::Closer if self.closer_open => {
                self.closer_open = false;
                Expected::Text(wrap(name, payload))
            }
            Target::Panicker if self.panicker_open => {
                self.panicker_open = false;
                Expected::Nothing
            }
            Target::Closer | Target::Panicker | Target::Refuser => not_accepting,
            Target::Staller => Expected::Nothing,
        }
    }

    /// The answer to any text, from serde_json's reading of it; `None` when
    /// serde_json cannot read grammatical JSON (nesting over 128, a number
    /// out of `f64` range, an unpaired surrogate escape), so the text is not
    /// sent.
    fn expect_raw(&mut self, text: &str) -> Option<Expected> {
        let error = |code, stream: Option<&str>| {
            Some(Expected::Error {
                code,
                stream: echoed(stream),
            })
        };
        let value = match crate::json::read_json(text) {
            Ok(value) => value,
            Err(e) if crate::envelope::beyond_oracle(&e) => return None,
            Err(_) => return error(ErrorCode::InvalidJson, None),
        };
        let Some(object) = value.as_object() else {
            return error(ErrorCode::NotAnObject, None);
        };
        // Version 2 (PROTOCOL.md): a `ref` is checked before anything else.
        // A valid one comes back on errors and replies, which this model
        // does not follow: such frames are not sent.
        if object.contains_key("ref") {
            if crate::envelope::ref_is_valid(text, object) {
                return None;
            }
            let named = match object.get("stream") {
                Some(stream) => stream.as_str(),
                None => object
                    .get("subscribe")
                    .or_else(|| object.get("unsubscribe"))
                    .and_then(Value::as_str),
            };
            return error(ErrorCode::InvalidRef, named);
        }
        if !object.contains_key("stream") {
            // A subscribe or unsubscribe changes which streams run, which
            // this model does not follow: not sent. A ping is answered.
            if object.contains_key("subscribe") || object.contains_key("unsubscribe") {
                return None;
            }
            if let Some(ping) = object.get("ping") {
                return Some(Expected::Json(serde_json::json!({ "pong": ping })));
            }
        }
        let Some(stream) = object.get("stream").and_then(Value::as_str) else {
            return error(ErrorCode::MissingStream, None);
        };
        let Some(payload) = object.get("payload") else {
            return error(ErrorCode::MissingPayload, Some(stream));
        };
        let Some(target) = Target::from_name(stream) else {
            return error(ErrorCode::UnknownStream, Some(stream));
        };
        // The reply carries the payload's own text, which the oracle does
        // not keep: compare it as JSON instead.
        Some(match self.expect_data(target, "null") {
            Expected::Text(_) => Expected::Data {
                stream: stream.to_owned(),
                payload: payload.clone(),
            },
            other => other,
        })
    }

    /// Collects what the server sends until it is quiet, and compares.
    async fn check(&mut self, step: usize, sent: &str, expected: Expected) {
        let mut outputs = Vec::new();
        loop {
            match self.comm.receive_output().await {
                Ok(output) => outputs.push(output),
                Err(ReceiveError::Timeout(_)) => break,
                Err(e) => panic!("step {step}: after sending {sent:?}: {e} (got {outputs:?})"),
            }
        }
        let context =
            || format!("step {step}: sent {sent:?}, expected {expected:?}, got {outputs:?}");
        match (&expected, outputs.as_slice()) {
            (Expected::Nothing, []) => {}
            (Expected::Text(want), [Output::Text(got)]) => {
                assert_eq!(got, want, "{}", context());
            }
            (Expected::Json(want), [Output::Text(got)]) => {
                let value = crate::json::read_json(got)
                    .unwrap_or_else(|e| panic!("{}: answer is not JSON ({e})", context()));
                assert_eq!(&value, want, "{}", context());
            }
            (Expected::Data { stream, payload }, [Output::Text(got)]) => {
                let value = crate::json::read_json(got)
                    .unwrap_or_else(|e| panic!("{}: reply is not JSON ({e})", context()));
                let want = serde_json::json!({ "stream": stream, "payload": payload });
                assert_eq!(value, want, "{}", context());
            }
            (Expected::Error { code, stream }, [Output::Text(got)]) => {
                check_error_frame(got, *code, stream.as_deref(), &context);
            }
            _ => panic!("{}", context()),
        }
    }
}

/// The `stream` an error frame names: names over
/// [`MAX_ECHOED_NAME`](chanmux::core::MAX_ECHOED_NAME) bytes are never echoed.
fn echoed(stream: Option<&str>) -> Option<String> {
    stream
        .filter(|name| name.len() <= chanmux::core::MAX_ECHOED_NAME)
        .map(str::to_owned)
}

/// An error frame is exactly `{"error": {"code", "message"}, "stream"}`.
fn check_error_frame(
    frame: &str,
    code: ErrorCode,
    stream: Option<&str>,
    context: &dyn Fn() -> String,
) {
    let value = crate::json::read_json(frame)
        .unwrap_or_else(|e| panic!("{}: error frame is not JSON ({e})", context()));
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{}: error frame is not an object", context()));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "stream"], "{}", context());
    assert_eq!(
        value["error"]["code"].as_str(),
        Some(code.as_str()),
        "{}",
        context()
    );
    assert!(
        value["error"]["message"].is_string(),
        "{}: no message",
        context()
    );
    assert_eq!(
        value["error"].as_object().map(Map::len),
        Some(2),
        "{}",
        context()
    );
    let want = stream.map_or(Value::Null, |s| Value::String(s.to_owned()));
    assert_eq!(value["stream"], want, "{}", context());
}

/// Writes a data frame for `stream` in the spelling `layout` asks for.
fn data_frame(stream: &str, payload: &str, layout: &Layout) -> String {
    let (colon, comma) = if layout.spaced {
        (" : ", " ,\n ")
    } else {
        (":", ",")
    };
    let name = if layout.escape_name {
        let mut chars = stream.chars();
        let first = chars.next().expect("stream names are not empty");
        format!("\"\\u{:04x}{}\"", u32::from(first), chars.as_str())
    } else {
        serde_json::to_string(stream).expect("a string serialises")
    };
    let mut fields = Vec::new();
    if layout.decoy_stream {
        fields.push(format!("\"stream\"{colon}\"refuser\""));
    }
    if let Some(extra) = &layout.extra {
        fields.push(format!("\"extra\"{colon}{}", extra.to_value()));
    }
    let stream_field = format!("\"stream\"{colon}{name}");
    let payload_field = format!("\"payload\"{colon}{payload}");
    if layout.payload_first {
        fields.push(payload_field);
        fields.push(stream_field);
    } else {
        fields.push(stream_field);
        fields.push(payload_field);
    }
    if layout.spaced {
        format!("{{ {} }}", fields.join(comma))
    } else {
        format!("{{{}}}", fields.join(comma))
    }
}

/// Echoes every payload.
struct Echo;

impl Consumer for Echo {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

/// Echoes its first payload, then closes its stream.
struct Closer;

impl Consumer for Closer {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        ctx.close().await?;
        Ok(())
    }
}

/// Panics on its first payload.
struct Panicker;

impl Consumer for Panicker {
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        panic!("{}", panics::DELIBERATE)
    }
}

/// Refuses in connect.
struct Refuser;

impl Consumer for Refuser {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.refuse();
        Ok(())
    }
}

/// Sleeps for a day on every payload.
struct Staller;

impl Consumer for Staller {
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        tokio::time::sleep(STALL).await;
        Ok(())
    }
}

/// Joins [`GROUP`] in connect; relays each payload through the group to its
/// own `event`, which sends it back.
struct Member;

/// The event `Member` sends to its group.
#[derive(Serialize, Deserialize)]
struct Relay {
    #[serde(rename = "type")]
    kind: String,
    payload: Box<RawValue>,
}

impl Consumer for Member {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.group_add(GROUP).await?;
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let relay = Relay {
            kind: "relay".to_owned(),
            payload: RawValue::from_string(text.as_str().to_owned())?,
        };
        let layer = ctx.layer().ok_or("the demultiplexer has a layer")?;
        let group: GroupName = GROUP.parse()?;
        layer.group_send(&group, Message::new(&relay)?).await?;
        Ok(())
    }

    async fn event(&mut self, ctx: &Context, message: Message) -> Result<(), BoxError> {
        let relay: Relay = message.json()?;
        ctx.send_text(relay.payload.get().to_owned()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(target: Target, payload: Json) -> Action {
        Action::Send {
            target,
            payload,
            layout: Layout {
                payload_first: false,
                spaced: false,
                escape_name: false,
                decoy_stream: false,
                extra: None,
            },
        }
    }

    #[test]
    fn every_kind_of_action_passes_its_checks() {
        let object = Json::Object(vec![("a".into(), Json::Array(vec![Json::Float(1.5)]))]);
        run_actions(&[
            send(Target::Echo, object.clone()),
            Action::Send {
                target: Target::Member,
                payload: object.clone(),
                layout: Layout {
                    payload_first: true,
                    spaced: true,
                    escape_name: true,
                    decoy_stream: true,
                    extra: Some(Json::Null),
                },
            },
            send(Target::Closer, Json::Int(1)),
            send(Target::Closer, Json::Int(2)),
            send(Target::Panicker, Json::Int(3)),
            send(Target::Panicker, Json::Int(4)),
            send(Target::Refuser, Json::Int(5)),
            send(Target::Staller, Json::Int(6)),
            send(Target::Staller, Json::Int(7)),
            send(Target::Echo, Json::Str("still here".into())),
            Action::InvalidJson {
                payload: object.clone(),
                cut: 7,
                trailing: false,
            },
            Action::InvalidJson {
                payload: Json::Null,
                cut: 0,
                trailing: true,
            },
            Action::NotAnObject(object.clone()),
            Action::MissingStream {
                payload: Json::Null,
                stream: Some(Json::Str("x".into())),
            },
            Action::MissingStream {
                payload: Json::Null,
                stream: None,
            },
            Action::MissingPayload(Target::Refuser),
            Action::UnknownStream {
                name: "echo".into(),
                payload: Json::Bool(true),
            },
            Action::RawText(r#"{"stream":"echo","payload":1.0e3,"payload":[ 2 ]}"#.into()),
            Action::RawText(r#"{"stream":"staller","payload":1e400}"#.into()),
            Action::RawText("nope".into()),
            Action::RawText(r#"{"ping":[1.50,{"a":null}]}"#.into()),
            Action::RawText(r#"{"stream":"echo","payload":1,"ref":1.5}"#.into()),
            Action::RawText(r#"{"subscribe":5,"unsubscribe":"echo","ref":{}}"#.into()),
            Action::RawText(r#"{"unsubscribe":"echo","ref":"x"}"#.into()),
            Action::Binary(vec![1, 2, 3]),
            Action::Advance(60_000),
            Action::Reconnect,
            send(Target::Member, Json::Int(8)),
            send(Target::Closer, Json::Int(9)),
            Action::Close(4000),
            send(Target::Panicker, Json::Int(10)),
            Action::Abort,
            send(Target::Staller, Json::Int(11)),
            Action::Reconnect,
        ]);
    }

    #[test]
    fn any_bytes_decode_to_a_run() {
        actions(&[]);
        actions(&[0xff; 64]);
        actions(b"some arbitrary bytes for the action decoder, long enough for several");
    }
}
