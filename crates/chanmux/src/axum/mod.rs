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
//! // axum::serve works too (with `into_make_service_with_connect_info::<
//! // ConnectionAddrs>()` for the addresses); this one adds TCP_NODELAY, a
//! // timeout on the HTTP head and a drain at SIGTERM or Ctrl-C.
//! let config = chanmux::axum::ServeConfig::default();
//! chanmux::axum::serve(listener, app, config, chanmux::axum::termination()).await
//! # }
//! ```
//!
//! The upgrade request's path, query, headers, path parameters, request
//! extensions and (with [`ConnectionAddrs`] or `SocketAddr` connect info)
//! addresses go into the [`Scope`]. The consumer's connect runs before the
//! upgrade is answered: 101 when it accepts, 403 when it refuses or times
//! out, 500 when it fails.

mod health;
mod serve;
mod socket;
#[cfg(feature = "tls")]
mod tls;
mod upgrade;

pub use health::health;
/// The rustls that [`TlsConfig::from_rustls`] takes a configuration of.
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use rustls;
pub use serve::{ServeConfig, serve, termination};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::serve::IncomingStream;
use bytes::BytesMut;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::connection::{self, ConnectionConfig, Handshake, Refusal};
use crate::scope::parse_subprotocols;
use crate::{ConsumerFactory, Scope, Shutdown};
use socket::{Metered, Socket};

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
    let upgrade = match upgrade::check(&mut parts) {
        Ok(upgrade) => upgrade,
        Err(status) => {
            crate::metrics::connection("bad_request");
            return status.into_response();
        }
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
    // Taken out, not copied into the scope: it would stay in every
    // connection's memory, and the config below carries it.
    let servers_shutdown = parts.extensions.remove::<Shutdown>();
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
    // Routes without a shutdown switch of their own drain with the server's.
    let with_servers;
    let config = match (&config.shutdown, servers_shutdown) {
        (None, Some(shutdown)) => {
            with_servers = config.clone().with_shutdown(shutdown);
            &with_servers
        }
        _ => config,
    };
    match connection::start(app, scope, config).await {
        Handshake::Refused(refusal) => refused(refusal),
        Handshake::Accepted(accepted) => {
            let response = upgrade.response(accepted.subprotocol());
            let ws_config = WebSocketConfig::default()
                .read_buffer_size(config.read_buffer_size)
                .write_buffer_size(config.write_buffer_size)
                .max_message_size(Some(max_message))
                .max_frame_size(Some(max_message));
            let message_timeout = config.message_timeout;
            let on_upgrade = upgrade.on_upgrade;
            tokio::spawn(async move {
                // A failed upgrade drops `accepted`, which tells the
                // consumer the client is gone.
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let io = Metered::new(TokioIo::new(upgraded));
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
                accepted.serve(Socket::new(ws, message_timeout)).await;
            });
            response
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
