//! The [`Demultiplexer`]: one consumer per stream on a single socket.
//!
//! Itself a [`ConsumerFactory`], so it mounts wherever a consumer does (on an
//! axum route, in a [`Communicator`](crate::testing::Communicator), or as a
//! stream of another demultiplexer). Semantics follow Django Channels'
//! `channelsmultiplexer`, except that bad input gets an error frame instead of
//! killing the connection; see the crate docs for the full list.

mod consumer;
mod declared;
mod shared;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub(crate) use declared::Declared;
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::GroupError;
use crate::layer::{GroupName, Message, MessageError, SharedLayer};

pub(crate) use consumer::Router;
pub(crate) use shared::Shared;

use crate::{ConsumerFactory, Start};

/// Routes `{"stream", "payload"}` frames to one consumer per stream.
///
/// Cheap to clone. Build it with [`builder`](Demultiplexer::builder) or from a
/// type that lists its streams with [`from_streams`](Demultiplexer::from_streams).
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
    /// Each stream's name, prefix and metrics, in the order they were added,
    /// shared by its consumers on every connection.
    declared: Vec<Arc<Declared>>,
    factories: Vec<Arc<dyn ConsumerFactory>>,
    index: HashMap<Box<str>, usize>,
    config: DemultiplexerConfig,
    layer: Option<SharedLayer>,
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
    /// Close the socket with 1008 (reason: the error code) on bad input
    /// instead of replying with an error frame. Default `false`.
    pub strict: bool,
}

impl Default for DemultiplexerConfig {
    fn default() -> Self {
        DemultiplexerConfig {
            max_frame_size: 1024 * 1024,
            stream_queue_capacity: 64,
            stream_queue_bytes: 1024 * 1024,
            strict: false,
        }
    }
}

/// Builds a [`Demultiplexer`]; see [`Demultiplexer::builder`].
#[must_use]
pub struct DemultiplexerBuilder {
    names: Vec<Arc<str>>,
    factories: Vec<Arc<dyn ConsumerFactory>>,
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
            names: Vec::new(),
            factories: Vec::new(),
            config: DemultiplexerConfig::default(),
            layer: None,
        }
    }

    /// Builds a demultiplexer from a type that lists its streams.
    pub fn from_streams(streams: impl Streams) -> Self {
        streams.streams(Demultiplexer::builder()).build()
    }

    /// The stream names, in the order they were added.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.spec.declared.iter().map(|d| &*d.name)
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
            Some(&i) => Message::frame_with(&self.spec.declared[i].prefix, payload),
            None => Message::frame(stream, payload),
        };
        layer.group_send(group, frame).await?;
        Ok(())
    }
}

impl DemultiplexerBuilder {
    /// Serves stream `name` with consumers made by `factory` (for example
    /// `|| Echo`, a [`PathRouter`](crate::PathRouter) or another demultiplexer).
    ///
    /// # Panics
    ///
    /// If `name` was already added.
    pub fn stream(mut self, name: &str, factory: impl ConsumerFactory) -> Self {
        assert!(
            !self.names.iter().any(|n| &**n == name),
            "stream {name:?} is added twice"
        );
        self.names.push(name.into());
        self.factories.push(Arc::new(factory));
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

    /// On bad input, close the socket with 1008 and the error code as the
    /// reason instead of replying with an error frame (default `false`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.config.strict = strict;
        self
    }

    /// Gives the streams a channel layer for groups (see [`crate::layer`]),
    /// e.g. `Arc::new(InMemoryLayer::new())`.
    pub fn layer(mut self, layer: SharedLayer) -> Self {
        self.layer = Some(layer);
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
        let index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| (Box::from(&**name), i))
            .collect();
        Demultiplexer {
            spec: Arc::new(Spec {
                declared: self
                    .names
                    .into_iter()
                    .map(|name| Arc::new(Declared::new(name)))
                    .collect(),
                factories: self.factories,
                index,
                config: self.config,
                layer: self.layer,
            }),
        }
    }
}

impl ConsumerFactory for Demultiplexer {
    fn start(&self, start: Start) -> BoxFuture<'static, ()> {
        consumer::start(&self.spec, start)
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
        f.debug_struct("DemultiplexerBuilder")
            .field("streams", &self.names)
            .field("config", &self.config)
            .finish()
    }
}
