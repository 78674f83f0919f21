//! Test helpers for consumers, enabled by the `test-util` feature.
//!
//! [`Communicator`] drives any consumer in process, with no socket and no
//! HTTP, through the same connection code that serves real sockets.
//! [`layer_conformance`] is the suite every channel layer backend passes.

mod communicator;
pub mod layer_conformance;

pub use communicator::{Communicator, ConnectOutcome, Output, ReceiveError};
