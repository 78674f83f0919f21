//! Closed-loop echo: C connections, each keeping W messages in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{Summary, Tally};
use crate::verify::{Verifier, payload};

/// How long replies still in flight at the stop may take to arrive before
/// they count as lost.
const DRAIN: Duration = Duration::from_secs(5);

/// How to load the server.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// `ws://host:port/path`.
    pub url: String,
    /// Connections opened at once.
    pub connections: usize,
    /// Messages each connection keeps in flight.
    pub in_flight: usize,
    /// Streams to send on, round robin (ignored when not multiplexed).
    pub streams: Vec<String>,
    /// Payload size in bytes (about).
    pub payload_size: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it, to warm up.
    pub warmup: Duration,
    /// `{"stream", "payload"}` frames; `false` sends bare payloads (for a plain echo server).
    pub multiplexed: bool,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// Runs the load and returns the verified figures.
///
/// # Errors
///
/// When a connection cannot be opened (with a hint for refused connections
/// and for running out of file descriptors).
pub async fn run(config: &EchoConfig) -> anyhow::Result<Summary> {
    let mut clients = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        clients.push(connect(&config.url).await?);
    }
    let start = Instant::now() + Duration::from_millis(10);
    let measure_from = start + config.warmup;
    let stop = measure_from + config.duration;
    let counted = Arc::new(AtomicU64::new(0));
    let progress = config.progress.then(|| {
        let counted = counted.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = counted.load(Ordering::Relaxed);
                eprintln!("  … {} verified replies ({}/s)", now, now - last);
                last = now;
            }
        })
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let config = config.clone();
            let counted = counted.clone();
            tokio::spawn(
                async move { drive(client, i, &config, measure_from, stop, &counted).await },
            )
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(&task.await.context("a connection task panicked")?);
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    Ok(total.summary(config.duration))
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens one WebSocket, explaining the usual failures.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Io(e)) => {
            if let Some(hint) = crate::fd_limit_hint(&e) {
                anyhow::bail!("connecting to {url}: {e}: {hint}");
            }
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                anyhow::bail!("connecting to {url}: refused; is the server running there?");
            }
            Err(e).with_context(|| format!("connecting to {url}"))
        }
        Err(e) => Err(e).with_context(|| format!("connecting to {url}")),
    }
}

/// One connection's closed loop.
async fn drive(
    client: Client,
    index: usize,
    config: &EchoConfig,
    measure_from: Instant,
    stop: Instant,
    counted: &AtomicU64,
) -> Tally {
    let (mut sink, mut replies) = client.split();
    let mut verifier = Verifier::default();
    let mut tally = Tally::default();
    let mut seq = 0u64;
    let streams = &config.streams;
    let mut next_frame = |verifier: &mut Verifier| {
        seq += 1;
        let body = payload(seq, config.payload_size);
        if config.multiplexed {
            let stream = &streams[(index + seq as usize) % streams.len()];
            let frame = chanmux_core::wrap(stream, &body);
            verifier.sent(Some(stream), body);
            frame
        } else {
            verifier.sent(None, body.clone());
            body
        }
    };
    for _ in 0..config.in_flight {
        let frame = next_frame(&mut verifier);
        if sink.send(Message::text(frame)).await.is_err() {
            tally.errors += 1;
            return tally;
        }
    }
    // After the stop, replies still in flight get this long to arrive.
    let drain_until = stop + DRAIN;
    loop {
        let now = Instant::now();
        if now >= drain_until {
            break;
        }
        let wait = if now < stop {
            stop - now
        } else {
            drain_until - now
        };
        let reply = match timeout(wait, replies.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => {
                tally.errors += 1;
                break;
            }
            Ok(Some(Ok(_))) | Err(_) => continue,
        };
        let received_at = Instant::now();
        if config.multiplexed && reply.as_str().starts_with(r#"{"error""#) {
            tally.errors += 1;
        } else {
            let verdict = verifier.received(reply.as_str(), config.multiplexed);
            if received_at >= measure_from && received_at < stop {
                tally.record(verdict);
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
        if received_at < stop {
            let frame = next_frame(&mut verifier);
            if sink.send(Message::text(frame)).await.is_err() {
                tally.errors += 1;
                break;
            }
        } else if verifier.outstanding() == 0 {
            break;
        }
    }
    tally.lost += verifier.outstanding() as u64;
    let _ = sink.close().await;
    tally
}
