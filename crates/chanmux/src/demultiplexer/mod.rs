//! The [`Demultiplexer`]: one consumer per stream on a single socket.
//!
//! Itself a [`ConsumerFactory`], so it mounts wherever a consumer does (on an
//! axum route, in a [`Communicator`](crate::testing::Communicator), or as a
//! stream of another demultiplexer). Semantics follow Django Channels'
//! `channelsmultiplexer`, except that bad input gets an error frame instead of
//! killing the connection; see the crate docs for the full list.

mod declared;
mod driver;
mod on_demand;
mod pattern;
mod route;
mod session;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub(crate) use declared::Declared;
pub(crate) use on_demand::OnDemand;
use pattern::Pattern;
pub(crate) use session::Session;

use crate::layer::{GroupName, IntoSharedLayer, Message, MessageError, SharedLayer};
use crate::{ConsumerFactory, GroupError, Start, Started};

/// Routes `{"stream", "payload"}` frames to one consumer per stream.
///
/// Cheap to clone. Build it with [`builder`](Demultiplexer::builder) or from a
/// type that lists its streams with [`from_streams`](Demultiplexer::from_streams).
///
/// Three kinds of stream (PROTOCOL.md):
/// - [`stream`](DemultiplexerBuilder::stream): eager, started on every
///   connection at connect (channelsmultiplexer's kind);
/// - [`lazy_stream`](DemultiplexerBuilder::lazy_stream): started when the
///   client subscribes to it or first sends it a frame;
/// - [`pattern`](DemultiplexerBuilder::pattern), such as `room:{id}`: every
///   name that matches starts its own consumer, on the same occasions.
///
/// The client may stop any running stream (`unsubscribe`) and start it
/// again (`subscribe`), which gives a fresh consumer.
///
/// ```
/// use chanmux::{BoxError, Consumer, Context, Demultiplexer, Text};
///
/// struct Echo;
/// impl Consumer for Echo {
///     async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
///         Ok(ctx.send_text(text).await?)
///     }
/// }
///
/// let demux = Demultiplexer::builder()
///     .stream("echostream", || Echo)
///     .max_frame_size(64 * 1024)
///     .build();
/// assert_eq!(demux.stream_names().collect::<Vec<_>>(), ["echostream"]);
/// ```
#[derive(Clone)]
pub struct Demultiplexer {
    spec: Arc<Spec>,
}

/// The streams and settings shared by every connection of one demultiplexer.
struct Spec {
    /// The streams, in the order they were added.
    entries: Vec<Entry>,
    /// Named entries (eager and lazy), by name.
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Pattern entries, in the order they were added.
    patterns: Vec<usize>,
    /// Some entries are lazy or patterns: the socket outlives its streams.
    dynamic: bool,
    config: DemultiplexerConfig,
    layer: Option<SharedLayer>,
}

/// One declared stream: what it is called, how it starts, what serves it.
struct Entry {
    /// Its name (or pattern), prefix and metrics, shared by its consumers
    /// on every connection.
    declared: Arc<Declared>,
    factory: Arc<dyn ConsumerFactory>,
    kind: Kind,
}

enum Kind {
    /// Started at connect.
    Eager,
    /// Started by a subscribe or a first frame.
    Lazy,
    /// Started, as a lazy stream, for every name that matches.
    Pattern(Pattern),
}

impl Entry {
    fn is_eager(&self) -> bool {
        matches!(self.kind, Kind::Eager)
    }

    /// Lazy and pattern streams start when the client asks for them.
    fn starts_on_demand(&self) -> bool {
        !self.is_eager()
    }

    fn is_pattern(&self) -> bool {
        matches!(self.kind, Kind::Pattern(_))
    }

