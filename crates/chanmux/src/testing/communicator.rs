//! [`Communicator`]: Django Channels' `WebsocketCommunicator`, for Rust consumers.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use crate::connection::{self, ConnectionConfig, Handshake};
use crate::transport::{CloseFrame, Frame, TransportError};
use crate::{ConsumerFactory, Scope, Text};

/// Drives a consumer like a WebSocket client would, in process.
///
/// Method names follow Channels' `WebsocketCommunicator` so Python tests port
/// line by line. Every `receive_*` waits at most the receive timeout (1 s by
/// default) and never hangs; under `tokio::time::pause()` timeouts elapse
/// instantly once everything is idle.
///
/// ```
/// use chanmux::testing::Communicator;
/// use chanmux::{BoxError, Consumer, Context, Demultiplexer, Text};
/// use serde_json::json;
///
/// struct Echo;
/// impl Consumer for Echo {
///     async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
///         Ok(ctx.send_text(text).await?)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let demux = Demultiplexer::builder().stream("echostream", || Echo).build();
/// let mut comm = Communicator::new(demux, "/ws/");
/// assert!(comm.connect().await.is_accepted());
/// comm.send_json_to(&json!({"stream": "echostream", "payload": {"hello": "world"}})).await;
/// assert_eq!(
///     comm.receive_json_from().await,
///     json!({"stream": "echostream", "payload": {"hello": "world"}})
/// );
/// assert!(comm.receive_nothing().await);
/// comm.disconnect(1000).await;
/// # }
/// ```
pub struct Communicator {
    app: Arc<dyn ConsumerFactory>,
    scope: Option<Scope>,
    config: ConnectionConfig,
    receive_timeout: Duration,
    client_buffer: usize,
    socket: Option<Socket>,
    /// Messages read while waiting for another (a given stream's payload,
    /// a subscribe's answer), returned first by later receives.
    held: VecDeque<Output>,
    /// Numbers the refs of `subscribe` and `unsubscribe`.
    next_ref: u64,
}

/// The client's end of the in-memory socket.
struct Socket {
    to_server: mpsc::UnboundedSender<Result<Frame, TransportError>>,
    from_server: mpsc::Receiver<Frame>,
    server: JoinHandle<()>,
    closed: bool,
    /// Pings read (and answered) so far.
    pings: usize,
}

/// What [`Communicator::connect`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// The consumer accepted, with this subprotocol.
    Accepted {
        /// The subprotocol the consumer chose.
        subprotocol: Option<String>,
    },
    /// The handshake was refused with this HTTP status (403 or 500).
    Refused {
        /// The status an HTTP server would answer.
        status: StatusCode,
    },
}

impl ConnectOutcome {
    /// Whether the consumer accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, ConnectOutcome::Accepted { .. })
    }

    /// The HTTP status of a refusal, if refused.
    pub fn refusal_status(&self) -> Option<StatusCode> {
        match self {
            ConnectOutcome::Refused { status } => Some(*status),
            ConnectOutcome::Accepted { .. } => None,
        }
    }
}

/// A message the server sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// The server closed the socket.
    Close(Option<CloseFrame>),
}

/// Why a receive returned nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// Nothing arrived within the timeout.
    #[error("nothing received within {0:?}")]
    Timeout(Duration),
    /// The server side is gone and nothing more will arrive.
    #[error("the connection is closed")]
    Closed,
}

impl Communicator {
    /// A communicator for `app`, connecting to `path`.
    pub fn new(app: impl ConsumerFactory, path: &str) -> Self {
        Communicator::with_scope(app, Scope::new(path))
    }

    /// A communicator for `app` with a full `scope` (headers, params, extensions).
    pub fn with_scope(app: impl ConsumerFactory, scope: Scope) -> Self {
        Communicator {
            app: Arc::new(app),
            scope: Some(scope),
            config: ConnectionConfig::default(),
            receive_timeout: Duration::from_secs(1),
            client_buffer: 1024,
            socket: None,
            held: VecDeque::new(),
            next_ref: 0,
        }
    }

