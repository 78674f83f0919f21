//! The wire format of channels-multiplexer, with no sockets and no runtime.
//!
//! A multiplexed WebSocket carries text frames holding one JSON object each,
//! `{"stream": "<name>", "payload": <any JSON>}`, in both directions. This is
//! the format of Django Channels' `channelsmultiplexer`, so clients written for
//! it work unchanged.
//!
//! The payload is never parsed into a tree here: [`Envelope::parse`] finds the
//! stream name and the payload's exact text in one pass, and [`wrap`] builds an
//! outgoing frame around payload text without re-serialising it.
//!
//! ```
//! use chanmux_core::{Envelope, wrap};
//!
//! let frame = r#"{"stream": "echostream", "payload": {"n": 1e3}}"#;
//! let envelope = Envelope::parse(frame)?;
//! assert_eq!(envelope.stream(), "echostream");
//! // The payload keeps its exact text: `1e3` stays `1e3`.
//! assert_eq!(envelope.payload(), r#"{"n": 1e3}"#);
//!
//! let reply = wrap(envelope.stream(), envelope.payload());
//! assert_eq!(reply, r#"{"stream":"echostream","payload":{"n": 1e3}}"#);
//! # Ok::<(), chanmux_core::EnvelopeError>(())
//! ```
//!
//! Frames that are not valid envelopes are answered with an error frame (see
//! [`ErrorCode`] and [`error_frame`]) instead of closing the connection.

mod client_frame;
pub mod close_code;
mod control;
mod envelope;
mod error_frame;
pub mod layer;
mod message;
mod name;
mod object;

pub use client_frame::{ClientFrame, MAX_REF_CHARS, Ref, Rejected};
pub use control::{closed_frame, pong_frame, subscribed_frame, unsubscribed_frame};
pub use envelope::{Envelope, EnvelopeError, StreamPrefix, wrap};
pub use error_frame::{
    AppCode, AppCodeError, ErrorCode, MAX_ECHOED_NAME, error_frame, error_frame_with,
};
pub use layer::{
    ChannelLayer, DEFAULT_MAX_GROUPS_PER_CHANNEL, Deliver, IntoSharedLayer, LayerError, LayerStats,
    Registry, SharedLayer,
};
pub use message::{FRAME_TYPE, Message, MessageError};
pub use name::{ChannelName, GroupName, MAX_NAME_LEN, NameError};
