//! [`Context`]: a consumer's handle on its socket.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use chanmux_core::{AppCode, ErrorCode, Ref, close_code, error_frame, error_frame_with};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use tokio::sync::{Notify, oneshot};

use super::Event;
use super::runner::Failure;
use crate::demultiplexer::{Declared, OnDemand, Session};
use crate::layer::{ChannelName, ConsumerDelivery, GroupName, Message, MessageError, SharedLayer};
use crate::metrics::StreamHandles;
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
/// stream.
///
/// Cheap to clone; a clone can be moved into a task to send later (or use
/// [`spawn`](Context::spawn), which stops the task when the consumer ends).
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    /// The consumer's inbox, where the layer delivers its messages.
    inbox: queue::WeakSender<Event>,
    /// This consumer's address on the layer, made on first use: most
    /// consumers never join a group, and a channel nobody has been told of
    /// cannot receive anything.
    channel: OnceLock<ChannelName>,
    /// The consumer has ended: its channel is closed and not made again.
    channel_released: AtomicBool,
    state: AtomicU8,
    /// The consumer's connect handler is still running.
    in_connect: AtomicBool,
    /// Why the consumer is ending (its `disconnect` code); 0 until it is.
    ending: AtomicU16,
    /// Woken when the state leaves ACCEPTING and when the consumer starts
    /// ending.
    settled: Notify,
    link: Link,
}

/// Where the consumer's messages go.
enum Link {
    /// Straight to the socket.
    Socket(SocketLink),
    /// Through a demultiplexer, as one of its streams.
    Stream(StreamLink),
}

struct SocketLink {
    scope: Arc<Scope>,
    layer: Option<SharedLayer>,
    outbound: queue::Sender<Outbound>,
    /// Taken by the first accept, refuse or failure.
    handshake: Mutex<Option<oneshot::Sender<Decision>>>,
}

pub(crate) struct StreamLink {
    /// Its declaration (name or pattern, prefix, metrics), shared with its
    /// other connections.
    pub(crate) declared: Arc<Declared>,
    pub(crate) demux: Arc<Session>,
    /// Tells this run of the stream from earlier and later ones.
    pub(crate) id: u32,
    /// For a stream the client started: its name, captures and params.
    pub(crate) on_demand: Option<Box<OnDemand>>,
}

impl StreamLink {
    /// The stream's name (for a pattern stream, the name that matched).
    pub(crate) fn name(&self) -> &str {
        match &self.on_demand {
            Some(started) => &started.name,
            None => &self.declared.name,
        }
    }