    /// Uses `config` for the connection (timeouts, queue sizes).
    #[must_use]
    pub fn config(mut self, config: ConnectionConfig) -> Self {
        self.config = config;
        self
    }

    /// How long `receive_*` waits (default 1 s).
    #[must_use]
    pub fn receive_timeout(mut self, timeout: Duration) -> Self {
        self.receive_timeout = timeout;
        self
    }

    /// How many server messages the client side buffers before the server's
    /// writes block, as a client that stops reading would (default 1024).
    #[must_use]
    pub fn client_buffer(mut self, messages: usize) -> Self {
        self.client_buffer = messages;
        self
    }

    /// Connects: runs the consumer's connect and reports its answer.
    ///
    /// # Panics
    ///
    /// If called twice.
    pub async fn connect(&mut self) -> ConnectOutcome {
        let scope = self.scope.take().expect("connect is called once");
        match connection::start(&*self.app, scope, &self.config).await {
            Handshake::Refused(refusal) => ConnectOutcome::Refused {
                status: refusal.status(),
            },
            Handshake::Accepted(accepted) => {
                let subprotocol = accepted.subprotocol().map(str::to_owned);
                let (to_server, incoming) = mpsc::unbounded();
                let (outgoing, from_server) = mpsc::channel(self.client_buffer);
                let transport = MemoryTransport { incoming, outgoing };
                let server = tokio::spawn(accepted.serve(transport));
                self.socket = Some(Socket {
                    to_server,
                    from_server,
                    server,
                    closed: false,
                    pings: 0,
                });
                ConnectOutcome::Accepted { subprotocol }
            }
        }
    }

    fn socket(&mut self) -> &mut Socket {
        self.socket
            .as_mut()
            .expect("the communicator is not connected (or was refused)")
    }

    fn send_frame(&mut self, frame: Frame) {
        // A closed server just drops what it is sent, as a real socket would.
        let _ = self.socket().to_server.unbounded_send(Ok(frame));
    }

    /// Sends a text message, which may be anything (malformed frames too).
    pub async fn send_text_to(&mut self, text: &str) {
        self.send_frame(Frame::Text(Text::from(text)));
        tokio::task::yield_now().await;
    }

    /// Sends `value` serialised as a text message.
    pub async fn send_json_to(&mut self, value: &serde_json::Value) {
        self.send_text_to(&value.to_string()).await;
    }

    /// Sends `payload` on `stream`: `{"stream": stream, "payload": payload}`.
    ///
    /// # Panics
    ///
    /// If `payload` does not serialise.
    pub async fn send_to<T: Serialize + ?Sized>(&mut self, stream: &str, payload: &T) {
        let frame = json!({"stream": stream, "payload": to_value(payload)});
        self.send_json_to(&frame).await;
    }

    /// Sends `payload` on `stream` with a `ref` (a string of at most 64
    /// characters or an integer), which the stream's replies carry back.
    ///
    /// # Panics
    ///
    /// If `payload` or `reference` does not serialise.
    pub async fn send_with_ref<T: Serialize + ?Sized, R: Serialize>(
        &mut self,
        stream: &str,
        payload: &T,
        reference: R,
    ) {
        let frame =
            json!({"stream": stream, "payload": to_value(payload), "ref": to_value(&reference)});
        self.send_json_to(&frame).await;
    }

    /// Subscribes to `stream` (with `params` when given) and waits for the
    /// answer: `Ok` on `{"subscribed"}`, else the error frame the server
    /// sent (`subscription_refused`, `unknown_stream`, ...). Messages that
    /// arrive meanwhile are kept for later receives.
    ///
    /// # Panics
    ///
    /// If no answer arrives within the receive timeout.
    pub async fn subscribe(&mut self, stream: &str, params: Option<Value>) -> Result<(), Value> {
        let reference = self.fresh_ref();
        let mut frame = json!({"subscribe": stream, "ref": reference});
        if let Some(params) = params {
            frame["params"] = params;
        }
        self.send_json_to(&frame).await;
        self.answer("subscribed", stream, &reference).await
    }

