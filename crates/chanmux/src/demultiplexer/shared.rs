//! State shared by a demultiplexed connection and its stream consumers: who
//! has accepted, and when the socket must accept, refuse or close.

use std::sync::Mutex;

use tokio::sync::OnceCell;

use chanmux_core::{ErrorCode, close_code, error_frame};

use crate::consumer::Unaccepted;
use crate::{AcceptError, Context, SendError, Text};

pub(crate) struct Shared {
    /// The demultiplexer's own context: the socket, or an outer stream.
    parent: Context,
    /// Set once the first stream accepted and the parent accepted in turn.
    parent_accepted: OnceCell<()>,
    counts: Mutex<Counts>,
    /// Close with 1008 on bad input instead of sending error frames.
    strict: bool,
}

struct Counts {
    /// Streams that have neither accepted nor refused nor failed.
    pending: usize,
    /// Streams accepted and not closed.
    open: usize,
    /// Streams whose connect handler has not returned yet.
    connecting: usize,
    failed: usize,
    total: usize,
    /// The close of the last accepting stream, held back while other streams
    /// are still in connect (one of them may yet accept).
    deferred_close: Option<(u16, String)>,
}

impl Counts {
    /// The deferred close, once no stream is accepting or still connecting.
    fn take_due_close(&mut self) -> Option<(u16, String)> {
        if self.open == 0 && self.connecting == 0 {
            self.deferred_close.take()
        } else {
            None
        }
    }
}

impl Shared {
    pub(crate) fn new(parent: Context, total: usize, strict: bool) -> Self {
        Shared {
            parent,
            parent_accepted: OnceCell::new(),
            counts: Mutex::new(Counts {
                pending: total,
                open: 0,
                connecting: total,
                failed: 0,
                total,
                deferred_close: None,
            }),
            strict,
        }
    }

    /// Answers input that could not be delivered: an error frame naming
    /// `stream`, or in strict mode a 1008 close with the code as reason.
    pub(crate) async fn send_error(
        &self,
        code: ErrorCode,
        message: &str,
        stream: Option<&str>,
    ) -> Result<(), SendError> {
        tracing::debug!(%code, message, stream, "frame not delivered");
        crate::metrics::error_frame(code);
        if self.strict {
            Box::pin(self.parent.close_with(close_code::POLICY, code.as_str())).await
        } else {
            let frame = Text::known_json(error_frame(code, message, stream));
            self.parent.send_text(frame).await
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
            counts.deferred_close = None;
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
    ///
    /// While another stream is still in its connect handler the close waits
    /// for it, so a stream that closes early cannot close the socket under
    /// a stream that is about to accept.
    pub(crate) async fn stream_closed(&self, code: u16, reason: String) {
        let close = {
            let mut counts = self.counts();
            counts.open -= 1;
            counts.deferred_close = (counts.open == 0).then_some((code, reason));
            counts.take_due_close()
        };
        self.close_parent(close).await;
    }

    /// A stream's connect handler returned (whatever it decided).
    pub(crate) async fn stream_connected(&self) {
        let close = {
            let mut counts = self.counts();
            counts.connecting -= 1;
            counts.take_due_close()
        };
        self.close_parent(close).await;
    }

    async fn close_parent(&self, close: Option<(u16, String)>) {
        if let Some((code, reason)) = close {
            let _ = Box::pin(self.parent.close_with(code, reason)).await;
        }
    }
}
