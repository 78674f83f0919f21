//! Serves the applications of channelsmultiplexer's test suite for outside
//! conformance suites:
//!
//! - `/ws/`: `echostream`, `altechostream`, `closeafterfirst`, `neveraccept`
//! - `/ws/raise/`: `raiseinaccept`, whose consumer fails in connect
//! - `/ws/single/`: `test`, an echo consumer that never accepts
//! - `/ws/lastclose/`: `closeafterfirst` and `closewithcode` (4001, "bye")
//!
//! `cargo run --release --example conformance -- --addr 127.0.0.1:PORT`

use std::net::SocketAddr;

use anyhow::Context as _;
use chanmux::{ConnectionConfig, Shutdown};
use clap::Parser;
use tokio::net::TcpListener;

/// Conformance server for channels-multiplexer.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHANMUX_ADDR", default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Redis URL for groups shared between processes (e.g. redis://127.0.0.1:6379/);
    /// without it, groups live in this process.
    #[arg(long, env = "CHANMUX_REDIS_URL")]
    redis: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr; stdout carries only the address line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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
    let app = chanmux_server::conformance_router(
        ConnectionConfig::default().with_shutdown(shutdown.clone()),
        layer,
    );
    println!("listening on http://{addr}");
    let signal = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    chanmux_server::run(listener, app, shutdown, signal)
        .await
        .context("serving")?;
    Ok(())
}
