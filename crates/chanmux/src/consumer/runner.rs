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
use crate::{BoxError, Consumer, Context, SendError};

/// Whatever way the runner ends (returned, or dropped at the close
/// timeout): closes the consumer's layer channel (if it opened one) and
/// starts its end, which stops the tasks it spawned.
struct EndGuard<'a>(&'a Context);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        self.0.release_channel();
        self.0.end(close_code::ABNORMAL);
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

/// Drives `consumer` through its lifecycle until it ends, then calls its
/// `disconnect` (see [`Consumer::disconnect`] for when and with which code).
///
/// It ends once its context is ending (the client left, its stream closed
/// or was unsubscribed, it refused or failed) and its inbox is drained: the
/// frames still queued are reported undelivered, not handled.
pub(crate) async fn run<C: Consumer>(
    mut consumer: C,
    ctx: Context,
    mut inbox: queue::Receiver<Event>,
) {
    // Its channel lives no longer than this future: dropping it leaves
    // every group.
    let _end = EndGuard(&ctx);
    // Every handler call is boxed: a future awaited inline makes this one as
    // large as the largest of them for the consumer's whole life.
    let connected = guarded(Stoppable::new(&ctx, Box::pin(consumer.connect(&ctx)))).await;
    if let Err(failure) = connected {
        Box::pin(ctx.fail(failure)).await;
    }
    Box::pin(ctx.connect_returned()).await;
    loop {
        // The event is handed to `step` before the next await, so it is
        // never part of this future's state.
        let event = inbox.recv().await;
        let outcome = match step(&mut consumer, &ctx, event) {
            Step::Call(handler) => guarded(Stoppable::new(&ctx, handler)).await,
            Step::Do(work) => {
                work.await;
                continue;
            }
            Step::Skip => continue,
            Step::End => break,
        };
        if let Err(failure) = outcome {
            if failure.is_send_after_close() {
                // Replying after a close or disconnect is not a bug of the
                // consumer: it carries on, and ends next.
                tracing::debug!(
                    stream = ctx.stream().unwrap_or(""),
                    "send after close ignored"
                );
                continue;
            }
            // Closes it (1011) and ends its inbox: what is queued behind
            // the failure is reported undelivered by the next turns.
            Box::pin(ctx.fail(failure)).await;
        }
    }
    let code = ctx.end_code();
    ctx.disconnected(code);
    Box::pin(ctx.consumer_ending()).await;
    if let Err(failure) = guarded(Box::pin(consumer.disconnect(&ctx, code))).await {
        tracing::warn!(stream = ctx.stream().unwrap_or(""), %failure, "disconnect handler failed");
    }
}

/// A handler call that is cancelled once its consumer starts ending (a
/// cancelled call counts as handled). The consumer's notification is boxed
/// and made only when the handler waits: most calls finish on their first
/// poll, and inline it would enlarge every idle runner. Handler calls are
/// boxed already, so this needs no pinning of its own.
struct Stoppable<'a, F> {
    call: F,
    ctx: &'a Context,
    ending: Option<Pin<Box<tokio::sync::futures::Notified<'a>>>>,
}

impl<'a, F> Stoppable<'a, F> {
    fn new(ctx: &'a Context, call: F) -> Self {
        Stoppable {
            call,
            ctx,
            ending: None,
        }
    }
}

impl<F: Future<Output = Result<(), BoxError>> + Unpin> Future for Stoppable<'_, F> {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(outcome) = Pin::new(&mut this.call).poll(cx) {
            return Poll::Ready(outcome);
        }
        let ctx: &Context = this.ctx;
        loop {
            if ctx.is_ending() {
                return Poll::Ready(Ok(()));
            }
            let ending = this
                .ending
                .get_or_insert_with(|| Box::pin(ctx.ending_notified()));
            match ending.as_mut().poll(cx) {
                // Woken (perhaps by an accept settling): look again.
                Poll::Ready(()) => this.ending = None,
                // Registered: an end from here on wakes this task.
                Poll::Pending if ctx.is_ending() => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
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
    /// The inbox has ended: the consumer is ending.
    End,
}

/// Decides what an event means for the consumer, and starts the call.
fn step<'a, C: Consumer>(consumer: &'a mut C, ctx: &'a Context, event: Option<Event>) -> Step<'a> {
    match event {
        // Queued before the consumer closed or the client left: not handed
        // over (a frame reaches a consumer only while accepted).
        Some(Event::Text(_, reference)) if !ctx.is_accepted() => {
            Step::Do(Box::pin(ctx.report_undelivered(reference)))
        }
        Some(Event::Binary(_)) if !ctx.is_accepted() => {
            Step::Do(Box::pin(ctx.report_undelivered(None)))
        }
        // Events reach a consumer that has not accepted yet (it may be
        // waiting for one to decide), never one that has finished. (Frame
        // messages never get here: the layer writes them to the socket.)
        Some(Event::Layer(_)) if ctx.is_finished() => Step::Skip,
        Some(Event::Layer(message)) => {
            Step::Call(Box::pin(timed(ctx, consumer.event(ctx, message))))
        }
        // One allocation per message: inline, the handler's future (often
        // several hundred bytes) would be held by every idle stream.
        // Timed inside the box: inline, the timing's state would enlarge
        // every idle stream's runner.
        Some(Event::Text(text, None)) => {
            Step::Call(Box::pin(timed(ctx, consumer.receive_text(ctx, text))))
        }
        // A frame with a ref: its replies carry it while the handler runs.
        Some(Event::Text(text, Some(reference))) => {
            let replying = Replying::new(ctx, reference);
            Step::Call(Box::pin(async move {
                let _replying = replying;
                timed(ctx, consumer.receive_text(ctx, text)).await
            }))
        }
        Some(Event::Binary(data)) => {
            Step::Call(Box::pin(timed(ctx, consumer.receive_binary(ctx, data))))
        }
        None => Step::End,
    }
}

/// The ref of the frame a stream is handling, set for as long as this
/// lives (until its handler returns or is cancelled).
struct Replying<'a> {
    ctx: &'a Context,
}

impl<'a> Replying<'a> {
    fn new(ctx: &'a Context, reference: chanmux_core::Ref) -> Self {
        if let Some(link) = ctx.stream_link() {
            link.demux.set_current_ref(link.id, Some(reference));
        }
        Replying { ctx }
    }
}

impl Drop for Replying<'_> {
    fn drop(&mut self) {
        if let Some(link) = self.ctx.stream_link() {
            link.demux.set_current_ref(link.id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Text;

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
