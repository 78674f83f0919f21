//! What the demo binary and the conformance example share: flags, logging,
//! binding, and serving until SIGTERM or Ctrl-C. Included by both with
//! `mod cli;` (binary-only code: it uses anyhow).

mod args;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use chanmux::ConnectionConfig;
use chanmux::Shutdown;
use chanmux::axum::ServeConfig;
use chanmux::layer::SharedLayer;
use clap::Parser;
use tokio::net::TcpListener;

use args::Args;

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
    let app = app(args.connection_config(shutdown.clone())?, layer.clone());
    let app = if args.stats {
        app.merge(chanmux_server::stats::stats_router(layer, shutdown.clone()))
    } else {
        app
    };
    let serve =
        ServeConfig::default().with_handshake_timeout(Duration::from_secs(args.handshake_timeout));
    // Tests and scripts read this line to find the port when --addr ends in :0.
    println!("listening on http://{addr}");
    tracing::info!(%addr, "{what} ready");
    chanmux_server::run(listener, app, serve, shutdown, ctrl_c())
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
