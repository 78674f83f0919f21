//! Runs one consumer: its lifecycle over an inbox, with every handler call
//! guarded so an error or a panic closes this consumer only.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use chanmux_core::close_code;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Event;
use crate::metrics::StreamHandles;
use crate::queue;
use crate::{BoxError, Consumer, Context, SendError, Text};

/// Closes the consumer's layer channel (if it opened one) when dropped.
struct ChannelRelease<'a>(&'a Context);

impl Drop for ChannelRelease<'_> {
    fn drop(&mut self) {
        self.0.release_channel();
    }
}

/// How a handler failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Error(BoxError),
    Panic(String),
}

impl Failure {
    /// The handler returned [`SendError::Closed`]: it tried to send after
    /// its stream closed or the client left.
    fn is_send_after_close(&self) -> bool {
        matches!(self, Failure::Error(e) if e.downcast_ref::<SendError>() == Some(&SendError::Closed))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "error: {e}"),
            Failure::Panic(msg) => write!(f, "panic: {msg}"),
        }
    }
}

/// Awaits a handler, turning an error or a panic into a [`Failure`].
///
/// A combinator rather than an `async fn`: an `async fn` would hold the
/// handler's future twice (as its argument and as the awaited value).
fn guarded(
    handler: impl Future<Output = Result<(), BoxError>>,
) -> impl Future<Output = Result<(), Failure>> {
    AssertUnwindSafe(handler)
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Error(e)),
            Err(panic) => Err(Failure::Panic(panic_message(&*panic))),
        })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Drives `consumer` until it disconnects or fails.
///
/// A consumer that fails is not called again: its inbox is dropped, so the
/// demultiplexer sees the stream gone.
pub(crate) async fn run<C: Consumer>(
    mut consumer: C,
    ctx: Context,
    mut inbox: queue::Receiver<Event>,
) {
    // Its channel lives no longer than this future: dropping it (the
    // consumer ended, failed, or was stopped at the close timeout) leaves
    // every group.
    let _channel = ChannelRelease(&ctx);
    // Every handler call is boxed: a future awaited inline makes this one as
    // large as the largest of them for the consumer's whole life.
    let connected = guarded(Box::pin(consumer.connect(&ctx))).await;
    if let Err(failure) = connected {
        Box::pin(ctx.fail(failure)).await;
        Box::pin(ctx.connect_returned()).await;
        return;
    }
    Box::pin(ctx.connect_returned()).await;
    let code = loop {
        // The event is handed to `step` before the next await, so it is
        // never part of this future's state (an `Event` is 72 bytes).
        let event = inbox.recv().await;
        let outcome = match step(&mut consumer, &ctx, event) {
            Step::Call(handler) => guarded(handler).await,
            Step::Do(work) => {
                work.await;
                continue;
            }
            Step::Skip => continue,
            Step::End(code) => break code,
        };
        if let Err(failure) = outcome {
            if failure.is_send_after_close() {
                // Replying after a close or disconnect is not a bug of the
                // consumer: it carries on, and hears of the disconnect next.
                tracing::debug!(
                    stream = ctx.stream().unwrap_or(""),
                    "send after close ignored"
                );
                continue;
            }
            Box::pin(fail_and_drain(&ctx, failure, inbox)).await;
            return;
        }
    };
    ctx.mark_disconnected();
    if let Err(failure) = guarded(Box::pin(consumer.disconnect(&ctx, code))).await {
        tracing::warn!(stream = ctx.stream().unwrap_or(""), %failure, "disconnect handler failed");
    }
}

/// A handler call that records how long it took in its stream's handler
/// histogram (streams only: a socket's consumer has no stream label; and
/// only once metrics are on, see `metrics::describe`).
///
/// A combinator, like `guarded`: an `async fn` would copy the handler's
/// future into its state and again into the awaited slot, on every call.
fn timed<'a, F: Future>(ctx: &'a Context, call: F) -> Timed<'a, F> {
    Timed {
        call,
        metrics: ctx.stream_metrics().filter(|m| m.timing()),
        started: None,
    }
}

