//! The socket seen as frames: anything that is a `Stream` and a `Sink` of
//! [`Frame`]s can carry a connection.
//!
//! This one abstraction makes the axum adapter, the in-process
//! [`Communicator`](crate::testing::Communicator) and any other WebSocket
//! library the same code path.

use bytes::Bytes;
use futures_util::{Sink, Stream};

use crate::Text;

/// One WebSocket message as the connection loop sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Frame {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
    /// A ping; the WebSocket library answers it.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close message, with its code and reason when it has one.
    Close(Option<CloseFrame>),
}

/// The code and reason of a close message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Close code (see [`close_code`](crate::close_code)).
    pub code: u16,
    /// Human-readable reason; at most 123 bytes on the wire.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// The underlying socket failed, or the client broke the WebSocket protocol.
#[derive(Debug, thiserror::Error)]
#[error("transport error: {source}")]
pub struct TransportError {
    kind: Kind,
    #[source]
    source: crate::BoxError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Io,
    TooLarge,
    Protocol,
    InvalidUtf8,
    MessageTimeout,
}

impl TransportError {
    fn of(kind: Kind, source: impl Into<crate::BoxError>) -> Self {
        TransportError {
            kind,
            source: source.into(),
        }
    }

    /// Wraps the WebSocket library's error.
    pub fn new(source: impl Into<crate::BoxError>) -> Self {
        TransportError::of(Kind::Io, source)
    }

    /// An incoming message exceeded the transport's size limit; the
    /// connection answers with close code 1009.
    pub fn message_too_large(source: impl Into<crate::BoxError>) -> Self {
        TransportError::of(Kind::TooLarge, source)
    }

    /// The client broke the WebSocket protocol (a bad opcode, an oversized
    /// or fragmented control frame, a masking error); the connection
    /// answers with close code 1002.
    pub fn protocol(source: impl Into<crate::BoxError>) -> Self {
        TransportError::of(Kind::Protocol, source)
    }

    /// A text message was not valid UTF-8; the connection answers with
    /// close code 1007.
    pub fn invalid_utf8(source: impl Into<crate::BoxError>) -> Self {
        TransportError::of(Kind::InvalidUtf8, source)
    }

    /// A message started arriving and did not complete within `timeout`;
    /// the connection answers with close code 1008.
    pub fn message_timeout(timeout: std::time::Duration) -> Self {
        let message = format!("a message did not complete within {timeout:?}");
        TransportError::of(Kind::MessageTimeout, message)
    }

    /// The close code and reason to answer the client with, when the error
    /// is the client's (RFC 6455: 1002, 1007, 1008, 1009); `None` when the
    /// socket itself failed and nothing can be sent.
    pub fn close_code(&self) -> Option<(u16, &'static str)> {
        use chanmux_core::close_code;
        match self.kind {
            Kind::Io => None,
            Kind::TooLarge => Some((close_code::SIZE, "message too large")),
            Kind::Protocol => Some((close_code::PROTOCOL, "protocol error")),
            Kind::InvalidUtf8 => Some((close_code::INVALID_DATA, "invalid UTF-8")),
            Kind::MessageTimeout => Some((close_code::POLICY, "message timeout")),
        }
    }
}

/// A bidirectional WebSocket: a stream of received frames and a sink for frames to send.
pub trait Transport:
    Stream<Item = Result<Frame, TransportError>> + Sink<Frame, Error = TransportError> + Send + 'static
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Frame, TransportError>>
        + Sink<Frame, Error = TransportError>
        + Send
        + 'static
{
}
