//! Many logical streams over one WebSocket.
//!
//! Each stream is served by its own [`Consumer`], written as if it owned the
//! socket. A [`Demultiplexer`] starts one consumer per stream for every
//! connection, routes `{"stream": "<name>", "payload": <any JSON>}` frames to
//! them and wraps what they send the same way — the wire format of Django
//! Channels' `channelsmultiplexer`, so its clients work unchanged.
//!
//! ```
//! use chanmux::testing::Communicator;
//! use chanmux::{BoxError, Consumer, Context, Demultiplexer, JsonConsumer, Text};
//! use serde_json::{Value, json};
//!
//! /// Sends every payload back, untouched (raw JSON text, never parsed).
//! struct Echo;
//! impl Consumer for Echo {
//!     async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
//!         Ok(ctx.send_text(text).await?)
//!     }
//! }
//!
//! /// Parses the payload and answers with a new value.
//! struct AltEcho;
//! impl JsonConsumer for AltEcho {
//!     type Message = Value;
//!     async fn receive_json(&mut self, ctx: &Context, msg: Value) -> Result<(), BoxError> {
//!         Ok(ctx.send_json(&json!({"received": msg, "alt_value": 123})).await?)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let demux = Demultiplexer::builder()
//!     .stream("echostream", || Echo)
//!     .stream("altechostream", || AltEcho)
//!     .build();
//!
//! // Drive it in process, as a browser would over a socket.
//! let mut client = Communicator::new(demux, "/ws/");
//! assert!(client.connect().await.is_accepted());
//! client.send_text_to(r#"{"stream": "altechostream", "payload": {"n": 1}}"#).await;
//! assert_eq!(
//!     client.receive_json_from().await,
//!     json!({"stream": "altechostream", "payload": {"received": {"n": 1}, "alt_value": 123}})
//! );
//! // Bad input gets an error frame; the connection and other streams go on.
//! client.send_text_to(r#"{"stream": "nope", "payload": 1}"#).await;
//! assert_eq!(client.receive_json_from().await["error"]["code"], "unknown_stream");
//! # }
//! ```
//!
//! To serve it, mount it on an axum route with [`axum::websocket`]
//! (feature `axum`).
//!
//! # Streams on demand
//!
//! Besides the streams started at connect ([`DemultiplexerBuilder::stream`]),
//! a demultiplexer can declare streams that start when the client asks:
//! [`lazy_stream`](DemultiplexerBuilder::lazy_stream) and
//! [`pattern`](DemultiplexerBuilder::pattern) (`room:{id}`: every matching
//! name gets its own consumer). The client subscribes and unsubscribes,
//! tags frames with a `ref` to match replies ([`Context::reply`]), pings,
//! and hears `subscribed`, `unsubscribed` and `closed`: protocol version 2,
//! specified in the repository's `PROTOCOL.md`. A client that never sends a
//! version 2 frame sees exactly version 1.
//!
//! ```
//! use chanmux::testing::Communicator;
//! use chanmux::{BoxError, Consumer, Context, Demultiplexer, Text};
//! use serde_json::json;
//!
//! /// `room:{id}`: replies with the room it serves.
//! struct Room;
//! impl Consumer for Room {
//!     async fn receive_text(&mut self, ctx: &Context, _text: Text) -> Result<(), BoxError> {
//!         Ok(ctx.reply(&json!({"room": ctx.capture("id")})).await?)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let demux = Demultiplexer::builder().pattern("room:{id}", || Room).build();
//! let mut client = Communicator::new(demux, "/ws/");
//! assert!(client.connect().await.is_accepted());
//! assert_eq!(client.subscribe("room:42", None).await, Ok(()));
//! client.send_with_ref("room:42", &"hi", 1).await;
//! assert_eq!(
//!     client.receive_json_from().await,
//!     json!({"stream": "room:42", "payload": {"room": "42"}, "ref": 1})
//! );
//! # }
//! ```
//!
//! # How a demultiplexed connection behaves
//!
//! - Every eager stream's consumer gets `connect`. The socket is accepted as
//!   soon as the first one accepts (at once when there are none); if none
//!   accepts within the connect timeout
//!   ([`ConnectionConfig::connect_timeout`], 5 s), or all refuse, the upgrade
//!   is answered with HTTP 403 — with 500 if every stream failed in connect.
//! - A frame reaches a stream only while that stream has accepted and not
//!   closed. Frames within a stream keep their order both ways; streams run
//!   concurrently, so a handler that waits delays only its own stream.
//! - A connection is one task (plus one that writes to the socket): its
//!   streams run as futures inside it, which keeps an idle connection at a
//!   few KiB. A handler that *blocks the thread* (heavy computation, blocking
//!   I/O) therefore holds up its connection's other streams too; move such
//!   work to [`tokio::task::spawn_blocking`] or a task of its own.
//! - Payloads pass through as raw JSON text: numbers keep their exact text,
//!   nesting depth is not limited by recursion, and replies are wrapped
//!   without re-serialising.
//! - When a stream closes it stops receiving (frames already queued for it
//!   are answered with `stream_not_accepting`) and its consumer ends; a
//!   client that subscribed to it gets `closed`. Without lazy or pattern
//!   streams, when no accepting stream is left, and none is still in its
//!   connect handler, the socket closes with that stream's code; with them
//!   it stays open for new subscriptions.
//! - Every consumer ends with `disconnect`, exactly once, however it ends
//!   (see [`Consumer::disconnect`]); on the client's disconnect, with the
//!   client's code. It is stopped if it takes longer than the close timeout
//!   (5 s).
//! - A consumer that returns an error or panics is logged and its stream
//!   closed; if it was the last accepting stream the socket closes with 1011.
//! - Every queue is bounded. A stream whose queue is full answers
//!   `stream_overloaded`; a client that stops reading is disconnected with
//!   1013 "slow client" after [`ConnectionConfig::slow_client_timeout`].
//!
//! # Groups
//!
//! With a channel layer ([`DemultiplexerBuilder::channel_layer`]), every consumer has
//! a channel (opened when first used: [`Context::channel_name`] or
//! [`Context::group_add`]), joins groups with [`Context::group_add`], and
//! receives what is sent to them in [`Consumer::event`]; [`Demultiplexer::group_send`]
//! sends a frame straight to every member's client. See [`layer`] for the
//! backends and their guarantees.
//!
//! # Bad input
//!
//! Invalid frames are answered with an error frame, and nothing else is lost:
//!
//! ```json
//! {"error": {"code": "unknown_stream", "message": "no stream named \"nope\""}, "stream": "nope"}
//! ```
//!
//! It has no `payload` key. `stream` is the stream named by the frame when
//! known, else `null`; an error caused by a frame with a `ref` carries it.
//! The codes are those of [`ErrorCode`]: `invalid_json`, `not_an_object`,
//! `missing_stream`, `missing_payload`, `unknown_stream`,
//! `stream_not_accepting`, `binary_not_supported`, `frame_too_large`,
//! `stream_overloaded`, `rate_limited`, and version 2's `invalid_ref`,
//! `subscription_refused`, `already_subscribed`, `not_subscribed`,
//! `too_many_streams`; a consumer may add its own ([`AppCode`],
//! [`Context::send_app_error`]). With [`DemultiplexerBuilder::strict`] the
//! socket is closed with 1008 and the code as the reason instead (for the
//! protocol's codes).
//!
//! # Safe by default
//!
//! Every input a client controls is bounded, with a default that suits a
//! server on the open internet ([`ConnectionConfig`], [`ConnectionLimits`],
//! [`OriginPolicy`], `chanmux::axum::ServeConfig`): web pages from other
//! origins are refused (403); connections in all and per client address are
//! limited (503, 429); a silent client is pinged after 25 s and dropped 10 s
//! later; a message must arrive within 10 s of its first byte and fit the
//! frame limit; a connection may send 1,000 frames per second and start 128
//! streams; a consumer may be in 1,000 groups.
//!
//! # Close codes
//!
//! | code | when |
//! |---|---|
//! | the stream's own | the last accepting stream closed (without lazy or pattern streams) |
//! | 1001 | the server is shutting down ([`Shutdown`]), or the client did not answer a ping ("ping timeout") |
//! | 1002 | the client broke the WebSocket protocol |
//! | 1007 | a text message was not valid UTF-8 |
//! | 1008 | strict mode, bad input; or a message took longer than [`ConnectionConfig::message_timeout`] |
//! | 1009 | a message over the frame limit (a demultiplexer's `max_frame_size`, else [`ConnectionConfig::max_message_size`]) |
//! | 1011 | the last accepting stream failed |
//! | 1013 | the client stopped reading ("slow client") |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | [`axum::websocket`]: mount a consumer on an axum route |
//! | `tls` | no | [`axum::TlsConfig`]: `https://` and `wss://` from [`axum::serve`] (rustls, ring provider); implies `axum` |
//! | `test-util` | no | [`testing::Communicator`]: drive consumers in process |
#![cfg_attr(not(test), warn(clippy::print_stdout))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod connection;
mod consumer;
mod demultiplexer;
mod error;
pub mod layer;
mod limits;
pub mod metrics;
mod origin;
mod queue;
mod router;
mod scope;
mod shutdown;
mod span;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod text;
pub mod transport;

