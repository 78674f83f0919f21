//! Fan-out: N clients join one room; one more client sends to it; for each
//! message, the time until the *last* member has it, and what the
//! deliveries cost the server in CPU.
//!
//! Speaks the demo's `chat` stream by default: a member sends
//! `{"stream": S, "payload": {"join": ROOM}}` and waits for a reply that
//! mentions `joined`; the sender (a member too) sends
//! `{"stream": S, "payload": {"room": ROOM, "message": {"round": N}}}` and
//! every member must receive a frame carrying `"round":N`, in order.
//!
//! Round 0 warms up alone and is not measured. Then `in_flight` rounds are
//! kept outstanding: 1 sends each round when the previous one has reached
//! everyone (latency with nothing queued); more gives a throughput figure,
//! while each round's latency is still from its own send to its last delivery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::cpu::CpuClock;
use crate::idle;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// `ws://127.0.0.1:port/path` (an IP address, so sources can be chosen).
    pub url: String,
    /// Members of the room (the sender is one more).
    pub clients: usize,
    /// Measured messages (one unmeasured warm-up message comes first).
    /// The server's CPU time has a resolution of 10 ms, so the CPU per
    /// delivery is only meaningful over many deliveries (clients × rounds
    /// of at least some 100,000).
    pub rounds: usize,
    /// Rounds outstanding at once (at least 1). Servers that drop a group
    /// message when a member's queue is full lose messages (and the run
    /// fails) if this exceeds that queue (chanmux's outbound queue holds
    /// 64 frames; the bare broadcaster's, 64).
    pub in_flight: usize,
    /// The stream that joins and broadcasts.
    pub stream: String,
    /// The room (group) name.
    pub room: String,
    /// Source addresses 127.0.0.1 … 127.0.0.N, as for `idle`.
    pub sources: u8,
    /// How long the last member may take to get a message before the run fails.
    pub timeout: Duration,
    /// The server's process id: its CPU time over the measured rounds.
    pub server_pid: Option<u32>,
    /// Print a progress line to stderr while members join.
    pub progress: bool,
}

/// The outcome, printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutSummary {
    /// Members that joined.
    pub clients: usize,
    /// Measured messages.
    pub rounds: usize,
    /// Rounds outstanding at once.
    pub in_flight: usize,
    /// Median time until the last member had a message.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// The slowest round.
    pub max_ms: f64,
    /// The median divided by the members: the cost per recipient.
    pub per_recipient_us: f64,
    /// Members × rounds over the wall time of the measured rounds.
    pub deliveries_per_sec: f64,
    /// The server's CPU time over the measured rounds divided by members ×
    /// rounds (with `server_pid`); the time's resolution is 10 ms.
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Frames a member got with a lower round than one it had already had.
    pub reordered: u64,
}

/// Joins the members, sends the rounds and measures them.
///
/// # Errors
///
/// A bad URL, a server process that cannot be read, a member that cannot
/// connect or join (with the reason: a refused connection, too few file
/// descriptors), or a round that does not reach every member within the
/// timeout (a lost message).
pub async fn run(config: &FanoutConfig) -> anyhow::Result<FanoutSummary> {
    let target = idle::target(&config.url)?;
    let clock = config.server_pid.map(CpuClock::new).transpose()?;
    // Every member reports (round, arrival time) of each message it gets.
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(u64, Instant)>();
    let reordered = Arc::new(AtomicU64::new(0));
    // Dropped at the end, which closes every member's connection.
    let mut members = JoinSet::new();
    let sources = config.sources.max(1);
    let mut joined = 0;
    while joined < config.clients {
        let batch = 200.min(config.clients - joined);
        let clients = futures_util::future::try_join_all(
            (joined..joined + batch).map(|i| join(config, target, i, sources)),
        )
        .await?;
        for client in clients {
            members.spawn(member(client, arrivals.clone(), reordered.clone()));
        }
        joined += batch;
        if config.progress && joined % 1000 < batch {
            eprintln!("  … {joined} members joined");
        }
    }
    let (mut sender, mut copies) = join(config, target, config.clients, sources).await?.split();
    // The sender is a member too: its copies are read and dropped.
    members.spawn(async move { while let Some(Ok(_)) = copies.next().await {} });

    let mut tally = Tally::new(config.rounds + 1, config.clients);
    let mut send = async |round: u64, tally: &mut Tally| {
        let frame = serde_json::json!({
            "stream": config.stream,
            "payload": {"room": config.room, "message": {"round": round}},
        });
        tally.sent(round);
        sender.send(Message::text(frame.to_string())).await
    };
    // Round 0 warms up alone, outside the measurement.
    send(0, &mut tally).await?;
    while !tally.arrive(next_arrival(&mut arrived, &tally, config).await?) {}

    let cpu_before = clock.as_ref().map(CpuClock::now).transpose()?;
    let started = Instant::now();
    let in_flight = config.in_flight.max(1);
    let mut next = 1;
    while next <= config.rounds && next <= in_flight {
        send(next as u64, &mut tally).await?;
        next += 1;
    }
    let mut done = 0;
    while done < config.rounds {
        if tally.arrive(next_arrival(&mut arrived, &tally, config).await?) {
            done += 1;
            if next <= config.rounds {
                send(next as u64, &mut tally).await?;
                next += 1;
            }
        }
    }
    let wall = started.elapsed();
    let cpu = match (clock, cpu_before) {
        (Some(clock), Some(before)) => Some(clock.now()? - before),
        _ => None,
    };
    drop(members);

    let deliveries = (config.clients * config.rounds).max(1) as f64;
    let mut last_delivery = tally.latencies();
    last_delivery.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p50 = percentile(&last_delivery, 0.5);
    Ok(FanoutSummary {
        clients: config.clients,
        rounds: config.rounds,
        in_flight,
        p50_ms: ms(p50),
        p99_ms: ms(percentile(&last_delivery, 0.99)),
        max_ms: ms(last_delivery.last().copied().unwrap_or_default()),
        per_recipient_us: p50.as_secs_f64() * 1e6 / config.clients.max(1) as f64,
        deliveries_per_sec: deliveries / wall.as_secs_f64(),
        server_cpu_us_per_delivery: cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / deliveries),
        reordered: reordered.load(Ordering::Relaxed),
    })
}

