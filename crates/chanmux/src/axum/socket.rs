//! An upgraded connection as a [`Transport`](crate::transport::Transport):
//! tokio-tungstenite over metered bytes, with the message timeout.
//!
//! The timeout needs to know that a message has *started* arriving, which
//! no WebSocket library reports, so [`Metered`] counts the bytes read under
//! it: bytes beyond those of the last complete message are an unfinished
//! message. Only a message left unfinished by a read looks at the clock, and
//! the timer is moved at most about once per timeout, so whole messages pay
//! one counter addition per read.

use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::transport::{CloseFrame, Frame, TransportError};
use crate::{Text, metrics};

/// Counts the bytes read through it (for the message timeout), and the bytes
/// both ways in the byte metrics (once per read or write call, which
/// carries many frames under load).
#[derive(Debug)]
pub(super) struct Metered<S> {
    inner: S,
    read: u64,
}

impl<S> Metered<S> {
    pub(super) fn new(inner: S) -> Self {
        Metered { inner, read: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let read = (buf.filled().len() - before) as u64;
        self.read += read;
        metrics::bytes().0.increment(read);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        metrics::bytes().1.increment(written as u64);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        metrics::bytes().1.increment(written as u64);
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A server-side WebSocket carrying [`Frame`]s.
pub(super) struct Socket<S> {
    ws: WebSocketStream<Metered<S>>,
    /// Zero: no timeout.
    message_timeout: Duration,
    /// Bytes read when the last message completed.
    done_at: u64,
    /// When the unfinished message was first seen unfinished.
    partial_since: Option<Instant>,
    /// Allocated for the first unfinished message, then reused. It is reset
    /// only when it would fire too late, or has fired for an earlier
    /// message: at most about once per timeout, however many reads end in
    /// the middle of a message.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pub(super) fn new(ws: WebSocketStream<Metered<S>>, message_timeout: Duration) -> Self {
        Socket {
            ws,
            message_timeout,
            done_at: 0,
            partial_since: None,
            timer: None,
        }
    }

    /// Nothing complete is ready: if part of a message has arrived, make
    /// sure its deadline is watched, and say whether it has passed.
    fn unfinished_overdue(&mut self, cx: &mut TaskContext<'_>) -> bool {
        if self.message_timeout.is_zero() || self.ws.get_ref().read == self.done_at {
            return false;
        }
        let since = *self.partial_since.get_or_insert_with(Instant::now);
        let due = since + self.message_timeout;
        let timer = self.timer.get_or_insert_with(|| Box::pin(sleep_until(due)));
        if timer.deadline() > due {
            timer.as_mut().reset(due);
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            // It fired: for this message, or for an earlier one.
            if Instant::now() >= due {
                return true;
            }
            timer.as_mut().reset(due);
        }
    }
}

impl<S> Stream for Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Frame, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.ws).poll_next(cx) {
            Poll::Ready(Some(Ok(message))) => {
                // A control frame may arrive between the fragments of a
                // message (a pong, say): it does not end that message's wait.
                let data = matches!(message, Message::Text(_) | Message::Binary(_));
                if data || this.partial_since.is_none() {
                    this.done_at = this.ws.get_ref().read;
                    this.partial_since = None;
                }
                Poll::Ready(Some(Ok(from_message(message))))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(read_error(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.unfinished_overdue(cx) => {
                this.partial_since = None;
                let timeout = this.message_timeout;
                Poll::Ready(Some(Err(TransportError::message_timeout(timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S> Sink<Frame> for Socket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = TransportError;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.ws)
            .poll_ready(cx)
            .map_err(TransportError::new)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Frame) -> Result<(), Self::Error> {
        Pin::new(&mut self.ws)
            .start_send(to_message(frame))
            .map_err(TransportError::new)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(TransportError::new)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(TransportError::new)
    }
}

/// Tells the client's faults (answered with 1009, 1002 or 1007) from the
/// socket failing.
fn read_error(error: tungstenite::Error) -> TransportError {
    match error {
        tungstenite::Error::Capacity(_) => TransportError::message_too_large(error),
        tungstenite::Error::Protocol(_) => TransportError::protocol(error),
        tungstenite::Error::Utf8(_) => TransportError::invalid_utf8(error),
        other => TransportError::new(other),
    }
}

fn from_message(message: Message) -> Frame {
    match message {
        Message::Text(text) => Frame::Text(Text::from_received(text)),
        Message::Binary(data) => Frame::Binary(data),
        Message::Ping(data) => Frame::Ping(data),
        Message::Pong(data) => Frame::Pong(data),
        Message::Close(frame) => Frame::Close(frame.map(|f| CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().to_owned(),
        })),
        // Never produced by reading (the library's documentation says so);
        // its payload, should that change.
        Message::Frame(frame) => Frame::Binary(frame.into_payload()),
    }
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into_received()),
        Frame::Binary(data) => Message::Binary(data),
        Frame::Ping(data) => Message::Ping(data),
        Frame::Pong(data) => Message::Pong(data),
        Frame::Close(frame) => Message::Close(frame.map(|f| tungstenite::protocol::CloseFrame {
            code: CloseCode::from(f.code),
            reason: f.reason.into(),
        })),
    }
}
