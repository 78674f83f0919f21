//! Idle connections: open many, hold them, report how many were held.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::net::TcpSocket;

/// What to open.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// `ws://127.0.0.1:port/path` (an IP address, so sources can be chosen).
    pub url: String,
    /// How many connections.
    pub connections: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N, round robin: each gives its own
    /// ~28k ephemeral ports, so more than 64k connections fit on loopback.
    pub sources: u8,
    /// How long to hold them once open.
    pub hold: Duration,
    /// Print a progress line to stderr every 1,000 connections.
    pub progress: bool,
}

/// The outcome, printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct IdleSummary {
    /// Connections opened and held to the end.
    pub held: usize,
    /// Connections that failed to open.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Time to open them all.
    pub open_seconds: f64,
}

/// Opens and holds the connections; stops opening at the first failure.
///
/// # Errors
///
/// When the URL is not `ws://<ip>:<port>/...`.
pub async fn run(config: &IdleConfig) -> anyhow::Result<IdleSummary> {
    let target = target(&config.url)?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(config.connections);
    let mut first_error = None;
    for i in 0..config.connections {
        match open(&config.url, target, i, config.sources.max(1)).await {
            Ok(client) => held.push(client),
            Err(e) => {
                first_error = Some(format!("{e:#}"));
                break;
            }
        }
        if config.progress && (i + 1) % 1000 == 0 {
            eprintln!("  … {} connections open", i + 1);
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    // Scripts wait for this line before measuring the server.
    eprintln!("all open: {} held", held.len());
    tokio::time::sleep(config.hold).await;
    let summary = IdleSummary {
        held: held.len(),
        failed: config.connections - held.len(),
        first_error,
        open_seconds,
    };
    drop(held);
    Ok(summary)
}

/// The socket address in a `ws://<ip>:<port>/...` URL.
pub(crate) fn target(url: &str) -> anyhow::Result<SocketAddr> {
    url.strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .context("the URL must look like ws://127.0.0.1:8000/ws/")?
        .parse()
        .context("the URL's host must be an IP address and port")
}

/// Opens connection number `i` from source address 127.0.0.(1 + i % sources).
pub(crate) async fn open(
    url: &str,
    target: SocketAddr,
    i: usize,
    sources: u8,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let explain = |e: std::io::Error| match crate::fd_limit_hint(&e) {
        Some(hint) => anyhow::anyhow!("{e}: {hint}"),
        None => anyhow::anyhow!(e),
    };
    let socket = TcpSocket::new_v4().map_err(explain)?;
    let source = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(sources)) as u8);
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .map_err(explain)?;
    let stream = socket.connect(target).await.map_err(explain)?;
    let (client, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(client)
}
