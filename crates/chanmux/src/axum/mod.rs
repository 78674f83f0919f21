//! Mount a consumer (a [`Demultiplexer`](crate::Demultiplexer), say) on an axum route.
//!
//! ```no_run
//! use axum::Router;
//! use chanmux::{Consumer, Demultiplexer};
//!
//! struct Quiet;
//! impl Consumer for Quiet {}
//!
//! # async fn doc_main() -> std::io::Result<()> {
//! let demux = Demultiplexer::builder().stream("quiet", || Quiet).build();
//! let app = Router::new().route("/ws/", chanmux::axum::websocket(demux));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<chanmux::axum::ConnectionAddrs>(),
//! )
//! .await
//! # }
//! ```
//!
//! The upgrade request's path, query, headers, path parameters, request
//! extensions and (with [`ConnectionAddrs`] or `SocketAddr` connect info)
//! addresses go into the [`Scope`]. The consumer's connect runs before the
//! upgrade is answered: 101 when it accepts, 403 when it refuses or times
//! out, 500 when it fails.

mod serve;

pub use serve::{ServeConfig, serve};

use std::future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::ws::{self, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::serve::IncomingStream;
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue};
use tokio::net::TcpListener;

use crate::connection::{self, ConnectionConfig, Handshake, Refusal};
use crate::scope::parse_subprotocols;
use crate::transport::{CloseFrame, Frame, Transport, TransportError};
use crate::{ConsumerFactory, Scope, Text};

/// A `GET` route that serves WebSocket connections with `app`, with default settings.
pub fn websocket<S>(app: impl ConsumerFactory) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    websocket_with_config(app, ConnectionConfig::default())
}

/// A `GET` route that serves WebSocket connections with `app` and `config`.
pub fn websocket_with_config<S>(
    app: impl ConsumerFactory,
    config: ConnectionConfig,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let app: Arc<dyn ConsumerFactory> = Arc::new(app);
    let config = Arc::new(config);
    axum::routing::get(move |request: Request| {
        let app = app.clone();
        let config = config.clone();
        async move { upgrade(&*app, &config, request).await }
    })
}

/// Connect info with both ends of the TCP connection, for
/// `into_make_service_with_connect_info::<ConnectionAddrs>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAddrs {
    /// The client's address.
    pub client: SocketAddr,
    /// The server's local address.
    pub server: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for ConnectionAddrs {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let client = *stream.remote_addr();
        let server = stream.io().local_addr().unwrap_or(client);
        ConnectionAddrs { client, server }
    }
}

async fn upgrade(
    app: &dyn ConsumerFactory,
    config: &ConnectionConfig,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let path_params = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let (client, server) = match parts.extensions.get::<ConnectInfo<ConnectionAddrs>>() {
        Some(ConnectInfo(addrs)) => (Some(addrs.client), Some(addrs.server)),
        None => (
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            None,
        ),
    };
    let scope = Scope {
        path: parts.uri.path().to_owned(),
        query_string: parts.uri.query().unwrap_or_default().to_owned(),
        subprotocols: parse_subprotocols(&parts.headers),
        headers: detach_headers(&parts.headers),
        client,
        server,
        path_params,
        extensions: parts.extensions,
    };
    // The application's own limit, when lower: larger messages are refused
    // as their frame header arrives, not buffered first.
    let max_message = app
        .max_message_size()
        .map_or(config.max_message_size, |max| {
            max.min(config.max_message_size)
        });
    match connection::start(app, scope, config).await {
        Handshake::Refused(refusal) => refused(refusal),
        Handshake::Accepted(accepted) => {
            let mut ws = ws
                .read_buffer_size(config.read_buffer_size)
                .write_buffer_size(config.write_buffer_size)
                .max_message_size(max_message)
                .max_frame_size(max_message);
            if let Some(protocol) = accepted.subprotocol() {
                ws = ws.protocols([protocol.to_owned()]);
            }
            ws.on_upgrade(move |socket| accepted.serve(transport(socket)))
        }
    }
}

/// The upgrade's answer for a refused connection: its status, and
/// `Retry-After` when a limit refused it.
fn refused(refusal: Refusal) -> Response {
    let mut response = refusal.status().into_response();
    if let Some(wait) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs()));
    }
    response
}

/// Adapts axum's socket to a [`Transport`] without copying message text.
fn transport(socket: WebSocket) -> impl Transport {
    socket
        .map(|message| message.map(from_axum).map_err(read_error))
        .sink_map_err(TransportError::new)
        .with(|frame: Frame| future::ready(Ok::<_, TransportError>(to_axum(frame))))
}

/// Tells the client's faults (answered with 1009, 1002 or 1007) from the
/// socket failing.
fn read_error(error: axum::Error) -> TransportError {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => TransportError::message_too_large(inner),
        Some(tungstenite::Error::Protocol(_)) => TransportError::protocol(inner),
        Some(tungstenite::Error::Utf8(_)) => TransportError::invalid_utf8(inner),
        _ => TransportError::new(inner),
    }
}

fn from_axum(message: Message) -> Frame {
    match message {
        Message::Text(text) => Frame::Text(Text::from_axum(text)),
        Message::Binary(data) => Frame::Binary(data),
        Message::Ping(data) => Frame::Ping(data),
        Message::Pong(data) => Frame::Pong(data),
        Message::Close(frame) => Frame::Close(frame.map(|f| CloseFrame {
            code: f.code,
            reason: f.reason.as_str().to_owned(),
        })),
    }
}

fn to_axum(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.into_axum()),
        Frame::Binary(data) => Message::Binary(data),
        Frame::Ping(data) => Message::Ping(data),
        Frame::Pong(data) => Message::Pong(data),
        Frame::Close(frame) => Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code,
            reason: f.reason.into(),
        })),
    }
}

/// Copies the header values out of the request's read buffer into one
/// buffer of their own.
///
/// hyper parses header values as slices of its connection read buffer
/// (16 KiB), so a scope keeping them would keep that buffer alive for the
/// connection's whole life: under valgrind's massif (1,000 idle demo
/// connections, see BENCHMARKS.md's notes for the commands) it held 16.3 KB
/// per connection, the largest part of an idle connection's memory.
fn detach_headers(headers: &HeaderMap) -> HeaderMap {
    let mut values = BytesMut::with_capacity(headers.iter().map(|(_, v)| v.len()).sum());
    for (_, value) in headers {
        values.extend_from_slice(value.as_bytes());
    }
    let mut values = values.freeze();
    let mut detached = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let own = values.split_to(value.len());
        // Valid before, so valid now; should that ever fail, keep the original.
        let mut copy = HeaderValue::from_maybe_shared(own).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        detached.append(name.clone(), copy);
    }
    detached
}