    /// Unsubscribes from `stream` and waits for the answer: `Ok` on
    /// `{"unsubscribed"}`, else the error frame (`not_subscribed`).
    ///
    /// # Panics
    ///
    /// If no answer arrives within the receive timeout.
    pub async fn unsubscribe(&mut self, stream: &str) -> Result<(), Value> {
        let reference = self.fresh_ref();
        self.send_json_to(&json!({"unsubscribe": stream, "ref": reference}))
            .await;
        self.answer("unsubscribed", stream, &reference).await
    }

    fn fresh_ref(&mut self) -> String {
        self.next_ref += 1;
        format!("communicator-{}", self.next_ref)
    }

    /// Waits for `{kind: stream, "ref": reference}` or an error frame with
    /// that ref.
    async fn answer(&mut self, kind: &str, stream: &str, reference: &str) -> Result<(), Value> {
        let frame = self
            .receive_matching(&format!("an answer to {kind} {stream:?}"), |frame| {
                frame["ref"] == reference
            })
            .await;
        if frame[kind] == stream {
            Ok(())
        } else {
            Err(frame)
        }
    }

    /// The payload of the next data frame of `stream`; messages of other
    /// streams (and any other message) that arrive first are kept, in
    /// order, for later receives.
    ///
    /// # Panics
    ///
    /// If none arrives within the receive timeout.
    pub async fn receive_from(&mut self, stream: &str) -> Value {
        let mut frame = self
            .receive_matching(&format!("a payload on {stream:?}"), |frame| {
                frame["stream"] == stream && frame.get("payload").is_some()
            })
            .await;
        frame["payload"].take()
    }

