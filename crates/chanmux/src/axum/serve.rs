//! [`serve`]: an accept loop for an axum app that is safe to expose.
//!
//! `axum::serve` neither sets `TCP_NODELAY` nor limits how long a client may
//! take to send its request head, so a few hundred sockets trickling header
//! bytes (or sending nothing) hold their descriptors for ever. This loop
//! serves HTTP/1.1 with hyper directly: every socket gets `TCP_NODELAY`
//! (the connection's writer already batches frames, so Nagle only adds
//! delay), and a connection that has not sent a complete request head within
//! the handshake timeout, or that idles that long between keep-alive
//! requests, is closed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tower_service::Service;

use super::ConnectionAddrs;

/// Settings of [`serve`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long a client has to send a complete HTTP request head after it
    /// connects (and between requests on a keep-alive connection) before
    /// the connection is closed. Zero means no limit. Default 10 s.
    pub handshake_timeout: Duration,
    /// Set `TCP_NODELAY` on accepted sockets. Default `true`.
    pub tcp_nodelay: bool,
    /// After the shutdown signal, how long to wait for HTTP requests in
    /// progress before returning anyway. Default 10 s.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            handshake_timeout: Duration::from_secs(10),
            tcp_nodelay: true,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// Sets [`handshake_timeout`](Self::handshake_timeout) (default 10 s; zero: none).
    #[must_use]
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout) (default 10 s).
    #[must_use]
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`tcp_nodelay`](Self::tcp_nodelay) (default `true`).
    #[must_use]
    pub fn with_tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.tcp_nodelay = nodelay;
        self
    }
}

/// How long to pause accepting after an accept error (out of descriptors,
/// say), so the loop does not spin; connections already open go on.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often, at most, accept errors are logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` over HTTP/1.1 on `listener` until `signal` resolves, then
/// stops accepting and waits (up to the drain timeout) for the HTTP requests
/// in progress; WebSockets already upgraded are not waited for: close them
/// with a [`Shutdown`](crate::Shutdown).
///
/// Handlers see [`ConnectInfo<ConnectionAddrs>`](ConnectionAddrs), so
/// WebSocket scopes get both addresses.
///
/// ```no_run
/// use axum::Router;
/// use chanmux::axum::{ServeConfig, serve, websocket};
/// use chanmux::{Consumer, Demultiplexer};
///
/// struct Quiet;
/// impl Consumer for Quiet {}
///
/// # async fn doc_main() -> std::io::Result<()> {
/// let demux = Demultiplexer::builder().stream("quiet", || Quiet).build();
/// let app = Router::new().route("/ws/", websocket(demux));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// // Any future: Ctrl-C (tokio's `signal` feature), a shutdown channel...
/// let stop = std::future::pending();
/// serve(listener, app, ServeConfig::default(), stop).await
/// # }
/// ```
///
/// # Errors
///
/// Never at present: accept errors are logged and retried, since they are
/// usually temporary (out of descriptors until connections close).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Each HTTP connection holds a receiver: it is told to finish when the
    // value changes, and the sender sees every receiver gone once they have.
    let (stopping, _) = watch::channel(false);
    let mut signal = pin!(signal);
    let mut last_logged: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (socket, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if last_logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                    tracing::warn!(%error, "accept failed; retrying (logged at most every 10 s)");
                    last_logged = Some(Instant::now());
                }
                sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let connection = serve_connection(socket, client, app.clone(), &config);
        let mut stop = stopping.subscribe();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    // Finishes the request in progress, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                // A timed-out head, a reset, a malformed request: the
                // client's problem, not the server's.
                tracing::debug!(%client, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    stopping.send_replace(true);
    let draining = stopping.receiver_count();
    if tokio::time::timeout(config.drain_timeout, stopping.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            draining,
            left = stopping.receiver_count(),
            "HTTP connections still busy after the drain timeout; not waiting for them"
        );
    }
    Ok(())
}

fn serve_connection(
    socket: TcpStream,
    client: std::net::SocketAddr,
    app: Router,
    config: &ServeConfig,
) -> hyper::server::conn::http1::UpgradeableConnection<
    TokioIo<TcpStream>,
    impl hyper::service::Service<
        http::Request<Incoming>,
        Response = axum::response::Response,
        Error = Infallible,
        Future: Send,
    > + Send
    + 'static,
> {
    if config.tcp_nodelay
        && let Err(error) = socket.set_nodelay(true)
    {
        tracing::debug!(%client, %error, "cannot set TCP_NODELAY");
    }
    let server = socket.local_addr().unwrap_or(client);
    let addrs = ConnectionAddrs { client, server };
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(addrs));
        app.clone().call(request)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    let head_timeout = Some(config.handshake_timeout).filter(|t| !t.is_zero());
    http.header_read_timeout(head_timeout);
    http.serve_connection(TokioIo::new(socket), service)
        .with_upgrades()
}
