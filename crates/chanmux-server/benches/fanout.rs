//! Fan-out: how long one room message takes to reach every connected client.
//!
//! Starts the demo server binary (in its own process) with the in-memory
//! layer, then with Redis (a redis-server this bench starts), and runs
//! `chanmux-load fanout`'s engine against it: N clients over loopback join
//! one chat room, one more sends room messages one at a time, and for each
//! message the time until the *last* client got it is recorded; it reports
//! p50 and p99 of that over the rounds, the p50 divided by N (the cost per
//! recipient), deliveries per second and the server's CPU per delivery.
//!
//! `cargo bench -p chanmux-server --bench fanout -- --clients 1000,10000 --rounds 100`
//!
//! A quick check, not the report: server and clients share both cores
//! here. `scripts/bench.py --only fanout` pins them apart and compares with
//! the `chanmux-bare-broadcast` ceiling.
//!
//! Needs a file-descriptor limit above N in both processes (`ulimit -n`).
//! Not a test: nothing here asserts a time.

use std::process::Stdio;
use std::time::Duration;

use chanmux_bench::fanout::{self, FanoutConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Options {
    clients: Vec<usize>,
    rounds: usize,
    layers: Vec<String>,
}

fn options() -> Options {
    let mut options = Options {
        clients: vec![1000, 10_000],
        // The CPU figure ticks every 10 ms: enough rounds that it is many ticks.
        rounds: 100,
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
        // Up to 10,000 members from one address: over the default limits.
        .args(["--addr", "127.0.0.1:0", "--max-connections", "0"])
        .args(["--max-connections-per-ip", "0"])
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

async fn run(layer: &str, redis: Option<&str>, clients: usize, rounds: usize) {
    let (server, addr) = start_server(redis).await;
    let config = FanoutConfig {
        url: format!("ws://{addr}/ws/"),
        clients,
        rounds,
        in_flight: 1,
        stream: "chat".into(),
        room: "bench".into(),
        sources: 1,
        timeout: Duration::from_secs(60),
        server_pid: server.id(),
        progress: false,
    };
    let summary = fanout::run(&config)
        .await
        .unwrap_or_else(|e| panic!("fan-out over {layer} with {clients} clients: {e:#}"));
    let cpu = summary
        .server_cpu_us_per_delivery
        .map_or("?".to_owned(), |us| format!("{us:.2} µs"));
    println!(
        "| {layer} | {clients} | {rounds} | {:.2} ms | {:.2} ms | {:.2} µs | {:.0} | {cpu} |",
        summary.p50_ms, summary.p99_ms, summary.per_recipient_us, summary.deliveries_per_sec,
    );
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
        "| layer | clients | rounds | last delivery p50 | p99 | per recipient (p50 / clients) | deliveries/s | server CPU per delivery |"
    );
    println!("|---|---|---|---|---|---|---|---|");
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
