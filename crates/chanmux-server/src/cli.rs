//! What the demo binary and the conformance example share: flags, logging,
//! binding, and serving until Ctrl-C. Included by both with `mod cli;`
//! (binary-only code: it uses anyhow).

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use chanmux::layer::SharedLayer;
use chanmux::{ConnectionConfig, Shutdown};
use clap::Parser;
use tokio::net::TcpListener;

/// Flags of the demo server and the conformance example.
#[derive(Debug, Parser)]
#[command(version)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHANMUX_ADDR", default_value = "127.0.0.1:8000")]
    pub(crate) addr: SocketAddr,
    /// Redis URL for groups shared between processes (e.g. redis://127.0.0.1:6379/);
    /// without it, groups live in this process.
    #[arg(long, env = "CHANMUX_REDIS_URL")]
    pub(crate) redis: Option<String>,
    /// Initial WebSocket read buffer per connection, in bytes: smaller keeps
    /// idle connections cheaper, larger reads big frames in fewer calls
    /// (BENCHMARKS.md has the trade-off).
    #[arg(long, env = "CHANMUX_READ_BUFFER", default_value_t = ConnectionConfig::default().read_buffer_size)]
    pub(crate) read_buffer: usize,
    /// Serve `GET /stats` (connections and channel-layer counts, as JSON).
    #[arg(long, env = "CHANMUX_STATS")]
    pub(crate) stats: bool,
}

/// Parses the flags, binds, builds the app with `app` and serves it until
/// Ctrl-C (closing WebSockets with 1001).
pub(crate) async fn serve(
    app: fn(ConnectionConfig, SharedLayer) -> Router,
    what: &str,
) -> anyhow::Result<()> {
    // Logs go to stderr; stdout carries only the address line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,chanmux=info".into()),
        )
        .init();
    let args = Args::parse();
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let layer = chanmux_server::layer(args.redis.as_deref())
        .await
        .context("connecting to Redis")?;
    let shutdown = Shutdown::new();
    let app = app(
        ConnectionConfig::default()
            .with_shutdown(shutdown.clone())
            .with_read_buffer_size(args.read_buffer),
        layer.clone(),
    );
    let app = if args.stats {
        app.merge(chanmux_server::stats::stats_router(layer, shutdown.clone()))
    } else {
        app
    };
    // Tests and scripts read this line to find the port when --addr ends in :0.
    println!("listening on http://{addr}");
    tracing::info!(%addr, "{what} ready");
    chanmux_server::run(listener, app, shutdown, ctrl_c())
        .await
        .context("serving")?;
    Ok(())
}

async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot listen for Ctrl-C; running until killed");
        std::future::pending::<()>().await;
    }
}
