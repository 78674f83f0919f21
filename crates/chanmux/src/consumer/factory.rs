//! [`ConsumerFactory`]: makes a fresh consumer for each connection or stream.

use std::fmt;

use futures_util::future::BoxFuture;

use super::{Event, runner};
use crate::queue;
use crate::span::InSpan;
use crate::{Consumer, Context, Scope};

/// Makes one consumer per connection (or per stream per connection) and runs it.
///
/// Implemented for closures `Fn() -> impl Consumer`, for
/// [`Demultiplexer`](crate::Demultiplexer) and for
/// [`PathRouter`](crate::PathRouter); implement it yourself to pick a
/// consumer from the [`Scope`] (call [`Start::run`] with your choice).
pub trait ConsumerFactory: Send + Sync + 'static {
    /// Makes a consumer for the connection described by `start` and returns
    /// the future that runs its whole lifecycle.
    fn start(&self, start: Start) -> BoxFuture<'static, ()>;

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
    fn start(&self, start: Start) -> BoxFuture<'static, ()> {
        start.run(self())
    }
}

/// What a [`ConsumerFactory`] gets to start one consumer: its context and inbox.
pub struct Start {
    pub(crate) ctx: Context,
    pub(crate) inbox: queue::Receiver<Event>,
    /// Entered whenever the consumer runs: a demultiplexer's stream span
    /// (inside the connection's), so every log line names both.
    pub(crate) span: tracing::Span,
}

impl Start {
    /// The connection's scope, to choose a consumer by.
    pub fn scope(&self) -> &Scope {
        self.ctx.scope()
    }

    /// Runs `consumer` for this connection or stream.
    pub fn run<C: Consumer>(self, consumer: C) -> BoxFuture<'static, ()> {
        let runner = runner::run(consumer, self.ctx, self.inbox);
        // Without a subscriber for the span, not even InSpan's pointer.
        if self.span.is_disabled() {
            Box::pin(runner)
        } else {
            Box::pin(InSpan::new(self.span, runner))
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
