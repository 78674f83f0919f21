//! Errors a consumer can meet when it talks to its socket.

/// A handler's error: any error type, boxed. The runtime logs it and closes
/// the stream (see [`Consumer`](crate::Consumer)).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`Context::accept`](crate::Context::accept) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The consumer already refused or closed, or the handshake is over
    /// (it timed out, or the client went away).
    #[error("the connection can no longer be accepted")]
    Closed,
    /// The subprotocol is not one the client offered.
    #[error("subprotocol {0:?} was not offered by the client")]
    UnknownSubprotocol(String),
}

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// No channel layer is configured (see
    /// [`DemultiplexerBuilder::channel_layer`](crate::DemultiplexerBuilder::channel_layer) and
    /// [`ConnectionConfig::layer`](crate::ConnectionConfig::layer)).
    #[error("no channel layer is configured")]
    NoLayer,
    /// The group name is not valid.
    #[error(transparent)]
    Name(#[from] chanmux_core::NameError),
    /// The message is not an object with a string `type`.
    #[error(transparent)]
    Message(#[from] chanmux_core::MessageError),
    /// The layer failed (its backend is unreachable, say).
    #[error(transparent)]
    Layer(#[from] chanmux_core::LayerError),
    /// Sending a frame to a group needs a stream to name in it; a consumer
    /// owning the whole socket has none.
    #[error("only a stream's consumer can send frames to a group")]
    NotAStream,
}

/// Why a send or close did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The consumer has not accepted yet; nothing can be sent before that.
    #[error("cannot send before the consumer has accepted")]
    NotAccepted,
    /// The consumer closed, or the client disconnected. Stop sending.
    #[error("the stream or connection is closed")]
    Closed,
    /// Inside a demultiplexer a stream sends JSON only; this text is not JSON.
    #[error("a stream payload must be valid JSON: {0}")]
    NotJson(String),
    /// Inside a demultiplexer a stream cannot send binary messages.
    #[error("a multiplexed stream cannot send binary messages")]
    BinaryNotSupported,
    /// The error code is not an application code (see [`AppCode`](crate::AppCode)).
    #[error("{0}")]
    InvalidCode(String),
}
