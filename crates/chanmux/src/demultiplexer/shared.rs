//! State shared by a demultiplexed connection and its stream consumers: who
//! has accepted, and when the socket must accept, refuse or close.

use std::sync::Mutex;

use tokio::sync::OnceCell;

use crate::consumer::Unaccepted;
use crate::{AcceptError, Context};

pub(crate) struct Shared {
    /// The demultiplexer's own context: the socket, or an outer stream.
    parent: Context,
    /// Set once the first stream accepted and the parent accepted in turn.
    parent_accepted: OnceCell<()>,
    counts: Mutex<Counts>,
}

struct Counts {
    pending: usize,
    open: usize,
    failed: usize,
    total: usize,
}

impl Shared {
    pub(crate) fn new(parent: Context, total: usize) -> Self {
        Shared {
            parent,
            parent_accepted: OnceCell::new(),
            counts: Mutex::new(Counts {
                pending: total,
                open: 0,
                failed: 0,
                total,
            }),
        }
    }

    pub(crate) fn parent(&self) -> &Context {
        &self.parent
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .expect("counts are never locked across a panic")
    }

    /// A stream accepted: the socket is accepted by the first one.
    pub(crate) async fn stream_accepted(
        &self,
        protocol: Option<String>,
    ) -> Result<(), AcceptError> {
        {
            let mut counts = self.counts();
            counts.pending -= 1;
            counts.open += 1;
        }
        // Later streams wait here until the first accept has gone through,
        // so nothing they send can overtake it.
        self.parent_accepted
            .get_or_try_init(|| Box::pin(self.parent.accept_with(protocol)))
            .await
            .map(|_| ())
    }

    /// A stream refused or failed before accepting. When no stream is left
    /// that could accept, the socket is refused (HTTP 500 if all failed).
    pub(crate) fn stream_unaccepted(&self, how: Unaccepted) {
        let verdict = {
            let mut counts = self.counts();
            counts.pending -= 1;
            if how == Unaccepted::Failed {
                counts.failed += 1;
            }
            let nobody_left = counts.pending == 0 && counts.open == 0;
            (nobody_left && !self.parent_accepted.initialized())
                .then_some(counts.failed == counts.total)
        };
        match verdict {
            Some(true) => self.parent.fail_unaccepted(),
            Some(false) => self.parent.refuse(),
            None => {}
        }
    }

    /// An accepted stream closed; the socket closes with its code when it was
    /// the last accepting stream. Once the client is leaving, the parent is
    /// already marked disconnected and that close does nothing.
    pub(crate) async fn stream_closed(&self, code: u16, reason: String) {
        let last = {
            let mut counts = self.counts();
            counts.open -= 1;
            counts.open == 0
        };
        if last {
            let _ = Box::pin(self.parent.close_with(code, reason)).await;
        }
    }
}
