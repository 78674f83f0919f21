//! What the demo binary and the conformance example share: flags, logging,
//! metrics, binding, and serving until SIGTERM or Ctrl-C. Included by both
//! with `mod cli;` (binary-only code: it uses anyhow).

mod args;
mod file;
mod logging;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use chanmux::ConnectionConfig;
use chanmux::axum::{ServeConfig, TlsConfig, serve as serve_http, termination};
use chanmux::layer::SharedLayer;
use tokio::net::TcpListener;

use args::Args;

/// Parses the flags, binds, builds the app with `app` and serves it until
/// SIGTERM or Ctrl-C, then drains (see `--drain-secs`).
pub(crate) async fn serve(
    app: fn(ConnectionConfig, SharedLayer) -> Router,
    what: &str,
) -> anyhow::Result<()> {
    let args = Args::load()?;
    logging::init(args.log_format)?;
    // Before anything records: the library looks its handles up once.
    let metrics = match args.metrics_addr {
        Some(addr) => {
            let handle = chanmux_server::metrics::install().context("installing metrics")?;
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --metrics-addr {addr}"))?;
            Some((listener, handle))
        }
        None => None,
    };
    let listener =
        bind(args.addr, args.backlog).with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let layer = chanmux_server::layer(args.groups())
        .await
        .context("connecting to Redis")?;
    let mut config = ServeConfig::default()
        .with_handshake_timeout(Duration::from_secs(args.handshake_timeout))
        .with_drain_timeout(Duration::from_secs(args.drain_secs));
    let scheme = match args.tls() {
        Some((cert, key)) => {
            let tls = TlsConfig::from_pem_files(cert, key).with_context(|| {
                format!(
                    "loading TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
            config = config.with_tls(tls);
            "https"
        }
        None => "http",
    };
    let shutdown = config.shutdown.clone();
    let app = app(args.connection_config(shutdown.clone())?, layer.clone());
    let app = if args.stats {
        app.merge(chanmux_server::stats::stats_router(layer, shutdown))
    } else {
        app
    };
    // Tests and scripts read this line to find the port when --addr ends in :0.
    println!("listening on {scheme}://{addr}");
    if let Some((listener, handle)) = metrics {
        // The second line, for the same reason.
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        let router = chanmux_server::metrics::metrics_router(handle);
        // Our accept loop for its timeout on request heads, even on a port
        // meant for the operator's scraper; it ends with the process, not
        // with the drain (scrapes go on while the server drains).
        let serve_metrics = ServeConfig::default()
            .with_handshake_timeout(Duration::from_secs(args.handshake_timeout));
        tokio::spawn(async move {
            if let Err(error) =
                serve_http(listener, router, serve_metrics, std::future::pending()).await
            {
                tracing::error!(%error, "metrics listener failed");
            }
        });
    }
    tracing::info!(%addr, "{what} ready");
    serve_http(listener, app, config, termination())
        .await
        .context("serving")?;
    Ok(())
}

/// Binds `addr` with a listen queue of `backlog` connections (Tokio's
/// `TcpListener::bind` asks for 128, too few for a crowd reconnecting after
/// a restart; the kernel caps it at `net.core.somaxconn`).
fn bind(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As TcpListener::bind does: a restarted server can bind at once, while
    // its old connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
