//! Starting a demultiplexer on a connection and running its streams: every
//! stream's consumer runs as a future inside one [`Driver`], not as a task
//! of its own, so an idle stream costs only its consumer's state, and
//! dropping the driver stops them all.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::Spec;
use super::session::{Session, Tagged};
use crate::consumer::Input;
use crate::router::NoRoute;
use crate::{Start, Started};

/// Starts a demultiplexer on one connection (or one stream of an outer
/// demultiplexer): its eager streams start now; frames are routed through
/// the returned input, straight to the streams.
pub(super) fn start(spec: &Arc<Spec>, start: Start) -> Started {
    if spec.entries.is_empty() {
        // Nothing could ever accept.
        return start.run(NoRoute);
    }
    let session = Arc::new(Session::new(spec.clone(), start.ctx.clone()));
    let mut eager = 0;
    {
        let mut state = session.state();
        for (index, entry) in spec.entries.iter().enumerate() {
            if entry.is_eager() {
                session.start_stream(&mut state, index, None, false);
                eager += 1;
            }
        }
    }
    let streams = FuturesUnordered::new();
    if eager == 0 {
        // No stream to wait for: the socket opens at once.
        let opening = session.clone();
        streams.push(Tagged::untagged(Box::pin(async move {
            let _ = opening.accept_parent(None).await;
            opening.connected_at_once().await;
        })));
    }
    Started {
        future: Box::pin(Driver {
            session: session.clone(),
            streams,
            done: false,
        }),
        input: Input::Demux(session),
    }
}

/// Runs a connection's streams, taking in those started since it last
/// looked; done once the client has left and every stream has finished.
struct Driver {
    session: Arc<Session>,
    /// Held inline, each with its tag: a stream costs one allocation for
    /// its future, not one more for a wrapper.
    streams: FuturesUnordered<Tagged>,
    /// The client has left: done once the streams are.
    done: bool,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            // Every poll: a wake from another thread may have taken the
            // waker at any moment (registering the same one again is cheap).
            this.session.driver.register(cx.waker());
            // The table is locked only when streams were started or the
            // client left.
            let news = &this.session.news;
            if news.load(Ordering::Acquire) && news.swap(false, Ordering::AcqRel) {
                let (started, disconnected) = {
                    let mut state = this.session.state();
                    // Taken whole, so an idle connection keeps no buffer.
                    (std::mem::take(&mut state.started), state.disconnected)
                };
                this.done |= disconnected;
                for stream in started {
                    this.streams.push(stream);
                }
                continue;
            }
            match this.streams.poll_next_unpin(cx) {
                Poll::Ready(Some(finished)) => this.session.finished(&finished),
                Poll::Ready(None) if this.done => return Poll::Ready(()),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Contexts in the table hold the session: empty it, or the two
        // would keep each other alive.
        self.session.clear();
    }
}