    /// What `name` captures under this entry's pattern (none for a name).
    fn captures<'n>(&self, name: &'n str) -> Vec<(&str, &'n str)> {
        match &self.kind {
            Kind::Pattern(pattern) => pattern.captures(name).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Settings of a [`Demultiplexer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemultiplexerConfig {
    /// Largest text frame that is parsed; larger ones get `frame_too_large`.
    /// Default 1 MiB.
    pub max_frame_size: usize,
    /// Frames queued per stream while its consumer is busy; beyond that a
    /// frame gets `stream_overloaded`. Default 64.
    pub stream_queue_capacity: usize,
    /// Bytes of frames queued per stream (each queued payload keeps its
    /// whole frame); a frame that would go over gets `stream_overloaded`,
    /// unless the queue is empty. Default 1 MiB.
    pub stream_queue_bytes: usize,
    /// Bytes of frames queued for all the streams of one connection
    /// together; a frame that would go over gets `stream_overloaded`, unless
    /// nothing is queued at all. With streams started on demand (up to
    /// `max_streams`), this is what bounds a connection's queued frames.
    /// Default 4 MiB.
    pub max_queued_bytes: usize,
    /// Close the socket with 1008 (reason: the error code) on bad input
    /// instead of replying with an error frame. Default `false`.
    pub strict: bool,
    /// Streams a client may have started (by `subscribe` or a first frame)
    /// and running at once; beyond that, `too_many_streams`. Streams started
    /// at connect are not counted. Default 128.
    pub max_streams: usize,
    /// Largest `params` of a `subscribe`, in bytes of JSON text; larger ones
    /// get `frame_too_large`. They are kept as long as the stream runs.
    /// Default 4096.
    pub max_params_size: usize,
    /// How long a stream the client started (by a subscribe or a first
    /// frame) has to accept or refuse; then it is refused, which answers
    /// the subscribe and the frames waiting for it `subscription_refused`.
    /// A subscribe to a stream started at connect that has not decided is
    /// answered so too, the stream running on. Default 5 s, as the connect
    /// timeout.
    pub subscribe_timeout: Duration,
}

impl Default for DemultiplexerConfig {
    fn default() -> Self {
        DemultiplexerConfig {
            max_frame_size: 1024 * 1024,
            stream_queue_capacity: 64,
            stream_queue_bytes: 1024 * 1024,
            max_queued_bytes: 4 * 1024 * 1024,
            strict: false,
            max_streams: 128,
            max_params_size: 4096,
            subscribe_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds a [`Demultiplexer`]; see [`Demultiplexer::builder`].
#[must_use]
pub struct DemultiplexerBuilder {
    entries: Vec<(Arc<str>, Arc<dyn ConsumerFactory>, Kind)>,
    config: DemultiplexerConfig,
    layer: Option<SharedLayer>,
}

/// A type that lists its streams, like a Python subclass with `applications = {...}`.
///
/// ```
/// use chanmux::{Consumer, Demultiplexer, DemultiplexerBuilder, Streams};
///
/// struct Quiet;
/// impl Consumer for Quiet {}
///
/// struct MyStreams;
/// impl Streams for MyStreams {
///     fn streams(&self, builder: DemultiplexerBuilder) -> DemultiplexerBuilder {
///         builder.stream("quiet", || Quiet)
///     }
/// }
///
/// let demux = Demultiplexer::from_streams(MyStreams);
/// assert_eq!(demux.stream_names().count(), 1);
/// ```
pub trait Streams {
    /// Adds this type's streams (and any settings) to `builder`.
    fn streams(&self, builder: DemultiplexerBuilder) -> DemultiplexerBuilder;
}

impl Demultiplexer {
    /// Starts a builder with no streams and default settings.
    pub fn builder() -> DemultiplexerBuilder {
        DemultiplexerBuilder {
            entries: Vec::new(),
            config: DemultiplexerConfig::default(),
            layer: None,
        }
    }

    /// Builds a demultiplexer from a type that lists its streams.
    pub fn from_streams(streams: impl Streams) -> Self {
        streams.streams(Demultiplexer::builder()).build()
    }

    /// The stream names (and patterns, as written), in the order they were added.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.spec.entries.iter().map(|e| &*e.declared.name)
    }

    /// The settings.
    pub fn config(&self) -> &DemultiplexerConfig {
        &self.spec.config
    }

    /// The channel layer its streams use, if one was set.
    pub fn layer(&self) -> Option<&SharedLayer> {
        self.spec.layer.as_ref()
    }

    /// Sends `{"stream": stream, "payload": payload}` straight to the client
    /// of every consumer in `group`, without passing through the consumers.
    /// The frame is serialised once and shared by every recipient, across
    /// processes too when the layer spans them.
    ///
    /// # Errors
    ///
    /// An invalid group name, no layer, or the layer's backend failing.
    pub async fn group_send<T: Serialize + ?Sized>(
        &self,
        group: &str,
        stream: &str,
        payload: &T,
    ) -> Result<(), GroupError> {
        let (group, layer) = self.group_target(group)?;
        let payload =
            serde_json::to_string(payload).map_err(|e| MessageError::InvalidJson(e.to_string()))?;
        // Just serialised: valid JSON, no need to check it again.
        self.send_frame(layer, &group, stream, &payload).await
    }

    /// As [`group_send`](Demultiplexer::group_send), with the payload given as
    /// JSON text, which is checked but not re-serialised.
    ///
    /// # Errors
    ///
    /// As [`group_send`](Demultiplexer::group_send), and
    /// [`MessageError::InvalidJson`] when `payload` is not JSON.
    pub async fn group_send_raw(
        &self,
        group: &str,
        stream: &str,
        payload: &str,
    ) -> Result<(), GroupError> {
        let (group, layer) = self.group_target(group)?;
        serde_json::from_str::<serde::de::IgnoredAny>(payload)
            .map_err(|e| MessageError::InvalidJson(e.to_string()))?;
        self.send_frame(layer, &group, stream, payload).await
    }

    /// The group and the layer a group send goes through.
    fn group_target(&self, group: &str) -> Result<(GroupName, &SharedLayer), GroupError> {
        let group = GroupName::new(group)?;
        let layer = self.spec.layer.as_ref().ok_or(GroupError::NoLayer)?;
        Ok((group, layer))
    }

    /// Sends a frame of `payload` (valid JSON) to `group`; a stream of this
    /// demultiplexer uses the prefix it built once.
    async fn send_frame(
        &self,
        layer: &SharedLayer,
        group: &GroupName,
        stream: &str,
        payload: &str,
    ) -> Result<(), GroupError> {
        let frame = match self.spec.index.get(stream) {
            Some(&i) => Message::frame_with(&self.spec.entries[i].declared.prefix, payload),
            None => Message::frame(stream, payload),
        };
        layer.group_send(group, frame).await?;
        Ok(())
    }
}

impl DemultiplexerBuilder {
    /// Serves stream `name` with consumers made by `factory` (for example
    /// `|| Echo`, a [`PathRouter`](crate::PathRouter) or another
    /// demultiplexer), started on every connection at connect.
    ///
    /// # Panics
    ///
    /// If `name` was already added.
    pub fn stream(self, name: &str, factory: impl ConsumerFactory) -> Self {
        self.add(name, Arc::new(factory), Kind::Eager)
    }

    /// Serves stream `name`, started only when the client subscribes to it
    /// or first sends it a frame.
    ///
    /// # Panics
    ///
    /// If `name` was already added.
    pub fn lazy_stream(self, name: &str, factory: impl ConsumerFactory) -> Self {
        self.add(name, Arc::new(factory), Kind::Lazy)
    }

    /// Serves every stream whose name matches `pattern`, each with its own
    /// consumer, started when the client subscribes to it or first sends it
    /// a frame. In `room:{id}`, segments are split by `:` and `{id}` captures
    /// one segment of 1–100 ASCII letters, digits, `-`, `_` or `.`, which the
    /// consumer reads with [`Context::capture`](crate::Context::capture).
    /// Names added with [`stream`](Self::stream) or
    /// [`lazy_stream`](Self::lazy_stream) win over patterns; patterns are
    /// tried in the order they were added.
    ///
    /// ```
    /// use chanmux::{BoxError, Consumer, Context, Demultiplexer};
    ///
    /// struct Room;
    /// impl Consumer for Room {
    ///     async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
    ///         let id = ctx.capture("id").unwrap_or_default();
    ///         ctx.group_add(&format!("room.{id}")).await?;
    ///         ctx.accept().await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let demux = Demultiplexer::builder()
    ///     .pattern("room:{id}", || Room)
    ///     .channel_layer(chanmux::layer::InMemoryLayer::new())
    ///     .build();
    /// ```
    ///
    /// # Panics
    ///
    /// If `pattern` is malformed (a segment mixing text and a capture, an
    /// empty segment, a repeated capture, no capture at all) or was already
    /// added.
    pub fn pattern(self, pattern: &str, factory: impl ConsumerFactory) -> Self {
        let parsed = match Pattern::parse(pattern) {
            Ok(parsed) => parsed,
            Err(e) => panic!("invalid stream pattern: {e}"),
        };
        self.add(pattern, Arc::new(factory), Kind::Pattern(parsed))
    }

    fn add(mut self, name: &str, factory: Arc<dyn ConsumerFactory>, kind: Kind) -> Self {
        assert!(
            !self.entries.iter().any(|(n, ..)| &**n == name),
            "stream {name:?} is added twice"
        );
        self.entries.push((name.into(), factory, kind));
        self
    }

    /// Streams a client may have started and running at once (default
    /// 128); see [`DemultiplexerConfig::max_streams`].
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.config.max_streams = streams;
        self
    }

    /// Largest `params` of a `subscribe`, in bytes (default 4096).
    pub fn max_params_size(mut self, bytes: usize) -> Self {
        self.config.max_params_size = bytes;
        self
    }

    /// How long a `subscribe` waits for the consumer to decide (default
    /// 5 s); see [`DemultiplexerConfig::subscribe_timeout`].
    pub fn subscribe_timeout(mut self, timeout: Duration) -> Self {
        self.config.subscribe_timeout = timeout;
        self
    }

    /// Largest text frame that is parsed (default 1 MiB); larger frames get a
    /// `frame_too_large` error frame.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// Frames queued per stream while its consumer is busy (default 64);
    /// a frame beyond that gets `stream_overloaded`.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn stream_queue_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "stream queue capacity must be at least 1");
        self.config.stream_queue_capacity = capacity;
        self
    }

    /// Bytes of frames queued per stream before frames get
    /// `stream_overloaded` (default 1 MiB; a frame always fits an empty queue).
    pub fn stream_queue_bytes(mut self, bytes: usize) -> Self {
        self.config.stream_queue_bytes = bytes;
        self
    }

    /// Bytes of frames queued for all of a connection's streams together
    /// (default 4 MiB); see [`DemultiplexerConfig::max_queued_bytes`].
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.config.max_queued_bytes = bytes;
        self
    }

    /// On bad input, close the socket with 1008 and the error code as the
    /// reason instead of replying with an error frame (default `false`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.config.strict = strict;
        self
    }

    /// Gives the streams a channel layer for groups (see [`crate::layer`]):
    /// by value (`InMemoryLayer::new()`) or shared (`Arc<L>`, [`SharedLayer`]).
    pub fn channel_layer(mut self, layer: impl IntoSharedLayer) -> Self {
        self.layer = Some(layer.into_shared_layer());
        self
    }

    /// Replaces all settings at once.
    pub fn config(mut self, config: DemultiplexerConfig) -> Self {
        assert!(
            config.stream_queue_capacity > 0,
            "stream queue capacity must be at least 1"
        );
        self.config = config;
        self
    }

    /// Finishes the demultiplexer.
    pub fn build(self) -> Demultiplexer {
        let mut index = HashMap::default();
        let mut patterns = Vec::new();
        let entries: Vec<Entry> = self
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, (name, factory, kind))| {
                match kind {
                    Kind::Pattern(_) => patterns.push(i),
                    _ => {
                        index.insert(Box::from(&*name), i);
                    }
                }
                Entry {
                    declared: Arc::new(Declared::new(name, i)),
                    factory,
                    kind,
                }
            })
            .collect();
        Demultiplexer {
            spec: Arc::new(Spec {
                dynamic: entries.iter().any(Entry::starts_on_demand),
                entries,
                index,
                patterns,
                config: self.config,
                layer: self.layer,
            }),
        }
    }
}

impl ConsumerFactory for Demultiplexer {
    fn start(&self, start: Start) -> Started {
        driver::start(&self.spec, start)
    }

    fn max_message_size(&self) -> Option<usize> {
        Some(self.spec.config.max_frame_size)
    }
}

impl fmt::Debug for Demultiplexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demultiplexer")
            .field("streams", &self.stream_names().collect::<Vec<_>>())
            .field("config", &self.spec.config)
            .finish()
    }
}

impl fmt::Debug for DemultiplexerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(name, ..)| &**name).collect();
        f.debug_struct("DemultiplexerBuilder")
            .field("streams", &names)
            .field("config", &self.config)
            .finish()
    }
}
