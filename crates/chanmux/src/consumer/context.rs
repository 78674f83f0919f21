//! [`Context`]: a consumer's handle on its socket.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use chanmux_core::close_code;
use chanmux_core::{ErrorCode, error_frame};

use crate::demultiplexer::Declared;
use crate::metrics::StreamHandles;
use serde::Serialize;
use serde::de::IgnoredAny;
use tokio::sync::{Notify, oneshot};

use super::Event;
use super::runner::Failure;
use crate::demultiplexer::{Router, Shared};
use crate::layer::{ChannelName, GroupName, InboxDelivery, SharedLayer};
use crate::queue::{self, TrySendError};
use crate::{AcceptError, GroupError, Scope, SendError, Text};

// Lifecycle states of one consumer. Moves only forward. ACCEPTING covers the
// await between deciding to accept and the accept taking effect (upstream
// counters and the parent updated); other transitions wait it out, so two
// clones racing (accept against close, say) see a consistent order.
const PENDING: u8 = 0;
const ACCEPTING: u8 = 1;
const ACCEPTED: u8 = 2;
const REFUSED: u8 = 3;
const CLOSED: u8 = 4;
const FAILED: u8 = 5;

/// A consumer's handle on the socket: accept, refuse, send, close.
///
/// Inside a demultiplexer the same calls act on the consumer's stream: sends
/// are wrapped in `{"stream": ..., "payload": ...}`, and closing closes the
/// stream (the socket closes when its last accepting stream does).
///
/// Cheap to clone; a clone can be moved into a task to send later.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    scope: Arc<Scope>,
    layer: Option<SharedLayer>,
    /// The consumer's inbox, where the layer delivers its messages.
    inbox: queue::WeakSender<Event>,
    /// This consumer's address on the layer, made on first use: most
    /// consumers never join a group, and a channel nobody has been told of
    /// cannot receive anything.
    channel: OnceLock<ChannelName>,
    /// The consumer has ended: its channel is closed and not made again.
    channel_released: AtomicBool,
    /// Set by a demultiplexer serving this context, so the connection loop
    /// can route frames without a hand-off to the demultiplexer's runner.
    /// Weak: the router holds this context (as its streams' parent).
    router: OnceLock<Weak<Router>>,
    state: AtomicU8,
    /// The consumer's connect handler is still running.
    in_connect: AtomicBool,
    /// Woken when the state leaves ACCEPTING.
    settled: Notify,
    link: Link,
}

/// Where the consumer's messages go.
enum Link {
    /// Straight to the socket.
    Socket(SocketLink),
    /// Through a demultiplexer, as stream `name`.
    Stream(StreamLink),
}

struct SocketLink {
    outbound: queue::Sender<Outbound>,
    /// Taken by the first accept, refuse or failure.
    handshake: Mutex<Option<oneshot::Sender<Decision>>>,
}

struct StreamLink {
    /// Its name, prefix and metrics, shared with its other connections.
    stream: Arc<Declared>,
    demux: Arc<Shared>,
}

/// What the connection's writer sends, in order.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(Text),
    Binary(Bytes),
    Close(u16, String),
    /// A WebSocket ping from the connection's heartbeat.
    Ping,
}

impl Outbound {
    /// The bytes it will write, for the byte-bounded outbound queue.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Outbound::Text(text) => text.len(),
            Outbound::Binary(data) => data.len(),
            Outbound::Close(..) | Outbound::Ping => 0,
        }
    }
}

/// How a consumer answered the handshake.
#[derive(Debug)]
pub(crate) enum Decision {
    Accept(Option<String>),
    Refuse,
    Fail,
}

/// How a stream that never accepted ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unaccepted {
    Refused,
    Failed,
}

impl Context {
    pub(crate) fn for_socket(
        scope: Arc<Scope>,
        outbound: queue::Sender<Outbound>,
        handshake: oneshot::Sender<Decision>,
        layer: Option<SharedLayer>,
        inbox: queue::WeakSender<Event>,
    ) -> Self {
        Context::new(
            scope,
            layer,
            inbox,
            Link::Socket(SocketLink {
                outbound,
                handshake: Mutex::new(Some(handshake)),
            }),
        )
    }

