//! `chanmux-load`: load a WebSocket multiplexer and report what it did.

use std::time::Duration;

use anyhow::Context as _;
use chanmux_bench::{chaos, churn, echo, fanout, idle};
use clap::{Parser, Subcommand};

/// Load generator for servers speaking {"stream", "payload"} frames.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop echo with every reply verified (stream, payload, order).
    Echo {
        /// Target URL.
        #[arg(long, default_value = "ws://127.0.0.1:8000/ws/")]
        url: String,
        /// Connections.
        #[arg(long, short = 'c', default_value_t = 10)]
        connections: usize,
        /// Messages in flight per connection.
        #[arg(long, short = 'w', default_value_t = 1)]
        in_flight: usize,
        /// Streams to send on, comma-separated (they must echo).
        #[arg(long, default_value = "echostream", value_delimiter = ',')]
        streams: Vec<String>,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Unmeasured warm-up seconds.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Send bare payloads to a plain echo server (no envelope).
        #[arg(long)]
        bare: bool,
    },
    /// Open connections, subscribe each to many pattern streams and
    /// unsubscribe again, hold, close: for watching the server's memory.
    Churn {
        /// Target URL, with an IP address.
        #[arg(long, default_value = "ws://127.0.0.1:8000/ws/")]
        url: String,
        /// Connections.
        #[arg(long, short = 'c', default_value_t = 1000)]
        connections: usize,
        /// Streams per connection.
        #[arg(long, default_value_t = 50)]
        streams: usize,
        /// Stream names; `{}` becomes a number.
        #[arg(long, default_value = "room:{}")]
        pattern: String,
        /// Source addresses 127.0.0.1 ... 127.0.0.N.
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// Connections churning at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Times the whole churn runs.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Seconds to hold after the churn and after closing.
        #[arg(long, default_value_t = 3.0)]
        hold: f64,
    },
    /// Open connections and hold them.
    Idle {
        /// Target URL, with an IP address.
        #[arg(long, default_value = "ws://127.0.0.1:8000/ws/")]
        url: String,
        /// Connections.
        #[arg(long, short = 'c', default_value_t = 1000)]
        connections: usize,
        /// Source addresses 127.0.0.1 ... 127.0.0.N.
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 5.0)]
        hold: f64,
    },
    /// N members join one room; one sender; time until the last member has each message.
    Fanout {
        /// Target URL, with an IP address.
        #[arg(long, default_value = "ws://127.0.0.1:8000/ws/")]
        url: String,
        /// Members of the room.
        #[arg(long, short = 'c', default_value_t = 1000)]
        clients: usize,
        /// Measured messages. The server's CPU time ticks every 10 ms: for a
        /// meaningful CPU per delivery, make clients × rounds large (100,000+).
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        /// Rounds outstanding at once (1: each waits for the previous one).
        #[arg(long, short = 'w', default_value_t = 1)]
        in_flight: usize,
        /// The stream that joins rooms and broadcasts (the demo's `chat`).
        #[arg(long, default_value = "chat")]
        stream: String,
        /// The room to join.
        #[arg(long, default_value = "bench")]
        room: String,
        /// Source addresses 127.0.0.1 ... 127.0.0.N.
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// Seconds the last member may take to get a message.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// The server's process id: report its CPU time per delivery over
        /// the measured rounds (from /proc/PID/stat).
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Many actors misbehaving at once (resets, half-open sockets, floods,
    /// invalid frames, slow readers, chat), then health and leak checks.
    Chaos {
        /// Target URL, with an IP address (a server with the demo's streams).
        #[arg(long, default_value = "ws://127.0.0.1:8000/ws/")]
        url: String,
        /// Seconds during which actors start scenarios.
        #[arg(long, default_value_t = 600.0)]
        duration: f64,
        /// Concurrent actors.
        #[arg(long, default_value_t = 32)]
        workers: usize,
        /// RNG seed (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// Seconds to wait after the last actor, before the checks.
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
        /// Longest hold of a half-open socket or an unread one, in seconds.
        #[arg(long, default_value_t = 12.0)]
        max_hold: f64,
        /// The server's process id: compare its RSS before and after.
        #[arg(long)]
        server_pid: Option<u32>,
        /// MiB the server's RSS may grow by.
        #[arg(long, default_value_t = 32)]
        rss_slack_mib: u64,
        /// The server's stats endpoint (the demo's `--stats`): nothing may be left.
        #[arg(long)]
        stats_url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Echo {
            url,
            connections,
            in_flight,
            streams,
            payload,
            duration,
            warmup,
            bare,
        } => {
            let config = echo::EchoConfig {
                url,
                connections,
                in_flight,
                streams,
                payload_size: payload,
                duration: Duration::from_secs_f64(duration),
                warmup: Duration::from_secs_f64(warmup),
                multiplexed: !bare,
                progress: duration >= 10.0,
            };
            let summary = echo::run(&config).await?;
            eprintln!(
                "{:.0} msg/s over {connections} connections × {in_flight} in flight; latency p50 {:.3} ms p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}; wrong stream {} wrong payload {} reordered {} errors {} lost {}",
                summary.throughput,
                summary.p50_ms,
                summary.p90_ms,
                summary.p99_ms,
                summary.p999_ms,
                summary.max_ms,
                summary.wrong_stream,
                summary.wrong_payload,
                summary.reordered,
                summary.errors,
                summary.lost,
            );
            println!("{}", serde_json::to_string(&summary).context("summary")?);
            if !summary.is_clean() {
                std::process::exit(2);
            }
        }
        Command::Churn {
            url,
            connections,
            streams,
            pattern,
            sources,
            concurrency,
            rounds,
            hold,
        } => {
            let config = churn::ChurnConfig {
                url,
                connections,
                streams,
                pattern,
                sources,
                concurrency,
                rounds,
                hold: Duration::from_secs_f64(hold),
            };
            let summary = churn::run(&config).await?;
            println!("{}", serde_json::to_string(&summary).context("summary")?);
        }
        Command::Idle {
            url,
            connections,
            sources,
            hold,
        } => {
            let config = idle::IdleConfig {
                url,
                connections,
                sources,
                hold: Duration::from_secs_f64(hold),
                progress: connections >= 5000,
            };
            let summary = idle::run(&config).await?;
            eprintln!(
                "held {} of {connections} connections ({} failed)",
                summary.held, summary.failed
            );
            if let Some(error) = &summary.first_error {
                eprintln!("first failure: {error}");
            }
            println!("{}", serde_json::to_string(&summary).context("summary")?);
        }
        Command::Fanout {
            url,
            clients,
            rounds,
            in_flight,
            stream,
            room,
            sources,
            timeout,
            server_pid,
        } => {
            let config = fanout::FanoutConfig {
                url,
                clients,
                rounds,
                in_flight,
                stream,
                room,
                sources,
                timeout: Duration::from_secs_f64(timeout),
                server_pid,
                progress: clients >= 5000,
            };
            let summary = fanout::run(&config).await?;
            let cpu = summary
                .server_cpu_us_per_delivery
                .map_or(String::new(), |us| {
                    format!("; server CPU {us:.3} µs per delivery")
                });
            eprintln!(
                "{clients} members, {rounds} rounds, {in_flight} in flight: last delivery p50 {:.2} ms p99 {:.2} max {:.2}; {:.2} µs per recipient; {:.0} deliveries/s{cpu}; reordered {}",
                summary.p50_ms,
                summary.p99_ms,
                summary.max_ms,
                summary.per_recipient_us,
                summary.deliveries_per_sec,
                summary.reordered,
            );
            println!("{}", serde_json::to_string(&summary).context("summary")?);
            // Out-of-order rounds are a broken server, like a wrong echo.
            if summary.reordered > 0 {
                std::process::exit(2);
            }
        }
        Command::Chaos {
            url,
            duration,
            workers,
            seed,
            settle,
            max_hold,
            server_pid,
            rss_slack_mib,
            stats_url,
        } => {
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
            eprintln!("chaos: seed {seed} ({workers} workers, {duration} s against {url})");
            let config = chaos::ChaosConfig {
                workers,
                duration: Duration::from_secs_f64(duration),
                settle: Duration::from_secs_f64(settle),
                max_hold: Duration::from_secs_f64(max_hold),
                server_pid,
                rss_slack_mib,
                stats_url,
                progress: duration >= 30.0,
                ..chaos::ChaosConfig::new(url, seed)
            };
            let summary = chaos::run(&config).await?;
            eprint!("{}", summary.render());
            println!("{}", serde_json::to_string(&summary).context("summary")?);
            if !summary.is_clean() {
                std::process::exit(2);
            }
        }
    }
    Ok(())
}
