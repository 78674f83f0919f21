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
//!
//! It also owns the drain at shutdown, so that a server restarted by its
//! supervisor (SIGTERM) lets its clients go gradually: see [`serve`].

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tower_service::Service;

use super::ConnectionAddrs;
#[cfg(feature = "tls")]
use super::TlsConfig;
use crate::Shutdown;

/// Settings of [`serve`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long a client has to send a complete HTTP request head after it
    /// connects (and between requests on a keep-alive connection) before
    /// the connection is closed. Zero means no limit. Default 10 s.
    ///
    /// With [`tls`](Self::tls), the TLS handshake and the first request
    /// head share it: both must be done within this time of connecting
    /// (later requests on the connection then get what was left).
    pub handshake_timeout: Duration,
    /// Set `TCP_NODELAY` on accepted sockets. Default `true`.
    pub tcp_nodelay: bool,
    /// How long the drain after the shutdown signal lasts at most: the open
    /// WebSockets are closed with 1001 spread over its first nine tenths
    /// (the rest is for closing handshakes), and when it is over [`serve`]
    /// returns, whatever is still open. Default 10 s.
    pub drain_timeout: Duration,
    /// During a drain, a SIGTERM or SIGINT (Ctrl-C) closes the WebSockets
    /// not yet closed at once (Unix; elsewhere Ctrl-C). Default `true`.
    pub close_now_on_signal: bool,
    /// The switch that closes the WebSockets at the drain. Routes whose
    /// [`ConnectionConfig`](crate::ConnectionConfig) has no
    /// [`shutdown`](crate::ConnectionConfig::shutdown) of their own use
    /// this one (it reaches them as a request extension). Default: a new one.
    pub shutdown: Shutdown,
    /// Serve `https://` and `wss://` with this certificate (feature `tls`).
    /// Default: `None`, plain HTTP.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<TlsConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            handshake_timeout: Duration::from_secs(10),
            tcp_nodelay: true,
            drain_timeout: Duration::from_secs(10),
            close_now_on_signal: true,
            shutdown: Shutdown::new(),
            #[cfg(feature = "tls")]
            tls: None,
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

    /// Sets [`close_now_on_signal`](Self::close_now_on_signal) (default `true`).
    #[must_use]
    pub fn with_close_now_on_signal(mut self, close_now: bool) -> Self {
        self.close_now_on_signal = close_now;
        self
    }

    /// Sets [`shutdown`](Self::shutdown): share a switch with routes that
    /// have it in their [`ConnectionConfig`](crate::ConnectionConfig), or
    /// keep one to see [`live_connections`](Shutdown::live_connections).
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets [`tls`](Self::tls): every connection is TLS (default: none,
    /// plain HTTP).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// How long to pause accepting after an accept error (out of descriptors,
/// say), so the loop does not spin; connections already open go on.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often, at most, accept errors are logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` over HTTP/1.1 on `listener` until `signal` resolves, then
/// drains: no new WebSocket is accepted (upgrades get 503, while other
/// routes, a readiness probe say, are still served), the open WebSockets
/// are closed with 1001 spread over the drain, HTTP requests in progress
/// finish, and the listener closes once the WebSockets are gone. Returns
/// when everything has ended, or when the drain time is over, whichever
/// comes first: nothing holds it past the drain time.
///
/// Handlers see [`ConnectInfo<ConnectionAddrs>`](ConnectionAddrs), so
/// WebSocket scopes get both addresses, and the config's [`Shutdown`], so
/// WebSocket routes use it.
///
/// ```no_run
/// use std::time::Duration;
///
/// use axum::Router;
/// use chanmux::axum::{ServeConfig, serve, termination, websocket};
/// use chanmux::{Consumer, Demultiplexer};
///
/// struct Quiet;
/// impl Consumer for Quiet {}
///
/// # async fn doc_main() -> std::io::Result<()> {
/// let demux = Demultiplexer::builder().stream("quiet", || Quiet).build();
/// let app = Router::new().route("/ws/", websocket(demux));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// // Drains over 10 s at the first SIGTERM or Ctrl-C; a second one
/// // closes the rest at once.
/// let config = ServeConfig::default().with_drain_timeout(Duration::from_secs(10));
/// serve(listener, app, config, termination()).await
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
    let mut accept = Acceptor {
        listener,
        app,
        config: &config,
        stopping: &stopping,
        last_logged: None,
    };
    let mut signal = pin!(signal);
    loop {
        tokio::select! {
            () = accept.next() => {}
            () = &mut signal => break,
        }
    }

    let deadline = Instant::now() + config.drain_timeout;
    let shutdown = &config.shutdown;
    tracing::info!(
        websockets = shutdown.live_connections(),
        drain = ?config.drain_timeout,
        "draining: closing WebSockets with 1001, refusing new ones"
    );
    shutdown.drain(config.drain_timeout.mul_f64(0.9));
    // Keep-alive connections finish the request in progress, then close.
    stopping.send_replace(true);
    let mut hurry = pin!(async {
        if config.close_now_on_signal {
            // The next SIGTERM or SIGINT, during the drain.
            termination().await;
            tracing::info!("second signal: closing the remaining WebSockets now");
            shutdown.trigger();
        }
        std::future::pending::<()>().await
    });
    // Still accepting (one request per connection): upgrades are refused,
    // readiness probes hear that this server is going.
    let closed = tokio::select! {
        () = async { loop { accept.next().await } } => unreachable!("accepts for ever"),
        () = shutdown.drained() => true,
        () = sleep_until(deadline) => false,
        () = &mut hurry => unreachable!("pending after triggering"),
    };
    drop(accept);
    let http = async {
        stopping.closed().await;
    };
    let all_done = closed
        && tokio::select! {
            () = http => true,
            () = sleep_until(deadline) => false,
            () = &mut hurry => unreachable!("pending after triggering"),
        };
    if all_done {
        tracing::info!("drained");
    } else {
        tracing::warn!(
            websockets = shutdown.live_connections(),
            http = stopping.receiver_count(),
            "drain time over; leaving what is still open"
        );
    }
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C) the process gets from
/// now on: the usual `signal` for [`serve`]. Where no handler can be
/// installed it logs why and never resolves.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => {}
                () = ctrl_c() => {}
            },
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