    pub(crate) fn for_stream(
        stream: Arc<Declared>,
        demux: Arc<Shared>,
        layer: Option<SharedLayer>,
        inbox: queue::WeakSender<Event>,
    ) -> Self {
        let parent = &demux.parent().inner;
        let scope = parent.scope.clone();
        let layer = layer.or_else(|| parent.layer.clone());
        Context::new(
            scope,
            layer,
            inbox,
            Link::Stream(StreamLink { stream, demux }),
        )
    }

    fn new(
        scope: Arc<Scope>,
        layer: Option<SharedLayer>,
        inbox: queue::WeakSender<Event>,
        link: Link,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                scope,
                layer,
                inbox,
                channel: OnceLock::new(),
                channel_released: AtomicBool::new(false),
                router: OnceLock::new(),
                state: AtomicU8::new(PENDING),
                in_connect: AtomicBool::new(true),
                settled: Notify::new(),
                link,
            }),
        }
    }

    /// The connection's scope: path, headers, addresses, extensions.
    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// The stream this consumer serves, or `None` when it owns the whole socket.
    pub fn stream(&self) -> Option<&str> {
        match &self.inner.link {
            Link::Socket(_) => None,
            Link::Stream(link) => Some(&link.stream.name),
        }
    }

    /// A stream's metrics handles; `None` for a consumer owning the socket.
    pub(crate) fn stream_metrics(&self) -> Option<&StreamHandles> {
        match &self.inner.link {
            Link::Socket(_) => None,
            Link::Stream(link) => Some(link.stream.metrics()),
        }
    }

    /// A stream left the accepted state: one fewer open.
    fn stream_ended(&self) {
        if let Some(metrics) = self.stream_metrics() {
            metrics.open.decrement(1);
        }
    }

    /// Whether the consumer has accepted and not closed.
    pub fn is_accepted(&self) -> bool {
        self.state() == ACCEPTED
    }

    /// Whether the consumer has refused, closed, failed or been disconnected.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.state(), REFUSED | CLOSED | FAILED)
    }

    /// The channel layer, when one is configured.
    pub fn layer(&self) -> Option<&SharedLayer> {
        self.inner.layer.as_ref()
    }

    /// This consumer's unique channel name on the layer: pass it on so others
    /// can [`send`](crate::layer::ChannelLayer::send) to it. `None` without a layer.
    ///
    /// The channel is opened on the first call (or the first
    /// [`group_add`](Context::group_add)) and closed when the consumer ends.
    pub fn channel_name(&self) -> Option<&ChannelName> {
        let layer = self.inner.layer.as_ref()?;
        if let Some(name) = self.inner.channel.get() {
            return Some(name);
        }
        if self.inner.channel_released.load(Ordering::SeqCst) {
            return None;
        }
        let name = self.inner.channel.get_or_init(|| {
            layer.new_channel(Arc::new(InboxDelivery::new(self.inner.inbox.clone())))
        });
        // The consumer ended while this call opened the channel: close it,
        // as release_channel may have looked before the name was set.
        if self.inner.channel_released.load(Ordering::SeqCst) {
            layer.close_channel(name);
        }
        Some(name)
    }

    /// The consumer has ended: closes its channel (leaving every group) and
    /// keeps later calls on stray clones from opening another.
    pub(crate) fn release_channel(&self) {
        self.inner.channel_released.store(true, Ordering::SeqCst);
        if let (Some(layer), Some(name)) = (&self.inner.layer, self.inner.channel.get()) {
            layer.close_channel(name);
        }
    }

    pub(crate) fn set_router(&self, router: &Arc<Router>) {
        let _ = self.inner.router.set(Arc::downgrade(router));
    }

    /// The demultiplexer router serving this context, while it lives.
    pub(crate) fn router(&self) -> Option<Arc<Router>> {
        self.inner.router.get().and_then(Weak::upgrade)
    }

    fn layer_and_channel(&self) -> Result<(&SharedLayer, &ChannelName), GroupError> {
        match (self.layer(), self.channel_name()) {
            (Some(layer), Some(channel)) => Ok((layer, channel)),
            _ => Err(GroupError::NoLayer),
        }
    }

    /// Joins `group`: messages sent to it reach [`Consumer::event`](crate::Consumer::event),
    /// and frame messages reach the client. Membership ends when this
    /// consumer does, however it ends.
    ///
    /// # Errors
    ///
    /// An invalid group name, no layer, or the layer's backend failing.
    pub async fn group_add(&self, group: &str) -> Result<(), GroupError> {
        let group = GroupName::new(group)?;
        let (layer, channel) = self.layer_and_channel()?;
        layer.group_add(&group, channel).await?;
        Ok(())
    }

    /// Leaves `group`. Leaving a group one is not in is not an error.
    ///
    /// # Errors
    ///
    /// As [`group_add`](Context::group_add).
    pub async fn group_discard(&self, group: &str) -> Result<(), GroupError> {
        let group = GroupName::new(group)?;
        let (layer, channel) = self.layer_and_channel()?;
        layer.group_discard(&group, channel).await?;
        Ok(())
    }

    /// Writes a broadcast frame straight to the socket, past every
    /// demultiplexer level; dropped if the socket is not open.
    pub(crate) async fn send_frame(&self, frame: Text) {
        let mut ctx = self;
        while let Link::Stream(link) = &ctx.inner.link {
            link.stream.metrics().sent.increment(1);
            ctx = link.demux.parent();
        }
        if let Link::Socket(link) = &ctx.inner.link
            && ctx.state() == ACCEPTED
        {
            let _ = link.send(Outbound::Text(frame)).await;
        }
    }

    fn state(&self) -> u8 {
        self.inner.state.load(Ordering::Acquire)
    }

    fn advance(&self, from: u8, to: u8) -> bool {
        self.inner
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The state once any accept in progress (on any clone) has finished.
    async fn settled_state(&self) -> u8 {
        loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let state = self.state();
            if state != ACCEPTING {
                return state;
            }
            settled.await;
        }
    }

    /// Accepts the connection (or, in a demultiplexer, starts this stream).
    ///
    /// Returns once the accept has taken effect, so what is sent next follows
    /// it. Accepting twice is harmless.
    ///
    /// # Errors
    ///
    /// [`AcceptError::Closed`] after a refusal or close, or once the handshake
    /// is over (connect timeout, client gone).
    pub async fn accept(&self) -> Result<(), AcceptError> {
        self.accept_with(None).await
    }

    /// Accepts and selects `protocol` as the WebSocket subprotocol.
    ///
    /// Inside a demultiplexer the socket is accepted by the first stream to
    /// accept, with that stream's choice.
    ///
    /// # Errors
    ///
    /// [`AcceptError::UnknownSubprotocol`] when the client did not offer
    /// `protocol`; otherwise as [`accept`](Context::accept).
    pub async fn accept_subprotocol(&self, protocol: &str) -> Result<(), AcceptError> {
        if !self.scope().subprotocols.iter().any(|p| p == protocol) {
            return Err(AcceptError::UnknownSubprotocol(protocol.to_owned()));
        }
        self.accept_with(Some(protocol.to_owned())).await
    }

    pub(crate) async fn accept_with(&self, protocol: Option<String>) -> Result<(), AcceptError> {
        if !self.advance(PENDING, ACCEPTING) {
            // Another clone got here first: its outcome is ours.
            return match self.settled_state().await {
                ACCEPTED => Ok(()),
                _ => Err(AcceptError::Closed),
            };
        }
        let accepted = match &self.inner.link {
            Link::Socket(link) => {
                // Accepted before the handshake hears of it: the client may
                // send at once, and replies must not find us still accepting.
                self.inner.state.store(ACCEPTED, Ordering::Release);
                link.decide(Decision::Accept(protocol))
            }
            Link::Stream(link) => link.demux.stream_accepted(protocol).await,
        };
        let state = if accepted.is_ok() { ACCEPTED } else { CLOSED };
        if let (Ok(()), Some(metrics)) = (&accepted, self.stream_metrics()) {
            metrics.open.increment(1);
        }
        self.inner.state.store(state, Ordering::Release);
        self.inner.settled.notify_waiters();
        accepted
    }

    /// Refuses the connection (HTTP 403), or in a demultiplexer this stream.
    ///
    /// Has no effect once the consumer has accepted (or is accepting); use
    /// [`close`](Context::close) then.
    pub fn refuse(&self) {
        if self.advance(PENDING, REFUSED) {
            self.settle_unaccepted(Unaccepted::Refused);
        }
    }

    fn settle_unaccepted(&self, how: Unaccepted) {
        match &self.inner.link {
            Link::Socket(link) => {
                let decision = match how {
                    Unaccepted::Refused => Decision::Refuse,
                    Unaccepted::Failed => Decision::Fail,
                };
                // The handshake may be over already; then there is nobody to tell.
                let _ = link.decide(decision);
            }
            Link::Stream(link) => link.demux.stream_unaccepted(how),
        }
    }

    /// Sends a text message.
    ///
    /// Inside a demultiplexer the text must be one JSON value; it goes out as
    /// the `payload` of an envelope, without being re-serialised. A payload
    /// received from the client is known to be JSON and is not checked again.
    ///
    /// # Errors
    ///
    /// [`SendError::NotAccepted`] before accepting, [`SendError::Closed`]
    /// after a close or disconnect, [`SendError::NotJson`] for non-JSON text
    /// on a stream.
    ///
    /// # Cancel safety
    ///
    /// Waits for room in the connection's bounded outbound queue; cancelling
    /// the wait sends nothing.
    pub async fn send_text(&self, text: impl Into<Text>) -> Result<(), SendError> {
        let mut text = text.into();
        let mut ctx = self;
        // Walk up through nested demultiplexers, wrapping once per level.
        loop {
            ctx.check_sendable()?;
            match &ctx.inner.link {
                Link::Socket(link) => return link.send(Outbound::Text(text)).await,
                Link::Stream(link) => {
                    if !text.is_known_json() {
                        serde_json::from_str::<IgnoredAny>(text.as_str())
                            .map_err(|e| SendError::NotJson(e.to_string()))?;
                    }
                    text = Text::known_json(link.stream.prefix.wrap(text.as_str()));
                    link.stream.metrics().sent.increment(1);
                    ctx = link.demux.parent();
                }
            }
        }
    }

    /// Serialises `value` and sends it as text (see [`send_text`](Context::send_text)).
    ///
    /// # Errors
    ///
    /// As [`send_text`](Context::send_text); [`SendError::NotJson`] if `value`
    /// cannot be serialised.
    pub async fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        let text = serde_json::to_string(value).map_err(|e| SendError::NotJson(e.to_string()))?;
        self.send_text(Text::known_json(text)).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Context::send_text); [`SendError::BinaryNotSupported`]
    /// on a stream of a demultiplexer.
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.check_sendable()?;
        match &self.inner.link {
            Link::Socket(link) => link.send(Outbound::Binary(data.into())).await,
            Link::Stream(_) => Err(SendError::BinaryNotSupported),
        }
    }

    fn check_sendable(&self) -> Result<(), SendError> {
        match self.state() {
            ACCEPTED => Ok(()),
            PENDING | ACCEPTING => Err(SendError::NotAccepted),
            _ => Err(SendError::Closed),
        }
    }

    /// Sends an error frame in the multiplexer's format,
    /// `{"error": {"code", "message"}, "stream": <this stream or null>}`,
    /// to tell the client a message of theirs was not handled. Inside a
    /// strict demultiplexer this closes the socket with 1008 instead.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when the client is gone.
    pub async fn send_error(&self, code: ErrorCode, message: &str) -> Result<(), SendError> {
        match &self.inner.link {
            Link::Socket(link) => {
                if self.state() != ACCEPTED {
                    return Err(SendError::Closed);
                }
                crate::metrics::error_frame(code);
                let frame = Text::known_json(error_frame(code, message, None));
                link.send(Outbound::Text(frame)).await
            }
            Link::Stream(link) => {
                let name = &link.stream.name;
                link.demux.send_error(code, message, Some(name)).await
            }
        }
    }

    /// Closes with code 1000 (normal).
    ///
    /// # Errors
    ///
    /// As [`close_with`](Context::close_with).
    pub async fn close(&self) -> Result<(), SendError> {
        self.close_with(close_code::NORMAL, "").await
    }

    /// Closes with `code` and `reason`. Before accepting, this refuses.
    ///
    /// On a stream of a demultiplexer the stream stops receiving; the socket
    /// closes with this code when no accepting stream remains. Closing twice
    /// is harmless.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when the client is already gone.
    pub async fn close_with(&self, code: u16, reason: impl Into<String>) -> Result<(), SendError> {
        loop {
            match self.settled_state().await {
                PENDING if self.advance(PENDING, REFUSED) => {
                    self.settle_unaccepted(Unaccepted::Refused);
                    return Ok(());
                }
                ACCEPTED if self.advance(ACCEPTED, CLOSED) => {
                    self.stream_ended();
                    break;
                }
                // Lost a race with another clone; look again.
                PENDING | ACCEPTED => continue,
                _ => return Ok(()),
            }
        }
        match &self.inner.link {
            Link::Socket(link) => link.send(Outbound::Close(code, reason.into())).await,
            Link::Stream(link) => {
                link.demux.stream_closed(code, reason.into()).await;
                Ok(())
            }
        }
    }

    /// Contains a failed handler: logs it and closes (or refuses) the consumer.
    pub(crate) async fn fail(&self, failure: Failure) {
        let stream = self.stream().unwrap_or("");
        tracing::error!(stream, path = %self.scope().path, %failure, "consumer failed; closing it");
        if self.advance(PENDING, FAILED) {
            self.settle_unaccepted(Unaccepted::Failed);
        } else if self.settled_state().await == ACCEPTED {
            let _ = self.close_with(close_code::ERROR, "consumer error").await;
        }
    }

    /// Settles a consumer that could not accept because everything under it
    /// failed (a demultiplexer whose streams all failed in connect).
    pub(crate) fn fail_unaccepted(&self) {
        if self.advance(PENDING, FAILED) {
            self.settle_unaccepted(Unaccepted::Failed);
        }
    }

    /// The client is gone: later sends fail fast with [`SendError::Closed`],
    /// and frames still queued for the consumer are skipped.
    pub(crate) fn mark_disconnected(&self) {
        if self.advance(ACCEPTED, CLOSED) {
            self.stream_ended();
        } else {
            let _ = self.advance(PENDING, CLOSED);
        }
    }

    /// Whether the consumer's connect handler is still running (it may yet accept).
    pub(crate) fn is_connecting(&self) -> bool {
        self.inner.in_connect.load(Ordering::Acquire)
    }

    /// The consumer's connect handler returned.
    pub(crate) async fn connect_returned(&self) {
        self.inner.in_connect.store(false, Ordering::Release);
        if let Link::Stream(link) = &self.inner.link {
            link.demux.stream_connected().await;
        }
    }

    /// Tells the client that a frame queued for this stream was not handled
    /// because the stream closed (or failed) first.
    pub(crate) async fn report_undelivered(&self) {
        if let Link::Stream(link) = &self.inner.link {
            let name = &link.stream.name;
            let message = format!("stream {:?} closed before handling this frame", &**name);
            let _ = link
                .demux
                .send_error(ErrorCode::StreamNotAccepting, &message, Some(name))
                .await;
        }
    }
}