    fn prefix(&self) -> &chanmux_core::StreamPrefix {
        match &self.on_demand {
            Some(started) => &started.prefix,
            None => &self.declared.prefix,
        }
    }
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
            inbox,
            Link::Socket(SocketLink {
                scope,
                layer,
                outbound,
                handshake: Mutex::new(Some(handshake)),
            }),
        )
    }

    /// A stream's context: its scope and layer are its demultiplexer's,
    /// kept there once per connection rather than once per stream.
    pub(crate) fn for_stream(link: StreamLink, inbox: queue::WeakSender<Event>) -> Self {
        Context::new(inbox, Link::Stream(link))
    }

    fn new(inbox: queue::WeakSender<Event>, link: Link) -> Self {
        Context {
            inner: Arc::new(Inner {
                inbox,
                channel: OnceLock::new(),
                channel_released: AtomicBool::new(false),
                state: AtomicU8::new(PENDING),
                in_connect: AtomicBool::new(true),
                ending: AtomicU16::new(0),
                settled: Notify::new(),
                link,
            }),
        }
    }

    /// The connection's scope: path, headers, addresses, extensions.
    pub fn scope(&self) -> &Scope {
        match &self.inner.link {
            Link::Socket(link) => &link.scope,
            Link::Stream(link) => link.demux.parent().scope(),
        }
    }

    /// The stream this consumer serves, or `None` when it owns the whole
    /// socket. For a pattern stream, the name that matched (`room:42`).
    pub fn stream(&self) -> Option<&str> {
        self.stream_link().map(StreamLink::name)
    }

    pub(crate) fn stream_link(&self) -> Option<&StreamLink> {
        match &self.inner.link {
            Link::Socket(_) => None,
            Link::Stream(link) => Some(link),
        }
    }

    /// What a pattern stream's name captured: for `room:{id}` started as
    /// `room:42`, `capture("id")` is `Some("42")`.
    pub fn capture(&self, name: &str) -> Option<&str> {
        let started = self.stream_link()?.on_demand.as_deref()?;
        started.capture(name)
    }

    /// The `params` of the `subscribe` that started this stream, parsed as
    /// `T`; `Ok(None)` when there were none (the stream was not started by a
    /// subscribe, or the subscribe had no `params`).
    ///
    /// # Errors
    ///
    /// When the params do not fit `T`.
    pub fn params<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.raw_params().map(serde_json::from_str).transpose()
    }

    /// The JSON text of the `params` of the `subscribe` that started this
    /// stream, as the client sent it.
    pub fn raw_params(&self) -> Option<&str> {
        let started = self.stream_link()?.on_demand.as_deref()?;
        started.params.as_deref()
    }

    /// A stream's metrics handles; `None` for a consumer owning the socket.
    pub(crate) fn stream_metrics(&self) -> Option<&StreamHandles> {
        self.stream_link().map(|link| link.declared.metrics())
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
        match &self.inner.link {
            Link::Socket(link) => link.layer.as_ref(),
            Link::Stream(link) => link.demux.layer(),
        }
    }

    /// This consumer's unique channel name on the layer: pass it on so others
    /// can [`send`](crate::layer::ChannelLayer::send) to it. `None` without a layer.
    ///
    /// The channel is opened on the first call (or the first
    /// [`group_add`](Context::group_add)) and closed when the consumer ends.
    pub fn channel_name(&self) -> Option<&ChannelName> {
        let layer = self.layer()?;
        if let Some(name) = self.inner.channel.get() {
            return Some(name);
        }
        if self.inner.channel_released.load(Ordering::SeqCst) {
            return None;
        }
        let name = self.inner.channel.get_or_init(|| {
            layer.new_channel(Arc::new(ConsumerDelivery::new(WeakContext(
                Arc::downgrade(&self.inner),
            ))))
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
        if let (Some(layer), Some(name)) = (self.layer(), self.inner.channel.get()) {
            layer.close_channel(name);
        }
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

    /// Sends `payload` as a frame of this stream to the client of every
    /// member of `group` (this consumer too, if it is one), in every process
    /// the layer reaches: `{"stream": <this stream>, "payload": <payload>}`,
    /// serialised once for all of them. Members' consumers are not called:
    /// the layer puts the frame straight on each member's outbound queue
    /// (dropping it, counted, for a member whose queue is full). To filter
    /// or reshape per member, send an event with
    /// [`group_send_message`](Context::group_send_message) and handle it in
    /// [`Consumer::event`](crate::Consumer::event).
    ///
    /// # Errors
    ///
    /// [`GroupError::NotAStream`] for a consumer owning the socket; an
    /// invalid group name, no layer, or the layer failing.
    pub async fn group_send<T: Serialize + ?Sized>(
        &self,
        group: &str,
        payload: &T,
    ) -> Result<(), GroupError> {
        let payload =
            serde_json::to_string(payload).map_err(|e| MessageError::InvalidJson(e.to_string()))?;
        self.group_send_json(group, &payload).await
    }

    /// As [`group_send`](Context::group_send), with the payload as JSON
    /// text: a payload received from the client is sent on without being
    /// checked or serialised again.
    ///
    /// # Errors
    ///
    /// As [`group_send`](Context::group_send), and
    /// [`MessageError::InvalidJson`] when `payload` is not JSON.
    pub async fn group_send_text(
        &self,
        group: &str,
        payload: impl Into<Text>,
    ) -> Result<(), GroupError> {
        let payload = payload.into();
        if !payload.is_known_json() {
            serde_json::from_str::<IgnoredAny>(payload.as_str())
                .map_err(|e| MessageError::InvalidJson(e.to_string()))?;
        }
        self.group_send_json(group, payload.as_str()).await
    }

    async fn group_send_json(&self, group: &str, payload: &str) -> Result<(), GroupError> {
        let link = self.stream_link().ok_or(GroupError::NotAStream)?;
        let group = GroupName::new(group)?;
        let layer = self.layer().ok_or(GroupError::NoLayer)?;
        layer
            .group_send(&group, Message::frame_with(link.prefix(), payload))
            .await?;
        Ok(())
    }

    /// Sends `message` to every member of `group`: each member's
    /// [`Consumer::event`](crate::Consumer::event) gets it.
    ///
    /// # Errors
    ///
    /// An invalid group name, no layer, or the layer failing.
    pub async fn group_send_message(
        &self,
        group: &str,
        message: Message,
    ) -> Result<(), GroupError> {
        let group = GroupName::new(group)?;
        let layer = self.layer().ok_or(GroupError::NoLayer)?;
        layer.group_send(&group, message).await?;
        Ok(())
    }

    /// Takes a message from the layer, without waiting: a frame message is
    /// written straight to the socket ([`write_frame`](Self::write_frame)),
    /// anything else queued for [`Consumer::event`](crate::Consumer::event).
    /// `false` when it was dropped.
    pub(crate) fn deliver(&self, message: &Message) -> bool {
        match message.frame_bytes() {
            Some(frame) => self.write_frame(frame),
            None => self
                .inner
                .inbox
                .try_send(Event::Layer(message.clone()))
                .is_ok(),
        }
    }

    /// Queues a broadcast frame on the socket, past every demultiplexer
    /// level and without waking any consumer: only while this consumer is
    /// accepted (as for any frame of its stream) and the socket is open, and
    /// only if the outbound queue has room that no waiting reply is owed (a
    /// client that is not keeping up misses it, rather than holding up the
    /// other recipients or its own stream's replies).
    fn write_frame(&self, frame: Bytes) -> bool {
        if self.state() != ACCEPTED {
            return false;
        }
        let Some(Link::Socket(socket)) = self.levels().last().map(|ctx| &ctx.inner.link) else {
            unreachable!("every chain of links ends at a socket")
        };
        // Checked again under the queue's lock: a close queues its `closed`
        // frame after changing the state, so the client never gets a
        // broadcast for a stream it has been told is closed (at any level
        // of nesting).
        let open = || self.levels().all(|ctx| ctx.state() == ACCEPTED);
        let queued = socket
            .outbound
            .try_send_spare(Outbound::Text(Text::frame(frame)), open)
            .is_ok();
        if queued {
            for link in self.levels().filter_map(Context::stream_link) {
                link.declared.metrics().sent.increment(1);
            }
        }
        queued
    }

    /// This consumer's context, then each enclosing demultiplexer's, out to
    /// the socket's.
    fn levels(&self) -> impl Iterator<Item = &Context> {
        std::iter::successors(Some(self), |ctx| match &ctx.inner.link {
            Link::Stream(link) => Some(link.demux.parent()),
            Link::Socket(_) => None,
        })
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
        // Cancelled before it settles (its handler stopped as the consumer
        // ends), the accept leaves the consumer closed, not accepting.
        let abandoned = Abandoned(self);
        let accepted = match &self.inner.link {
            Link::Socket(link) => {
                // Accepted before the handshake hears of it: the client may
                // send at once, and replies must not find us still accepting.
                self.inner.state.store(ACCEPTED, Ordering::Release);
                link.decide(Decision::Accept(protocol))
            }
            Link::Stream(link) => link.demux.stream_accepted(link, protocol).await,
        };
        std::mem::forget(abandoned);
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
        self.refuse_with("");
    }

    /// Refuses, telling the client why: a client that subscribed gets a
    /// `subscription_refused` error frame with `reason` as its message. A
    /// socket's refusal is an HTTP 403, which carries no reason.
    pub fn refuse_with(&self, reason: impl Into<String>) {
        if self.advance(PENDING, REFUSED) {
            self.settle_unaccepted(Unaccepted::Refused, reason.into());
        }
    }

    fn settle_unaccepted(&self, how: Unaccepted, reason: String) {
        match &self.inner.link {
            Link::Socket(link) => {
                let decision = match how {
                    Unaccepted::Refused => Decision::Refuse,
                    Unaccepted::Failed => Decision::Fail,
                };
                // The handshake may be over already; then there is nobody to tell.
                let _ = link.decide(decision);
            }
            Link::Stream(link) => {
                link.demux.stream_unaccepted(link, how, reason);
                // A stream that cannot accept any more ends now.
                self.end(close_code::ABNORMAL);
            }
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
        self.send_wrapped(text.into(), None).await
    }

    /// Replies to the frame being handled: as [`send_text`](Context::send_text),
    /// and when that frame carried a `ref`, the reply carries it too
    /// (`{"stream", "payload", "ref"}`), so the client can match it to its
    /// request. Call it from the handler that got the frame.
    ///
    /// # Errors
    ///
    /// As [`send_text`](Context::send_text).
    pub async fn reply_text(&self, text: impl Into<Text>) -> Result<(), SendError> {
        let reference = self.current_ref();
        self.send_wrapped(text.into(), reference.as_ref()).await
    }

    /// Serialises `value` and replies with it (see [`reply_text`](Context::reply_text)).
    ///
    /// # Errors
    ///
    /// As [`send_json`](Context::send_json).
    pub async fn reply<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        let text = serde_json::to_string(value).map_err(|e| SendError::NotJson(e.to_string()))?;
        self.reply_text(Text::known_json(text)).await
    }

    /// The ref of the frame this stream's consumer is handling, if it had one.
    fn current_ref(&self) -> Option<Ref> {
        let link = self.stream_link()?;
        link.demux.current_ref(link.id)
    }

    /// Walks up through nested demultiplexers, wrapping once per level; the
    /// innermost wrap carries `reference`.
    async fn send_wrapped(
        &self,
        mut text: Text,
        mut reference: Option<&Ref>,
    ) -> Result<(), SendError> {
        let mut ctx = self;
        loop {
            ctx.check_sendable()?;
            match &ctx.inner.link {
                Link::Socket(link) => return link.send(Outbound::Text(text)).await,
                Link::Stream(link) => {
                    if !text.is_known_json() {
                        serde_json::from_str::<IgnoredAny>(text.as_str())
                            .map_err(|e| SendError::NotJson(e.to_string()))?;
                    }
                    let frame = match reference.take() {
                        Some(r) => link.prefix().wrap_reply(text.as_str(), r.as_json()),
                        None => link.prefix().wrap(text.as_str()),
                    };
                    text = Text::known_json(frame);
                    link.declared.metrics().sent.increment(1);
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
    /// to tell the client a message of theirs was not handled; with the
    /// `ref` of the frame being handled, when it had one. Inside a strict
    /// demultiplexer this closes the socket with 1008 instead.
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
                let reference = link.demux.current_ref(link.id);
                let reference = reference.as_ref().map(Ref::as_json);
                link.demux
                    .send_error(code, message, Some(link.name()), reference)
                    .await
            }
        }
    }

    /// Sends an error frame with an application's own code (see
    /// [`AppCode`]: lower snake case, never a protocol code), such as
    /// `room_full`, with the ref of the frame being handled. Unlike
    /// [`send_error`](Context::send_error) it never closes the socket, even
    /// in strict mode: it reports the application's refusal, not bad input.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCode`] when `code` is not an application code;
    /// [`SendError::Closed`] when the client is gone.
    pub async fn send_app_error(&self, code: &str, message: &str) -> Result<(), SendError> {
        let code = AppCode::new(code).map_err(|e| SendError::InvalidCode(e.to_string()))?;
        if self.state() != ACCEPTED {
            return Err(SendError::Closed);
        }
        crate::metrics::app_error_frame();
        match &self.inner.link {
            Link::Socket(link) => {
                let frame = error_frame_with(code.as_str(), message, None, None);
                link.send(Outbound::Text(Text::known_json(frame))).await
            }
            Link::Stream(link) => {
                let reference = link.demux.current_ref(link.id);
                let frame = error_frame_with(
                    code.as_str(),
                    message,
                    Some(link.name()),
                    reference.as_ref().map(Ref::as_json),
                );
                link.demux.parent().send_text(Text::known_json(frame)).await
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
    /// On a stream of a demultiplexer the stream stops, and its consumer
    /// ends (its `disconnect` gets `code`); a client that subscribed gets a
    /// `closed` frame with `code` and `reason`. The socket closes with this
    /// code when no accepting stream remains, unless the demultiplexer has
    /// lazy or pattern streams. Closing twice is harmless.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when the client is already gone.
    pub async fn close_with(&self, code: u16, reason: impl Into<String>) -> Result<(), SendError> {
        loop {
            match self.settled_state().await {
                PENDING if self.advance(PENDING, REFUSED) => {
                    self.settle_unaccepted(Unaccepted::Refused, String::new());
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
                // Ended only once the close is out: ending cancels a handler
                // at its next wait, and this one may wait for room.
                link.demux.stream_closed(link, code, reason.into()).await;
                self.end(code);
                Ok(())
            }
        }
    }

    /// Contains a failed handler: logs it and closes (or refuses) the
    /// consumer, which then ends with 1011.
    pub(crate) async fn fail(&self, failure: Failure) {
        let stream = self.stream().unwrap_or("");
        tracing::error!(stream, path = %self.scope().path, %failure, "consumer failed; closing it");
        if self.advance(PENDING, FAILED) {
            self.end(close_code::ERROR);
            self.settle_unaccepted(Unaccepted::Failed, String::new());
        } else if self.settled_state().await == ACCEPTED {
            let _ = self.close_with(close_code::ERROR, "consumer error").await;
        }
        self.end(close_code::ERROR);
    }

    /// Settles a consumer that could not accept because everything under it
    /// failed (a demultiplexer whose streams all failed in connect).
    pub(crate) fn fail_unaccepted(&self) {
        if self.advance(PENDING, FAILED) {
            self.settle_unaccepted(Unaccepted::Failed, String::new());
        }
    }

    /// The client is gone (with `code`): later sends fail fast with
    /// [`SendError::Closed`], frames still queued for the consumer are
    /// skipped, and it ends with `code`.
    pub(crate) fn disconnected(&self, code: u16) {
        if self.advance(ACCEPTED, CLOSED) {
            self.stream_ended();
        } else {
            let _ = self.advance(PENDING, CLOSED);
        }
        self.end(code);
    }

    /// The client unsubscribed: the stream stops as if closed, without a
    /// `closed` frame or any effect on the socket. Returns whether it was
    /// still accepted (or still pending) rather than already finished.
    pub(crate) async fn unsubscribed(&self) -> Unsubscribed {
        let was = loop {
            match self.settled_state().await {
                ACCEPTED if self.advance(ACCEPTED, CLOSED) => {
                    self.stream_ended();
                    break Unsubscribed::FromOpen;
                }
                PENDING if self.advance(PENDING, CLOSED) => break Unsubscribed::FromPending,
                PENDING | ACCEPTED => continue,
                _ => break Unsubscribed::AlreadyEnded,
            }
        };
        self.end(close_code::NORMAL);
        was
    }

    /// Starts the consumer's end with `code` (the first code wins): its
    /// inbox takes nothing more, a handler still running is cancelled at its
    /// next await, and [`closing`](Context::closing) completes.
    pub(crate) fn end(&self, code: u16) {
        let _ = self
            .inner
            .ending
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.inner.inbox.close();
        self.inner.settled.notify_waiters();
    }

    /// Whether the consumer has started ending.
    pub(crate) fn is_ending(&self) -> bool {
        self.inner.ending.load(Ordering::Acquire) != 0
    }

    /// The code the consumer ends with (1006 if nothing said otherwise).
    pub(crate) fn end_code(&self) -> u16 {
        match self.inner.ending.load(Ordering::Acquire) {
            0 => close_code::ABNORMAL,
            code => code,
        }
    }

    /// Completes when the consumer starts ending: its stream closed or was
    /// unsubscribed, the client left, or a handler failed. Race work
    /// against it to stop with the consumer.
    pub async fn closing(&self) {
        loop {
            let woken = self.inner.settled.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.is_ending() {
                return;
            }
            woken.await;
        }
    }

    /// Runs `task` on the Tokio runtime for as long as this consumer lives:
    /// it is stopped (dropped at its next await) when the consumer starts
    /// ending, however it ends. A timer that pushes to the client is such a
    /// task. The handle's output is `None` when the task was stopped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chanmux::{BoxError, Consumer, Context};
    ///
    /// struct Clock;
    /// impl Consumer for Clock {
    ///     async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
    ///         ctx.accept().await?;
    ///         let tick = ctx.clone();
    ///         ctx.spawn(async move {
    ///             let mut interval = tokio::time::interval(Duration::from_secs(1));
    ///             loop {
    ///                 interval.tick().await;
    ///                 if tick.send_json(&"tick").await.is_err() {
    ///                     break;
    ///                 }
    ///             }
    ///         });
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let ctx = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = ctx.closing() => None,
                output = task => Some(output),
            }
        })
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
    /// because the stream closed (or refused, or failed) first.
    pub(crate) async fn report_undelivered(&self, reference: Option<Ref>) {
        if let Link::Stream(link) = &self.inner.link {
            let name = link.name();
            let refusal = link.on_demand.as_deref().and_then(OnDemand::refusal);
            let (code, message) = match refusal {
                Some(reason) => (ErrorCode::SubscriptionRefused, reason),
                None => (
                    ErrorCode::StreamNotAccepting,
                    format!("stream {name:?} closed before handling this frame"),
                ),
            };
            let reference = reference.as_ref().map(Ref::as_json);
            let _ = link
                .demux
                .send_error(code, &message, Some(name), reference)
                .await;
        }
    }

    /// The consumer is about to hear `disconnect`: a subscribe still
    /// waiting for it to accept is answered now.
    pub(crate) async fn consumer_ending(&self) {
        if let Link::Stream(link) = &self.inner.link {
            link.demux.stream_ending(link).await;
        }
    }

    /// Waits until the consumer starts ending, for [`Stoppable`](super::runner).
    pub(crate) fn ending_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.settled.notified()
    }
}

/// Settles an accept that was cancelled midway: the consumer is closed,
/// and a stream that counted itself open no longer does.
struct Abandoned<'a>(&'a Context);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let ctx = self.0;
        if ctx.advance(ACCEPTING, CLOSED) {
            if let Link::Stream(link) = &ctx.inner.link {
                link.demux.stream_accept_abandoned();
            }
            ctx.inner.settled.notify_waiters();
        }
    }
}

/// What an unsubscribe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsubscribed {
    FromOpen,
    FromPending,
    AlreadyEnded,
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

/// A [`Context`] that does not keep its consumer's connection alive: what
/// the layer holds for each consumer with a channel.
pub(crate) struct WeakContext(Weak<Inner>);

impl WeakContext {
    pub(crate) fn upgrade(&self) -> Option<Context> {
        self.0.upgrade().map(|inner| Context { inner })
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
