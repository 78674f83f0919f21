//! Many logical streams over one WebSocket.
//!
//! TODO crate docs
#![cfg_attr(not(test), warn(clippy::print_stdout))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod connection;
mod consumer;
mod demultiplexer;
mod error;
mod router;
mod scope;
mod shutdown;
#[cfg(feature = "test-util")]
pub mod testing;
mod text;
pub mod transport;

pub use chanmux_core::{self as core, ErrorCode, close_code};
pub use connection::ConnectionConfig;
pub use consumer::{Consumer, ConsumerFactory, Context, JsonConsumer, Start};
pub use demultiplexer::{Demultiplexer, DemultiplexerBuilder, DemultiplexerConfig, Streams};
pub use error::{AcceptError, BoxError, SendError};
pub use router::PathRouter;
pub use scope::Scope;
pub use shutdown::Shutdown;
pub use text::Text;