#[cfg(test)]
impl Context {
    /// A socket context with nothing behind it, for unit tests.
    pub(crate) fn detached_for_tests() -> (Context, queue::Receiver<Event>) {
        let (outbound, _) = queue::bounded(1);
        let (handshake, _) = oneshot::channel();
        let (inbox, inbox_rx) = queue::bounded(1);
        let ctx = Context::for_socket(
            Arc::new(Scope::default()),
            outbound,
            handshake,
            None,
            inbox.downgrade(),
        );
        (ctx, inbox_rx)
    }
}

impl Context {
    /// Queues a WebSocket ping, unless the outbound queue is full (then the
    /// socket is busy sending, and the pong timeout still decides). Only for
    /// the socket's own context.
    pub(crate) fn try_send_ping(&self) {
        if let Link::Socket(link) = &self.inner.link {
            let _ = link.outbound.try_send(Outbound::Ping);
        }
    }
}

impl SocketLink {
    fn decide(&self, decision: Decision) -> Result<(), AcceptError> {
        let sender = self
            .handshake
            .lock()
            .expect("handshake lock is never held across a panic")
            .take()
            .ok_or(AcceptError::Closed)?;
        sender.send(decision).map_err(|_| AcceptError::Closed)
    }

    async fn send(&self, message: Outbound) -> Result<(), SendError> {
        match self.outbound.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(SendError::Closed),
            // Waiting for room is the slow path; boxed, so its future does
            // not enlarge every consumer's handler futures.
            Err(TrySendError::Full(message)) => Box::pin(self.outbound.send(message))
                .await
                .map_err(|_| SendError::Closed),
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("path", &self.scope().path)
            .field("stream", &self.stream())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
