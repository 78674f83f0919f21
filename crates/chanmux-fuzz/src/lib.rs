//! The checks behind the fuzz targets in `fuzz/`, kept in a stable crate so
//! that the fuzzer (nightly, `cargo fuzz run`) and the corpus replay test
//! (`tests/corpus.rs`, stable, part of `cargo test --workspace`) run the same
//! code.
//!
//! Each function takes the fuzzer's raw bytes and panics when an invariant of
//! the library breaks:
//!
//! - [`envelope`]: `Envelope::parse` against serde_json's reading of the same
//!   text, and `wrap` round trips;
//! - [`actions`]: a sequence of client actions through the in-process
//!   `Communicator` against a demultiplexer with well-behaved and misbehaving
//!   streams, checking every reply, every error frame and that the channel
//!   layer is empty once each connection has ended.

mod actions;
mod envelope;
mod json;
mod panics;

pub use actions::{Action, Layout, MAX_ACTIONS, Target, actions, run_actions};
pub use envelope::envelope;
pub use json::Json;