async fn ctrl_c() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}

/// The accept loop's state: what each accepted connection is served with.
struct Acceptor<'a> {
    listener: TcpListener,
    app: Router,
    config: &'a ServeConfig,
    stopping: &'a watch::Sender<bool>,
    last_logged: Option<Instant>,
}

impl Acceptor<'_> {
    /// Accepts one connection and spawns its task (or backs off after an
    /// accept error).
    async fn next(&mut self) {
        let (socket, client) = match self.listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                if self
                    .last_logged
                    .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
                {
                    tracing::warn!(%error, "accept failed; retrying (logged at most every 10 s)");
                    self.last_logged = Some(Instant::now());
                }
                sleep(ACCEPT_BACKOFF).await;
                return;
            }
        };
        let stop = self.stopping.subscribe();
        // The TLS handshake, if any, happens in the connection's own task:
        // a client that stalls in it must not hold up the accept loop.
        tokio::spawn(serve_socket(
            socket,
            client,
            self.app.clone(),
            self.config.clone(),
            stop,
        ));
    }
}

/// Serves one accepted socket: its TCP options, the TLS handshake when
/// configured, then HTTP.
async fn serve_socket(
    socket: TcpStream,
    client: std::net::SocketAddr,
    app: Router,
    config: ServeConfig,
    stop: watch::Receiver<bool>,
) {
    // The TLS handshake and the first request head share the timeout.
    let deadline = Some(config.handshake_timeout)
        .filter(|t| !t.is_zero())
        .map(|timeout| Instant::now() + timeout);
    if config.tcp_nodelay
        && let Err(error) = socket.set_nodelay(true)
    {
        tracing::debug!(%client, %error, "cannot set TCP_NODELAY");
    }
    let server = socket.local_addr().unwrap_or(client);
    let addrs = ConnectionAddrs { client, server };
    let http = Http {
        addrs,
        app,
        shutdown: config.shutdown,
        head_deadline: deadline,
    };
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        let handshake = tls.accept(socket);
        let handshake = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, handshake).await,
            None => Ok(handshake.await),
        };
        match handshake {
            Ok(Ok(stream)) => serve_connection(stream, http, stop).await,
            // A port scan, a plain-HTTP client, an untrusted certificate:
            // the client's problem, not the server's.
            Ok(Err(error)) => tracing::debug!(%client, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
        }
        return;
    }
    serve_connection(socket, http, stop).await;
}

/// What one connection's HTTP is served with.
struct Http {
    addrs: ConnectionAddrs,
    app: Router,
    shutdown: Shutdown,
    /// When a request head must be complete; keep-alive requests then
    /// follow within as long as was left of it.
    head_deadline: Option<Instant>,
}

/// Serves HTTP/1.1 (and upgrades) on `io`, plain TCP or TLS, until the
/// client is done or `stop` says to finish.
async fn serve_connection<I>(io: I, http: Http, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Http {
        addrs,
        app,
        shutdown,
        head_deadline,
    } = http;
    // Read when HTTP starts, after any TLS handshake: a connection that
    // finished its handshake during the drain still gets its one request.
    let draining = *stop.borrow();
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(addrs));
        request.extensions_mut().insert(shutdown.clone());
        app.clone().call(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    builder.keep_alive(!draining);
    builder
        .header_read_timeout(head_deadline.map(|at| at.saturating_duration_since(Instant::now())));
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = pin!(connection);
    let ended = if draining {
        // Serves one request: keep-alive is off.
        connection.await
    } else {
        tokio::select! {
            ended = connection.as_mut() => ended,
            () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                // Finishes the request in progress, then closes.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    };
    // Counted among the connections the drain waits for until here.
    drop(stop);
    if let Err(error) = ended {
        // A timed-out head, a reset, a malformed request: the
        // client's problem, not the server's.
        tracing::debug!(client = %addrs.client, %error, "HTTP connection ended with an error");
    }
}
