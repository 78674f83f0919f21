//! [`ConsumerFactory`]: makes a fresh consumer for each connection or stream.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Event, runner};
use crate::demultiplexer::Session;
use crate::queue;
use crate::span::InSpan;
use crate::{Consumer, Context, Scope};

/// Makes one consumer per connection (or per stream per connection) and runs it.
///
/// Implemented for closures `Fn() -> impl Consumer`, for
/// [`Demultiplexer`](crate::Demultiplexer) and for
/// [`PathRouter`](crate::PathRouter); implement it yourself to pick a
/// consumer from the [`Scope`] (call [`Start::run`] with your choice).
///
/// A consumer itself is not a factory: each connection needs its own, so
/// pass a closure that makes one.
///
/// ```compile_fail
/// use chanmux::{Consumer, Demultiplexer};
/// struct Echo;
/// impl Consumer for Echo {}
/// // error: `Echo` is a consumer, not a factory of consumers ... pass `|| Echo`
/// let demux = Demultiplexer::builder().stream("echo", Echo).build();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a consumer factory",
    label = "a factory is needed here, to make a fresh consumer per connection",
    note = "if `{Self}` is a consumer, pass a closure that makes one: `|| {Self}` (or `{Self}::default`)"
)]
pub trait ConsumerFactory: Send + Sync + 'static {
    /// Makes a consumer for the connection (or stream) described by `start`
    /// and returns its running form: call [`Start::run`].
    fn start(&self, start: Start) -> Started;

    /// The largest message this application reads, if it has a limit: the
    /// transport then refuses larger messages itself (close 1009) as soon as
    /// it knows, instead of buffering them. Default: none (the connection's
    /// [`max_message_size`](crate::ConnectionConfig::max_message_size) applies).
    fn max_message_size(&self) -> Option<usize> {
        None
    }
}

impl<F, C> ConsumerFactory for F
where
    F: Fn() -> C + Send + Sync + 'static,
    C: Consumer,
{
    fn start(&self, start: Start) -> Started {
        start.run(self())
    }
}

/// What a [`ConsumerFactory`] gets to start one consumer: its context and inbox.
pub struct Start {
    pub(crate) ctx: Context,
    pub(crate) inbox: queue::Sender<Event>,
    pub(crate) inbox_rx: queue::Receiver<Event>,
    /// Entered whenever the consumer runs: a demultiplexer's stream span
    /// (inside the connection's), so every log line names both.
    pub(crate) span: tracing::Span,
}

/// A started consumer: the future that runs its lifecycle, and where its
/// input goes. Made by [`Start::run`] (or a demultiplexer).
#[must_use = "a started consumer does nothing until its owner runs it"]
pub struct Started {
    pub(crate) future: BoxFuture<'static, ()>,
    pub(crate) input: Input,
}

/// Where the frames for a started consumer go: handed back by its start,
/// so frames are routed straight to it at every nesting level.
#[derive(Clone)]
pub(crate) enum Input {
    /// A consumer's inbox.
    Queue(queue::Sender<Event>),
    /// A demultiplexer's streams on this connection, routed by the caller.
    Demux(Arc<Session>),
}

impl Start {
    /// The connection's scope, to choose a consumer by.
    pub fn scope(&self) -> &Scope {
        self.ctx.scope()
    }

    /// Runs `consumer` for this connection or stream.
    pub fn run<C: Consumer>(self, consumer: C) -> Started {
        let runner = runner::run(consumer, self.ctx, self.inbox_rx);
        // Without a subscriber for the span, not even InSpan's pointer.
        let future: BoxFuture<'static, ()> = if self.span.is_disabled() {
            Box::pin(runner)
        } else {
            Box::pin(InSpan::new(self.span, runner))
        };
        Started {
            future,
            input: Input::Queue(self.inbox),
        }
    }
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}
