//! Streams on demand under churn: many connections each subscribe to and
//! unsubscribe from many pattern streams, so a script can watch the
//! server's memory come back (PROTOCOL.md's subscribe/unsubscribe).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::stream;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// What to do.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// `ws://127.0.0.1:port/path`, with an IP address.
    pub url: String,
    /// How many connections.
    pub connections: usize,
    /// Streams each connection subscribes to and then unsubscribes from.
    pub streams: usize,
    /// The stream names: `{}` is replaced by a number (`room:{}`).
    pub pattern: String,
    /// Source addresses 127.0.0.1 … 127.0.0.N (see `idle`).
    pub sources: u8,
    /// Connections churning at once.
    pub concurrency: usize,
    /// How many times the whole churn runs (a second round that leaves the
    /// server's memory where the first did shows nothing accumulates).
    pub rounds: usize,
    /// How long to hold the connections after the churn, and after closing.
    pub hold: Duration,
}

/// The outcome, printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnSummary {
    /// Connections opened.
    pub connections: usize,
    /// Subscribe/unsubscribe pairs answered `subscribed` then `unsubscribed`.
    pub cycles: usize,
    /// Time to open the connections.
    pub open_seconds: f64,
    /// Time the churn took.
    pub churn_seconds: f64,
}

type Client = WebSocketStream<TcpStream>;

/// Opens the connections (stderr: `all open`), churns (stderr: `churned`,
/// then holds), closes them all (stderr: `all closed`, then holds).
///
/// # Errors
///
/// A bad URL, a connection that fails, or an answer that is not the one
/// expected.
pub async fn run(config: &ChurnConfig) -> anyhow::Result<ChurnSummary> {
    let target = crate::idle::target(&config.url)?;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(config.connections);
    for i in 0..config.connections {
        clients.push(crate::idle::open(&config.url, target, i, config.sources.max(1)).await?);
    }
    let open_seconds = started.elapsed().as_secs_f64();
    eprintln!("all open: {} held", clients.len());
    tokio::time::sleep(config.hold).await;

    let started = Instant::now();
    let mut cycles = 0;
    for round in 1..=config.rounds.max(1) {
        let results: Vec<(Client, anyhow::Result<usize>)> =
            stream::iter(clients.into_iter().enumerate())
                .map(|(n, mut client)| async move {
                    let cycles = churn(&mut client, n, config).await;
                    (client, cycles)
                })
                .buffer_unordered(config.concurrency.max(1))
                .collect()
                .await;
        clients = Vec::with_capacity(results.len());
        for (client, outcome) in results {
            cycles += outcome?;
            clients.push(client);
        }
        // Scripts measure the server at each of these lines.
        eprintln!("churned: round {round}, {cycles} cycles");
        tokio::time::sleep(config.hold).await;
    }
    let churn_seconds = started.elapsed().as_secs_f64();
    for client in &mut clients {
        let _ = client.close(None).await;
    }
    drop(clients);
    eprintln!("all closed");
    tokio::time::sleep(config.hold).await;
    Ok(ChurnSummary {
        connections: config.connections,
        cycles,
        open_seconds,
        churn_seconds,
    })
}

/// One connection's subscribes and unsubscribes, each waiting for its answer.
async fn churn(client: &mut Client, n: usize, config: &ChurnConfig) -> anyhow::Result<usize> {
    for i in 0..config.streams {
        let name = config
            .pattern
            .replace("{}", &((n * config.streams + i) % 100_000).to_string());
        for (kind, answer) in [("subscribe", "subscribed"), ("unsubscribe", "unsubscribed")] {
            let frame = json!({kind: name, "ref": i});
            client
                .send(Message::text(frame.to_string()))
                .await
                .context("send")?;
            let reply = next_json(client).await?;
            if reply[answer] != name.as_str() || reply["ref"] != i {
                bail!("{kind} {name}: expected {answer}, got {reply}");
            }
        }
    }
    Ok(config.streams)
}

async fn next_json(client: &mut Client) -> anyhow::Result<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), client.next())
            .await
            .context("no answer within 30 s")?
            .context("the server closed the connection")??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => bail!("expected a text frame, got {other:?}"),
        }
    }
}
