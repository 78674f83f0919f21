//! Fan-out: how long one room message takes to reach every connected client.
//!
//! Starts the demo server binary (in its own process) with the in-memory
//! layer, then with Redis (a redis-server this bench starts), connects N
//! WebSocket clients over loopback that all join one chat room, and sends
//! room messages one at a time from one more client. For each message it
//! records when the *last* client got it; it reports p50 and p99 of that
//! over the rounds, and that time divided by N (the cost per recipient).
//!
//! `cargo bench -p chanmux-server --bench fanout -- --clients 1000,10000 --rounds 30`
//!
//! Needs a file-descriptor limit above N in both processes (`ulimit -n`).
//! Not a test: nothing here asserts a time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Options {
    clients: Vec<usize>,
    rounds: usize,
    layers: Vec<String>,
}

fn options() -> Options {
    let mut options = Options {
        clients: vec![1000, 10_000],
        rounds: 30,
        layers: vec!["memory".into(), "redis".into()],
    };
    // `cargo bench` passes --bench; `cargo test --benches` does not, and then
    // a small run just checks that the bench works.
    if !std::env::args().any(|a| a == "--bench") {
        options.clients = vec![20];
        options.rounds = 2;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => {
                options.clients = value()
                    .split(',')
                    .map(|n| n.parse().expect("a number"))
                    .collect()
            }
            "--rounds" => options.rounds = value().parse().expect("a number"),
            "--layers" => options.layers = value().split(',').map(str::to_owned).collect(),
            _ => {} // cargo bench passes --bench
        }
    }
    options
}

async fn start_server(redis: Option<&str>) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chanmux-server"));
    command
        .args(["--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    let mut child = command.spawn().expect("the server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("the address line");
    let addr = line
        .strip_prefix("listening on http://")
        .expect("the address line")
        .to_owned();
    (child, addr)
}

async fn join(addr: &str) -> Client {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/"))
        .await
        .expect("connect (raise `ulimit -n` if this fails with too many open files)");
    client
        .send(Message::text(
            r#"{"stream":"chat","payload":{"join":"bench"}}"#,
        ))
        .await
        .unwrap();
    match client.next().await {
        Some(Ok(Message::Text(text))) if text.contains("joined") => client,
        other => panic!("join failed: {other:?}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn run(layer: &str, redis: Option<&str>, clients: usize, rounds: usize) {
    let (_server, addr) = start_server(redis).await;
    // Every client reports (round, arrival time) for each message it gets.
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(u64, Instant)>();
    for chunk in 0..clients.div_ceil(500) {
        let batch = 500.min(clients - chunk * 500);
        let joined = futures_util::future::join_all((0..batch).map(|_| join(&addr))).await;
        for mut client in joined {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = client.next().await {
                    if let Message::Text(text) = message {
                        let at = Instant::now();
                        if let Some(round) = round_of(&text) {
                            let _ = arrivals.send((round, at));
                        }
                    }
                }
            });
        }
    }
    let mut sender = join(&addr).await;
    let mut last_delivery = Vec::with_capacity(rounds);
    // Round 0 warms up and is not counted.
    for round in 0..=rounds as u64 {
        let message = format!(
            r#"{{"stream":"chat","payload":{{"room":"bench","message":{{"round":{round}}}}}}}"#
        );
        let sent = Instant::now();
        sender.send(Message::text(message)).await.unwrap();
        let mut received = 0;
        let mut last = sent;
        while received < clients {
            let (r, at) = tokio::time::timeout(Duration::from_secs(60), arrived.recv())
                .await
                .expect("every client gets the message within 60 s")
                .expect("open");
            if r == round {
                received += 1;
                last = last.max(at);
            }
        }
        // The sender is a member too; drain its copy.
        let _ = sender.next().await;
        if round > 0 {
            last_delivery.push(last - sent);
        }
    }
    last_delivery.sort();
    let p50 = percentile(&last_delivery, 0.5);
    let p99 = percentile(&last_delivery, 0.99);
    let per_recipient = p50 / clients as u32;
    println!(
        "| {layer} | {clients} | {rounds} | {:.2} ms | {:.2} ms | {:.2} µs |",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        per_recipient.as_secs_f64() * 1e6,
    );
}

/// The `round` number inside a chat frame, without parsing the whole frame.
fn round_of(text: &str) -> Option<u64> {
    let start = text.find(r#""round":"#)? + 8;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::main]
async fn main() {
    let options = options();
    let redis = if options.layers.iter().any(|l| l == "redis") {
        Some(chanmux_redis::testing::RedisServer::start().await)
    } else {
        None
    };
    println!(
        "| layer | clients | rounds | last delivery p50 | p99 | per recipient (p50 / clients) |"
    );
    println!("|---|---|---|---|---|---|");
    for layer in &options.layers {
        for &clients in &options.clients {
            let url = redis.as_ref().map(|r| r.url());
            let url = if layer == "redis" {
                url.as_deref()
            } else {
                None
            };
            run(layer, url, clients, options.rounds).await;
        }
    }
}