pub use chanmux_core::{self as core, AppCode, ErrorCode, close_code};
/// The `http` crate, whose types [`Scope`] uses (its headers are an
/// [`http::HeaderMap`]).
pub use http;

/// The tracing target of the spans the library opens: `connection` (fields
/// `id`, `peer`, `path`), entered whenever a connection runs, and `stream`
/// (field `stream`) inside it, entered whenever a demultiplexed stream's
/// consumer runs, so that every log line names both. Both are at `INFO`;
/// a filter such as `RUST_LOG=info,chanmux::spans=off` turns them off, which
/// saves their memory on every connection (a few hundred bytes per span with
/// tracing-subscriber's fmt layer) and entering them on every message.
pub const SPANS: &str = "chanmux::spans";
pub use connection::ConnectionConfig;
pub use consumer::{Consumer, ConsumerFactory, Context, JsonConsumer, Start, Started};
pub use demultiplexer::{Demultiplexer, DemultiplexerBuilder, DemultiplexerConfig, Streams};
pub use error::{AcceptError, BoxError, GroupError, SendError};
pub use limits::{ConnectionLimits, InvalidProxy};
pub use origin::OriginPolicy;
pub use router::PathRouter;
pub use scope::Scope;
pub use shutdown::Shutdown;
pub use text::Text;

// Compiles and runs the README's Rust examples as doc tests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