    /// The next JSON message that `matches` (looking first at those kept
    /// earlier); those that do not are kept.
    async fn receive_matching(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let parsed = |output: &Output| match output {
            Output::Text(text) => serde_json::from_str::<Value>(text).ok(),
            _ => None,
        };
        if let Some(at) = self
            .held
            .iter()
            .position(|output| parsed(output).is_some_and(|frame| matches(&frame)))
        {
            let output = self.held.remove(at).expect("just found");
            return parsed(&output).expect("just parsed");
        }
        let wait = self.receive_timeout;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let output = match self.read_output(left).await {
                Ok(output) => output,
                Err(e) => panic!("expected {what}, got {e}"),
            };
            if let Some(frame) = parsed(&output).filter(|frame| matches(frame)) {
                return frame;
            }
            self.held.push_back(output);
        }
    }

    /// Sends a binary message.
    pub async fn send_binary_to(&mut self, data: impl Into<Bytes>) {
        self.send_frame(Frame::Binary(data.into()));
        tokio::task::yield_now().await;
    }

    /// Pings from the server read so far. Pings are answered with a pong as
    /// they are read (by any `receive_*` call), as a WebSocket client
    /// library would; a test that reads nothing answers nothing.
    pub fn pings_received(&self) -> usize {
        self.socket.as_ref().map_or(0, |s| s.pings)
    }

    /// Waits for the next message from the server. A close from the server
    /// is answered with the same code, as a real client would; a ping with
    /// a pong.
    ///
    /// # Errors
    ///
    /// [`ReceiveError::Timeout`] when nothing arrives in time,
    /// [`ReceiveError::Closed`] when the server side has ended.
    pub async fn receive_output(&mut self) -> Result<Output, ReceiveError> {
        self.next_output(self.receive_timeout).await
    }

    /// The next message within `wait` (one kept earlier first).
    async fn next_output(&mut self, wait: Duration) -> Result<Output, ReceiveError> {
        match self.held.pop_front() {
            Some(output) => Ok(output),
            None => self.read_output(wait).await,
        }
    }

    /// Reads the next message within `wait`, answering a close as a client
    /// would.
    async fn read_output(&mut self, wait: Duration) -> Result<Output, ReceiveError> {
        let socket = self.socket();
        // One deadline for the whole wait: answering pings does not extend it.
        let deadline = Instant::now() + wait;
        loop {
            let frame = match timeout_at(deadline, socket.from_server.next()).await {
                Err(_) => return Err(ReceiveError::Timeout(wait)),
                Ok(None) => return Err(ReceiveError::Closed),
                Ok(Some(frame)) => frame,
            };
            return Ok(match frame {
                Frame::Text(text) => Output::Text(text.into_string()),
                Frame::Binary(data) => Output::Binary(data),
                Frame::Close(close) => {
                    if !socket.closed {
                        socket.closed = true;
                        let echo = Frame::Close(close.clone());
                        let _ = socket.to_server.unbounded_send(Ok(echo));
                    }
                    Output::Close(close)
                }
                // Answered as a WebSocket client library would, while reading.
                Frame::Ping(data) => {
                    socket.pings += 1;
                    let _ = socket.to_server.unbounded_send(Ok(Frame::Pong(data)));
                    continue;
                }
                Frame::Pong(_) => continue,
            });
        }
    }

    /// The next message, which must be text.
    ///
    /// # Panics
    ///
    /// On timeout, close or a binary message, with a message saying which.
    pub async fn receive_text_from(&mut self) -> String {
        match self.receive_output().await {
            Ok(Output::Text(text)) => text,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next message, which must be JSON text.
    ///
    /// # Panics
    ///
    /// As [`receive_text_from`](Self::receive_text_from), or if it is not JSON.
    pub async fn receive_json_from(&mut self) -> serde_json::Value {
        let text = self.receive_text_from().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// The next message, which must be a close frame from the server.
    ///
    /// # Panics
    ///
    /// If something else (or nothing) arrives.
    pub async fn receive_close(&mut self) -> Option<CloseFrame> {
        match self.receive_output().await {
            Ok(Output::Close(close)) => close,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Whether nothing arrives within 100 ms (what arrives is consumed).
    pub async fn receive_nothing(&mut self) -> bool {
        self.receive_nothing_within(Duration::from_millis(100))
            .await
    }

    /// Whether nothing arrives within `wait` (what arrives is consumed).
    pub async fn receive_nothing_within(&mut self, wait: Duration) -> bool {
        self.next_output(wait).await.is_err()
    }

    /// Closes from the client side with `code` and waits until the server has
    /// finished (consumers disconnected, or stopped at the close timeout).
    pub async fn disconnect(&mut self, code: u16) {
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        if !socket.closed {
            let close = CloseFrame::new(code, "");
            let _ = socket
                .to_server
                .unbounded_send(Ok(Frame::Close(Some(close))));
        }
        // Keep reading so the server never blocks on a full client buffer.
        let drain = async { while socket.from_server.next().await.is_some() {} };
        let _ = tokio::join!(&mut socket.server, drain);
    }

    /// Drops the connection without a close frame (code 1006 for the
    /// consumer) and waits until the server has finished.
    pub async fn abort(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            drop(socket.to_server);
            let drain = async { while socket.from_server.next().await.is_some() {} };
            let _ = tokio::join!(&mut socket.server, drain);
        }
    }

    /// Whether the server side has finished (after a close or disconnect).
    pub fn is_finished(&self) -> bool {
        self.socket.as_ref().is_none_or(|s| s.server.is_finished())
    }
}

impl fmt::Debug for Communicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Communicator")
            .field("connected", &self.socket.is_some())
            .finish_non_exhaustive()
    }
}

/// The server's end of the in-memory socket.
struct MemoryTransport {
    incoming: mpsc::UnboundedReceiver<Result<Frame, TransportError>>,
    outgoing: mpsc::Sender<Frame>,
}

impl Stream for MemoryTransport {
    type Item = Result<Frame, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_next_unpin(cx)
    }
}

impl Sink<Frame> for MemoryTransport {
    type Error = TransportError;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.outgoing.poll_ready(cx).map_err(gone)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Frame) -> Result<(), Self::Error> {
        self.outgoing.start_send(frame).map_err(gone)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.outgoing.poll_flush_unpin(cx).map_err(gone)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.outgoing.poll_close_unpin(cx).map_err(gone)
    }
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).expect("the value serialises to JSON")
}

fn gone(e: mpsc::SendError) -> TransportError {
    TransportError::new(e)
}
