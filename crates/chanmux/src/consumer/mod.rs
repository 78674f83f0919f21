//! Consumers: the objects that serve a connection or one stream of it.
//!
//! A consumer is written as if it owned the socket. Its lifecycle:
//!
//! 1. [`connect`](Consumer::connect) — accept with [`Context::accept`], refuse
//!    with [`Context::refuse`] (or [`Context::refuse_with`] a reason), or do
//!    neither yet (a clone of the context may accept later; the connection's
//!    connect timeout bounds the wait).
//! 2. [`receive_text`](Consumer::receive_text) /
//!    [`receive_binary`](Consumer::receive_binary) /
//!    [`event`](Consumer::event) — one call at a time, in arrival order,
//!    only while accepted and not closed.
//! 3. [`disconnect`](Consumer::disconnect) — the consumer is ending. It is
//!    always the last call, made exactly once, however the consumer ends
//!    (see its docs for the codes), and cut off after the close timeout.
//!
//! When a consumer starts ending (its stream closed or was unsubscribed, or
//! the client left), a handler still running is cancelled at its next
//! `.await`, tasks started with [`Context::spawn`] are stopped, and
//! [`Context::closing`] completes; then `disconnect` runs.
//!
//! A handler that returns an error or panics is contained: it is logged, its
//! stream is closed (code 1011) and other streams and connections go on.

mod context;
mod factory;
mod json;
pub(crate) mod runner;

use std::future::Future;

use bytes::Bytes;
use chanmux_core::{Message, Ref};

pub use context::Context;
pub(crate) use context::{Decision, Outbound, StreamLink, Unaccepted, Unsubscribed, WeakContext};
pub(crate) use factory::Input;
pub use factory::{ConsumerFactory, Start, Started};
pub use json::JsonConsumer;

use crate::{BoxError, Text};

/// Serves one connection, or one stream of a demultiplexed connection.
///
/// One instance is made per connection (per stream) by a
/// [`ConsumerFactory`], usually a closure `|| MyConsumer::default()`, so its
/// fields are per-connection state. Every method has a default: connect
/// accepts, messages are ignored.
///
/// ```
/// use chanmux::{BoxError, Consumer, Context, Text};
///
/// /// Replies with whatever it receives.
/// struct Echo;
///
/// impl Consumer for Echo {
///     async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
///         ctx.send_text(text).await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Consumer: Send + 'static {
    /// The client connected. The default accepts.
    ///
    /// Returning an error (or panicking) before accepting refuses the
    /// connection with HTTP 500 (a stream of a demultiplexer is refused).
    fn connect(&mut self, ctx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        async move {
            ctx.accept().await?;
            Ok(())
        }
    }

    /// A text message arrived (for a stream: its payload, as raw JSON text).
    fn receive_text(
        &mut self,
        ctx: &Context,
        text: Text,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (ctx, text);
        async { Ok(()) }
    }

    /// A binary message arrived. Streams of a demultiplexer never get these.
    fn receive_binary(
        &mut self,
        ctx: &Context,
        data: Bytes,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (ctx, data);
        async { Ok(()) }
    }

    /// A message arrived from the channel layer: sent to this consumer's
    /// channel or to one of its groups (see [`Context::group_add`]). The
    /// default ignores it. Frame messages never come here: they go straight
    /// to the client.
    ///
    /// Dispatch by [`Message::message_type`], or parse the message into an
    /// enum with `#[serde(tag = "type")]`.
    fn event(
        &mut self,
        ctx: &Context,
        message: Message,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (ctx, message);
        async { Ok(()) }
    }

    /// The consumer is ending; nothing can be sent any more. Always the last
    /// call, made exactly once for every consumer whose `connect` ran, so
    /// it is the place to release what the consumer holds. `code` says why:
    ///
    /// | the consumer ended because | `code` |
    /// |---|---|
    /// | the client left | the client's close code (1006 if it vanished) |
    /// | its stream closed itself ([`Context::close_with`]) | that close code |
    /// | the client unsubscribed from its stream | 1000 |
    /// | it refused, or never answered and was refused | 1006 |
    /// | a handler failed (error or panic) | 1011 |
    ///
    /// A consumer owning the whole socket ends with the socket: after its own
    /// close it hears the client's reply code. The connection's close
    /// timeout bounds this call; past it, the consumer is dropped.
    fn disconnect(
        &mut self,
        ctx: &Context,
        code: u16,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (ctx, code);
        async { Ok(()) }
    }
}

/// What the connection delivers to a consumer's inbox.
#[derive(Debug)]
pub(crate) enum Event {
    /// A text message, with the ref of the frame it came in (PROTOCOL.md).
    Text(Text, Option<Ref>),
    Binary(Bytes),
    Layer(Message),
}

impl Event {
    /// The bytes it keeps alive while queued, for byte-bounded queues: a
    /// payload keeps its whole received frame.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Event::Text(text, _) => text.held_len(),
            Event::Binary(data) => data.len(),
            Event::Layer(message) => message.as_str().len(),
        }
    }
}