pin_project_lite::pin_project! {
    struct Timed<'a, F> {
        #[pin]
        call: F,
        metrics: Option<&'a StreamHandles>,
        started: Option<Instant>,
    }
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(metrics) = this.metrics else {
            return this.call.poll(cx);
        };
        let started = *this.started.get_or_insert_with(Instant::now);
        let outcome = ready!(this.call.poll(cx));
        metrics.handled(started.elapsed());
        Poll::Ready(outcome)
    }
}

/// What to do with one event from the inbox.
enum Step<'a> {
    /// Call a handler (boxed: see `run`).
    Call(BoxFuture<'a, Result<(), BoxError>>),
    /// Answer or forward something, with nothing to contain.
    Do(BoxFuture<'a, ()>),
    Skip,
    /// The client is gone, with this close code.
    End(u16),
}

/// Decides what an event means for the consumer, and starts the call.
fn step<'a, C: Consumer>(consumer: &'a mut C, ctx: &'a Context, event: Option<Event>) -> Step<'a> {
    match event {
        // Queued before the consumer closed or the client left: not handed
        // over (a frame reaches a consumer only while accepted).
        Some(Event::Text(_) | Event::Binary(_)) if !ctx.is_accepted() => {
            Step::Do(Box::pin(ctx.report_undelivered()))
        }
        Some(Event::Layer(message)) => match message.frame_range() {
            // A broadcast frame goes straight to the client, shared, but
            // only while this stream is accepted, like any frame of it.
            Some(range) if ctx.is_accepted() => {
                let frame = Text::shared_json(message.to_shared(), range);
                Step::Do(Box::pin(ctx.send_frame(frame)))
            }
            Some(_) => Step::Skip,
            // Events reach a consumer that has not accepted yet (it may be
            // waiting for one to decide), never one that has finished.
            None if ctx.is_finished() => Step::Skip,
            None => Step::Call(Box::pin(timed(ctx, consumer.event(ctx, message)))),
        },
        // One allocation per message: inline, the handler's future (often
        // several hundred bytes) would be held by every idle stream.
        // Timed inside the box: inline, the timing's state would enlarge
        // every idle stream's runner.
        Some(Event::Text(text)) => {
            Step::Call(Box::pin(timed(ctx, consumer.receive_text(ctx, text))))
        }
        Some(Event::Binary(data)) => {
            Step::Call(Box::pin(timed(ctx, consumer.receive_binary(ctx, data))))
        }
        Some(Event::Disconnect(code)) => Step::End(code),
        // The connection went away without a word (its task was dropped).
        None => Step::End(close_code::ABNORMAL),
    }
}

/// Closes a consumer whose handler failed, and answers every frame that
/// was still queued behind the failure.
async fn fail_and_drain(ctx: &Context, failure: Failure, mut inbox: queue::Receiver<Event>) {
    ctx.fail(failure).await;
    inbox.close();
    while let Some(event) = inbox.recv().await {
        if !matches!(event, Event::Disconnect(_)) {
            ctx.report_undelivered().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Consumer for Echo {
        async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
            ctx.send_text(text).await?;
            Ok(())
        }
    }

    /// Every idle stream keeps its runner future for the connection's life,
    /// so its size is memory per stream per connection. Handler calls are
    /// boxed, so it does not depend on the consumer's handlers; an inline
    /// handler or cold path brings it back to several hundred bytes.
    #[test]
    fn an_echo_consumers_runner_stays_small() {
        let (ctx, inbox) = Context::detached_for_tests();
        let runner = run(Echo, ctx, inbox);
        let size = std::mem::size_of_val(&runner);
        eprintln!("runner future for an echo consumer: {size} bytes");
        assert!(size <= 152, "runner future is {size} bytes");
    }
}