/// The next (round, arrival time) from any member.
async fn next_arrival(
    arrived: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    tally: &Tally,
    config: &FanoutConfig,
) -> anyhow::Result<(u64, Instant)> {
    match tokio::time::timeout(config.timeout, arrived.recv()).await {
        Ok(Some(arrival)) => Ok(arrival),
        _ => {
            let (round, received) = tally.oldest_open();
            bail!(
                "round {round}: {received} of {} members got the message within {:?}",
                config.clients,
                config.timeout
            )
        }
    }
}

/// Reads one member's frames and reports each round it gets.
async fn member(
    mut client: Client,
    arrivals: mpsc::UnboundedSender<(u64, Instant)>,
    reordered: Arc<AtomicU64>,
) {
    let mut last = None;
    while let Some(Ok(message)) = client.next().await {
        if let Message::Text(text) = message
            && let Some(round) = round_of(&text)
        {
            let at = Instant::now();
            if last.is_some_and(|last| round <= last) {
                reordered.fetch_add(1, Ordering::Relaxed);
            }
            last = Some(round);
            let _ = arrivals.send((round, at));
        }
    }
}

/// Per round: when it was sent, how many members have it, the last arrival.
#[derive(Debug)]
struct Tally {
    members: usize,
    rounds: Vec<Round>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Round {
    sent: Option<Instant>,
    received: usize,
    last: Option<Instant>,
}

impl Tally {
    fn new(rounds: usize, members: usize) -> Self {
        Tally {
            members,
            rounds: vec![Round::default(); rounds],
        }
    }

    fn sent(&mut self, round: u64) {
        self.rounds[round as usize].sent = Some(Instant::now());
    }

    /// Counts one arrival; true when it was the round's last member.
    fn arrive(&mut self, (round, at): (u64, Instant)) -> bool {
        let Some(entry) = self.rounds.get_mut(round as usize) else {
            return false;
        };
        entry.received += 1;
        entry.last = entry.last.max(Some(at));
        entry.received == self.members
    }

    /// The first round sent and not yet everywhere, and how far it got.
    fn oldest_open(&self) -> (usize, usize) {
        self.rounds
            .iter()
            .enumerate()
            .find(|(_, r)| r.sent.is_some() && r.received < self.members)
            .map_or((0, 0), |(i, r)| (i, r.received))
    }

    /// Send to last delivery of each measured round (round 0 is the warm-up).
    fn latencies(&self) -> Vec<Duration> {
        self.rounds[1..]
            .iter()
            .filter_map(|r| Some(r.last? - r.sent?))
            .collect()
    }
}

type Client = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects member `i` and joins the room.
async fn join(
    config: &FanoutConfig,
    target: SocketAddr,
    i: usize,
    sources: u8,
) -> anyhow::Result<Client> {
    let mut client = idle::open(&config.url, target, i, sources).await?;
    let frame = serde_json::json!({"stream": config.stream, "payload": {"join": config.room}});
    client.send(Message::text(frame.to_string())).await?;
    let reply = tokio::time::timeout(config.timeout, client.next())
        .await
        .context("no answer to the join")?;
    match reply {
        Some(Ok(Message::Text(text))) if text.contains("joined") => Ok(client),
        other => bail!(
            "joining {:?} on stream {:?} failed: {other:?}",
            config.room,
            config.stream
        ),
    }
}

/// The `round` number inside a broadcast frame, without parsing it all.
fn round_of(text: &str) -> Option<u64> {
    let start = text.find(r#""round":"#)? + r#""round":"#.len();
    let digits = text[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(&text[start..], |end| &text[start..start + end]);
    digits.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_found_in_any_frame_that_carries_them() {
        assert_eq!(
            round_of(r#"{"stream":"chat","payload":{"room":"r","message":{"round":12}}}"#),
            Some(12)
        );
        assert_eq!(round_of(r#"{"round":7}"#), Some(7));
        assert_eq!(round_of(r#"{"joined":"r"}"#), None);
    }
}
