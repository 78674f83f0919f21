//! The writer task: drains the outbound queue into the socket in batches and
//! detects a client that has stopped reading.

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use chanmux_core::close_code;
use futures_util::{FutureExt, Sink, SinkExt};
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::consumer::Outbound;
use crate::queue;
use crate::transport::{CloseFrame, Frame, TransportError};

/// How long to try to tell a stuck client why it is being dropped.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// Close reasons are limited to 123 bytes by RFC 6455.
const MAX_REASON: usize = 123;

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriterEnd {
    /// A close frame from the server went out.
    Closed,
    /// The connection loop asked it to stop.
    Stopped,
    /// A write stayed stuck past the slow-client timeout.
    SlowClient,
    /// The socket failed.
    Failed,
}

pub(super) async fn run<S>(
    mut sink: S,
    mut outbound: queue::Receiver<Outbound>,
    mut stop: oneshot::Receiver<()>,
    slow_client: Duration,
) -> WriterEnd
where
    S: Sink<Frame, Error = TransportError> + Unpin,
{
    loop {
        let first = tokio::select! {
            biased;
            _ = &mut stop => None,
            first = outbound.recv_counted() => first,
        };
        let Some((first, behind)) = first else {
            // Flushes a pending close reply, if the client closed first.
            let _ = Box::pin(timeout(LAST_WORDS, sink.close())).await;
            return WriterEnd::Stopped;
        };
        let written = {
            let mut write = pin!(write_batch(&mut sink, first, behind, &mut outbound));
            // Most writes complete at once (the socket has room): only a
            // write that has to wait arms the slow-client timer, which saves
            // a timer registration per batch.
            match write.as_mut().now_or_never() {
                Some(written) => Ok(written),
                // Boxed, with the other rare paths: this future lives as
                // long as the connection, at the size of its largest step.
                None => Box::pin(timeout(slow_client, write)).await,
            }
        };
        match written {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => return WriterEnd::Closed,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                return WriterEnd::Failed;
            }
            Err(_) => {
                tracing::warn!(?slow_client, "client stopped reading; disconnecting it");
                let close = CloseFrame::new(close_code::AGAIN, "slow client");
                let _ = Box::pin(timeout(LAST_WORDS, sink.send(Frame::Close(Some(close))))).await;
                return WriterEnd::SlowClient;
            }
        }
    }
}

/// Writes `first` and the `behind` messages queued after it when it was taken, then
/// flushes once; returns whether a close frame went out (what followed it is
/// dropped). Batching saves a syscall per message under load (a fan-out's
/// frames to one client arrive together) and costs nothing when messages
/// come one at a time; what arrives meanwhile waits for the next batch, so
/// a flush is never put off for long. Messages are taken one at a time, so
/// nothing is held in a buffer of our own while the socket is busy.
async fn write_batch<S>(
    sink: &mut S,
    first: Outbound,
    behind: usize,
    outbound: &mut queue::Receiver<Outbound>,
) -> Result<bool, TransportError>
where
    S: Sink<Frame, Error = TransportError> + Unpin,
{
    let mut next = Some(first);
    let mut left = behind;
    while let Some(message) = next.take() {
        let frame = match message {
            Outbound::Text(text) => Frame::Text(text),
            Outbound::Binary(data) => Frame::Binary(data),
            Outbound::Ping => Frame::Ping(Bytes::new()),
            Outbound::Close(code, mut reason) => {
                truncate_reason(&mut reason);
                sink.send(Frame::Close(Some(CloseFrame { code, reason })))
                    .await?;
                return Ok(true);
            }
        };
        sink.feed(frame).await?;
        if left > 0 {
            left -= 1;
            next = outbound.try_recv().ok();
        }
    }
    sink.flush().await?;
    Ok(false)
}

fn truncate_reason(reason: &mut String) {
    reason.truncate(reason.floor_char_boundary(MAX_REASON));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let mut reason = "é".repeat(100);
        truncate_reason(&mut reason);
        assert_eq!(reason.len(), 122);
        let mut short = "bye".to_owned();
        truncate_reason(&mut short);
        assert_eq!(short, "bye");
    }
}
