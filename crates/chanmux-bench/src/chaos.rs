//! Chaos: many actors misbehaving at once for a while, then checks that the
//! server is still healthy and holds nothing it should have let go.
//!
//! Each of `workers` actors repeatedly picks a [`Scenario`] with a small
//! seeded xorshift RNG ([`Rng`]) and runs it against the server: clean
//! closes, TCP resets, half-open sockets, verified echoes, invalid frames,
//! floods, clients that stop reading, chat rooms, and the streams that close
//! or never accept. Every scenario and its outcome is counted; anything the
//! documented protocol does not allow is counted as *unexpected*, with a
//! short sample. Refusals a hardened server may answer with (HTTP 403/429/503,
//! the error code `rate_limited`, close codes 1008/1009/1013) are counted by
//! kind, not as failures.
//!
//! After the run and a settle time, [`run`] checks that an echo still comes
//! back promptly, that the server's RSS (from `/proc/PID/status`) has not
//! grown beyond a slack, and that its stats endpoint (the demo's `--stats`)
//! reports no connection, channel, group or membership left.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Client = WebSocketStream<TcpStream>;

/// How long a TCP connect or a WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The echo after the settle time must come back within this.
const PROMPT_ECHO: Duration = Duration::from_millis(100);
/// Samples of unexpected results kept per scenario.
const SAMPLES: usize = 5;
/// Longest sample kept, in characters.
const SAMPLE_LEN: usize = 240;
/// Size of the oversized frame: over the demo's 1 MiB frame limit, under
/// its 8 MiB message limit.
const OVERSIZED: usize = 1536 * 1024;

/// What to run and what to check.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// `ws://<ip>:<port>/path` of a server with the demo's streams.
    pub url: String,
    /// Concurrent actors.
    pub workers: usize,
    /// How long actors keep starting scenarios (the last ones then finish).
    pub duration: Duration,
    /// Seed of every actor's RNG (actor `i` mixes in `i`).
    pub seed: u64,
    /// Wait after the last actor finished, before the checks.
    pub settle: Duration,
    /// Longest a half-open socket or a client that stopped reading is held
    /// (more than the server's slow-client timeout, 10 s, lets it act).
    pub max_hold: Duration,
    /// How long a reply the protocol promises may take.
    pub reply_timeout: Duration,
    /// The server's process, to compare its RSS before and after.
    pub server_pid: Option<u32>,
    /// How much the RSS may grow, in MiB.
    pub rss_slack_mib: u64,
    /// `http://<ip>:<port>/stats`, the demo's `--stats` endpoint.
    pub stats_url: Option<String>,
    /// Print a progress line to stderr every 30 s.
    pub progress: bool,
}

impl ChaosConfig {
    /// The defaults of `chanmux-load chaos` against `url`, with `seed`.
    pub fn new(url: impl Into<String>, seed: u64) -> Self {
        ChaosConfig {
            url: url.into(),
            workers: 32,
            duration: Duration::from_secs(600),
            seed,
            settle: Duration::from_secs(5),
            max_hold: Duration::from_secs(12),
            reply_timeout: Duration::from_secs(10),
            server_pid: None,
            rss_slack_mib: 32,
            stats_url: None,
            progress: false,
        }
    }
}

/// What an actor does in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Open, maybe echo once, close with 1000 and wait for the server's close.
    CleanClose,
    /// Drop the TCP socket with a reset (SO_LINGER 0), after the handshake
    /// (maybe after joining a room) or in the middle of it.
    Reset,
    /// Stop reading and writing, hold the socket a while, then drop it.
    HalfOpen,
    /// Send echo frames (random JSON, two streams, a few in flight) and check
    /// every reply exactly.
    Echo,
    /// Send invalid frames and expect the documented error frame for each,
    /// then a working echo.
    Invalid,
    /// Send hundreds of frames without reading; then read every answer
    /// (echo or `stream_overloaded`) or drop the socket.
    Flood,
    /// Make the server send large echoes and never read them; drop the
    /// socket after a while, or read what is left after the hold.
    SlowReader,
    /// Join a chat room, send to it and get one's own messages back, then
    /// leave or drop while joined.
    Chat,
    /// `closeafterfirst` (echoes once, then refuses) and `neveraccept`
    /// (always refuses), with the other streams still working.
    ClosingStreams,
}

impl Scenario {
    /// Every scenario, in the order actors first pick them.
    pub const ALL: [Scenario; 9] = [
        Scenario::CleanClose,
        Scenario::Reset,
        Scenario::HalfOpen,
        Scenario::Echo,
        Scenario::Invalid,
        Scenario::Flood,
        Scenario::SlowReader,
        Scenario::Chat,
        Scenario::ClosingStreams,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::CleanClose => "clean_close",
            Scenario::Reset => "reset",
            Scenario::HalfOpen => "half_open",
            Scenario::Echo => "echo",
            Scenario::Invalid => "invalid",
            Scenario::Flood => "flood",
            Scenario::SlowReader => "slow_reader",
            Scenario::Chat => "chat",
            Scenario::ClosingStreams => "closing_streams",
        }
    }
}

/// The counts of one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioTally {
    /// Times it was started.
    pub started: u64,
    /// Times it ended as the protocol says.
    pub completed: u64,
    /// Times the server refused in a tolerated way (by kind in `outcomes`).
    pub refused: u64,
    /// Times something happened that the protocol does not allow
    /// (a wrong or missing reply, a timeout, an unexpected close).
    pub unexpected: u64,
    /// Replies the server owed and never sent.
    pub lost: u64,
    /// How the runs ended, by kind ("ok: …", "refused: …", "unexpected").
    pub outcomes: BTreeMap<String, u64>,
    /// The first few unexpected results.
    pub samples: Vec<String>,
}

/// The outcome of [`run`], printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosSummary {
    /// The RNG seed (rerun with it to pick the same scenarios).
    pub seed: u64,
    /// Concurrent actors.
    pub workers: usize,
    /// Seconds from the first scenario to the last actor's end.
    pub seconds: f64,
    /// Counts per scenario, by name.
    pub scenarios: BTreeMap<String, ScenarioTally>,
    /// Tolerated refusals over all scenarios, by kind (`http_429`,
    /// `rate_limited`, `close_1013`, …).
    pub refusals: BTreeMap<String, u64>,
    /// Unexpected results over all scenarios.
    pub unexpected: u64,
    /// Replies lost over all scenarios.
    pub lost: u64,
    /// Round trip of one echo on a fresh connection after the settle time.
    pub echo_after_ms: Option<f64>,
    /// The server's VmRSS at the start, KiB.
    pub rss_start_kib: Option<u64>,
    /// The server's VmRSS after the settle time, KiB.
    pub rss_end_kib: Option<u64>,
    /// The stats endpoint's answer after the settle time.
    pub stats: Option<serde_json::Value>,
    /// Every failed check, in words; empty when the run passed.
    pub failures: Vec<String>,
}

impl ChaosSummary {
    /// Whether every check passed and nothing was unexpected or lost.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty()
    }

    /// The human summary: a table of scenarios, samples, refusals and checks.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chaos: seed {}, {} workers, {:.1} s",
            self.seed, self.workers, self.seconds
        );
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>9} {:>8} {:>10} {:>6}",
            "scenario", "started", "completed", "refused", "unexpected", "lost"
        );
        for (name, t) in &self.scenarios {
            let _ = writeln!(
                out,
                "{name:<16} {:>8} {:>9} {:>8} {:>10} {:>6}",
                t.started, t.completed, t.refused, t.unexpected, t.lost
            );
        }
        let _ = writeln!(out, "outcomes:");
        for (name, t) in &self.scenarios {
            let outcomes: Vec<String> = t
                .outcomes
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            let _ = writeln!(out, "  {name}: {}", outcomes.join("; "));
        }
        for (name, t) in &self.scenarios {
            for sample in &t.samples {
                let _ = writeln!(out, "  unexpected in {name}: {sample}");
            }
        }
        if self.refusals.is_empty() {
            let _ = writeln!(out, "refusals: none");
        } else {
            let kinds: Vec<String> = self
                .refusals
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            let _ = writeln!(out, "refusals: {}", kinds.join(", "));
        }
        match self.echo_after_ms {
            Some(ms) => {
                let _ = writeln!(out, "echo after settle: {ms:.3} ms");
            }
            None => {
                let _ = writeln!(out, "echo after settle: no answer");
            }
        }
        if let (Some(start), Some(end)) = (self.rss_start_kib, self.rss_end_kib) {
            let _ = writeln!(
                out,
                "server RSS: start {:.1} MiB, end {:.1} MiB",
                start as f64 / 1024.0,
                end as f64 / 1024.0
            );
        }
        if let Some(stats) = &self.stats {
            let _ = writeln!(out, "server stats: {stats}");
        }
        if self.failures.is_empty() {
            let _ = writeln!(out, "PASS");
        } else {
            for failure in &self.failures {
                let _ = writeln!(out, "FAIL: {failure}");
            }
        }
        out
    }
}

/// A small xorshift64* generator: deterministic for a seed, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        // One splitmix64 step spreads nearby seeds apart; the state must not be 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration in `0..=max`, in milliseconds.
    fn duration(&mut self, max: Duration) -> Duration {
        Duration::from_millis(self.range(0, max.as_millis() as u64))
    }
}

/// Why a scenario did not end as the protocol says.
#[derive(Debug)]
enum Problem {
    /// A tolerated refusal, by kind.
    Refused(String),
    /// Anything else.
    Unexpected(String),
}

type Outcome = Result<&'static str, Problem>;

fn unexpected<T>(what: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Unexpected(what.into()))
}

/// A received text frame, read without trusting it.
#[derive(Debug)]
enum Frame {
    /// `{"stream", "payload"}`; the payload's exact text.
    Data { stream: String, payload: String },
    /// `{"error": {"code", …}, "stream"}`.
    Error {
        code: String,
        stream: Option<String>,
    },
}

#[derive(Deserialize)]
struct WireFrame<'a> {
    #[serde(default)]
    stream: Option<String>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireError {
    code: String,
}

fn parse_frame(text: &str) -> Result<Frame, Problem> {
    let wire: WireFrame<'_> = serde_json::from_str(text)
        .map_err(|e| Problem::Unexpected(format!("unparsable frame ({e}): {}", clip(text))))?;
    match wire {
        WireFrame {
            error: Some(error),
            stream,
            ..
        } => Ok(Frame::Error {
            code: error.code,
            stream,
        }),
        WireFrame {
            stream: Some(stream),
            payload,
            ..
        } => Ok(Frame::Data {
            stream,
            // A `null` payload reads as None.
            payload: payload.map_or_else(|| "null".to_owned(), |p| p.get().to_owned()),
        }),
        _ => unexpected(format!("frame is neither data nor error: {}", clip(text))),
    }
}

fn clip(text: &str) -> String {
    if text.chars().count() <= SAMPLE_LEN {
        text.to_owned()
    } else {
        let head: String = text.chars().take(SAMPLE_LEN).collect();
        format!("{head}… ({} bytes)", text.len())
    }
}

fn close_problem(close: Option<&CloseFrame>) -> Problem {
    match close {
        Some(frame) => {
            let code = u16::from(frame.code);
            if matches!(code, 1008 | 1009 | 1013) {
                Problem::Refused(format!("close_{code}"))
            } else {
                Problem::Unexpected(format!("closed with {code} {:?}", frame.reason.as_str()))
            }
        }
        None => Problem::Unexpected("closed without a code".to_owned()),
    }
}

/// The next text frame, skipping pings and pongs.
async fn next_frame(ws: &mut Client, wait: Duration) -> Result<Frame, Problem> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return unexpected(format!("no frame within {wait:?}")),
            Ok(None) => return unexpected("connection ended without a close frame"),
            Ok(Some(Err(e))) => return unexpected(format!("read failed: {e}")),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                let frame = parse_frame(&text)?;
                if let Frame::Error { code, .. } = &frame
                    && code == "rate_limited"
                {
                    return Err(Problem::Refused("rate_limited".to_owned()));
                }
                return Ok(frame);
            }
            Message::Close(close) => return Err(close_problem(close.as_ref())),
            Message::Binary(bytes) => {
                return unexpected(format!("binary frame of {} bytes", bytes.len()));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Sends `message`, within `wait`.
async fn send(ws: &mut Client, message: Message, wait: Duration) -> Result<(), Problem> {
    match timeout(wait, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => send_failed(ws, e, wait).await,
        Err(_) => unexpected(format!("a send stayed stuck for {wait:?}")),
    }
}

/// A failed send: the reason the server gave, if it closed first.
async fn send_failed<T>(ws: &mut Client, error: WsError, wait: Duration) -> Result<T, Problem> {
    // A close frame from the server may be waiting to be read.
    match next_frame(ws, wait.min(Duration::from_secs(1))).await {
        Err(Problem::Refused(kind)) => Err(Problem::Refused(kind)),
        _ => unexpected(format!("send failed: {error}")),
    }
}

/// Sends a text frame.
async fn send_text(ws: &mut Client, text: String, wait: Duration) -> Result<(), Problem> {
    send(ws, Message::text(text), wait).await
}

/// `{"stream": stream, "payload": payload}` (payload is JSON text).
fn frame(stream: &str, payload: &str) -> String {
    format!(r#"{{"stream":"{stream}","payload":{payload}}}"#)
}

/// Closes with 1000 and waits for the server's close (or the end of the stream).
async fn close_cleanly(ws: &mut Client, wait: Duration) -> Outcome {
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    match timeout(wait, ws.close(Some(close))).await {
        Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {}
        Ok(Err(e)) => return unexpected(format!("sending the close failed: {e}")),
        Err(_) => return unexpected("sending the close stayed stuck"),
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return unexpected(format!("no close from the server within {wait:?}")),
            Ok(None) | Ok(Some(Err(WsError::ConnectionClosed))) => return Ok("closed"),
            Ok(Some(Err(e))) => return unexpected(format!("closing failed: {e}")),
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return match u16::from(frame.code) {
                    1000 => Ok("closed"),
                    _ => Err(close_problem(Some(&frame))),
                };
            }
            Ok(Some(Ok(Message::Close(None)))) => return Ok("closed"),
            // Frames already on their way before the close.
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Drops the socket: with a TCP reset when `reset`, else with a FIN.
fn drop_socket(ws: Client, reset: bool) {
    if reset {
        let _ = ws.get_ref().set_zero_linger();
    }
    drop(ws);
}

/// Random JSON text: numbers, strings with escapes and non-ASCII, nesting.
fn random_json(rng: &mut Rng, depth: u32) -> String {
    let pick = if depth >= 3 {
        rng.below(4)
    } else {
        rng.below(7)
    };
    match pick {
        0 => (rng.next_u64() as i64 >> rng.below(60)).to_string(),
        1 => ["1e3", "-0.5", "0", "3.141592653589793", "1E-7", "-0"][rng.below(6) as usize]
            .to_owned(),
        2 => {
            const CHARS: [&str; 10] = ["a", "Z", " ", "\"", "\\", "\n", "é", "€", "😀", "\u{1}"];
            let text: String = (0..rng.below(24))
                .map(|_| CHARS[rng.below(CHARS.len() as u64) as usize])
                .collect();
            serde_json::Value::String(text).to_string()
        }
        3 => ["true", "false", r#""""#, "[]", "{}"][rng.below(5) as usize].to_owned(),
        4 => {
            let items: Vec<String> = (0..rng.below(5))
                .map(|_| random_json(rng, depth + 1))
                .collect();
            // Inner whitespace must come back as sent.
            format!("[{}]", items.join(if rng.chance(50) { "," } else { " , " }))
        }
        5 => {
            let fields: Vec<String> = (0..rng.below(5))
                .map(|i| format!(r#""k{i}":{}"#, random_json(rng, depth + 1)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        _ => {
            let len = rng.range(1, 16 * 1024) as usize;
            format!("\"{}\"", "x".repeat(len))
        }
    }
}

/// One actor: its RNG, where to connect and its share of the counts.
struct Actor {
    id: usize,
    rng: Rng,
    config: Arc<ChaosConfig>,
    target: SocketAddr,
    /// Replies lost in the scenario running now.
    lost: u64,
    /// Runs so far, to make chat tokens unique.
    runs: u64,
}

impl Actor {
    async fn connect(&mut self) -> Result<Client, Problem> {
        let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(self.target)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return unexpected(format!("TCP connect failed: {e}")),
            Err(_) => return unexpected("TCP connect timed out"),
        };
        let _ = stream.set_nodelay(true);
        match timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::client_async(self.config.url.as_str(), stream),
        )
        .await
        {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(WsError::Http(response))) => match response.status().as_u16() {
                code @ (403 | 429 | 503) => Err(Problem::Refused(format!("http_{code}"))),
                code => unexpected(format!("handshake answered HTTP {code}")),
            },
            Ok(Err(e)) => unexpected(format!("handshake failed: {e}")),
            Err(_) => unexpected("handshake timed out"),
        }
    }

    fn wait(&self) -> Duration {
        self.config.reply_timeout
    }

    async fn run(&mut self, scenario: Scenario) -> Outcome {
        self.lost = 0;
        self.runs += 1;
        match scenario {
            Scenario::CleanClose => self.clean_close().await,
            Scenario::Reset => self.reset().await,
            Scenario::HalfOpen => self.half_open().await,
            Scenario::Echo => self.echo().await,
            Scenario::Invalid => self.invalid().await,
            Scenario::Flood => self.flood().await,
            Scenario::SlowReader => self.slow_reader().await,
            Scenario::Chat => self.chat().await,
            Scenario::ClosingStreams => self.closing_streams().await,
        }
    }

    /// Sends one echo and checks it comes back exactly.
    async fn echo_once(&mut self, ws: &mut Client, stream: &str) -> Result<(), Problem> {
        let payload = random_json(&mut self.rng, 0);
        send_text(ws, frame(stream, &payload), self.wait()).await?;
        match next_frame(ws, self.wait()).await {
            Ok(Frame::Data {
                stream: s,
                payload: p,
            }) if s == stream && p == payload => Ok(()),
            Ok(other) => unexpected(format!(
                "echo of {} on {stream}: got {other:?}",
                clip(&payload)
            )),
            Err(e) => {
                if matches!(e, Problem::Unexpected(_)) {
                    self.lost += 1;
                }
                Err(e)
            }
        }
    }

    async fn clean_close(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        if self.rng.chance(50) {
            self.echo_once(&mut ws, "echostream").await?;
        }
        close_cleanly(&mut ws, self.wait()).await
    }

    async fn reset(&mut self) -> Outcome {
        match self.rng.below(3) {
            0 => {
                // In the middle of the handshake: part of the upgrade request.
                let mut tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(self.target)).await
                {
                    Ok(Ok(tcp)) => tcp,
                    Ok(Err(e)) => return unexpected(format!("TCP connect failed: {e}")),
                    Err(_) => return unexpected("TCP connect timed out"),
                };
                let path = self
                    .config
                    .url
                    .strip_prefix("ws://")
                    .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
                    .unwrap_or("/");
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    self.target
                );
                let cut = self.rng.range(0, request.len() as u64 - 1) as usize;
                let _ = timeout(self.wait(), tcp.write_all(&request.as_bytes()[..cut])).await;
                let _ = tcp.set_zero_linger();
                drop(tcp);
                Ok("reset mid-handshake")
            }
            1 => {
                let mut ws = self.connect().await?;
                self.join(&mut ws, "chaos-reset").await?;
                drop_socket(ws, true);
                Ok("reset while in a room")
            }
            _ => {
                let mut ws = self.connect().await?;
                for _ in 0..self.rng.below(4) {
                    let payload = random_json(&mut self.rng, 0);
                    send_text(&mut ws, frame("echostream", &payload), self.wait()).await?;
                }
                drop_socket(ws, true);
                Ok("reset after the handshake")
            }
        }
    }

    async fn half_open(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        if self.rng.chance(30) {
            self.join(&mut ws, "chaos-halfopen").await?;
        }
        if self.rng.chance(50) {
            // One echo the server will answer into a socket nobody reads.
            send_text(&mut ws, frame("echostream", "[1,2,3]"), self.wait()).await?;
        }
        tokio::time::sleep(self.rng.duration(self.config.max_hold)).await;
        let reset = self.rng.chance(50);
        drop_socket(ws, reset);
        Ok(if reset {
            "held, then reset"
        } else {
            "held, then dropped"
        })
    }

    async fn echo(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        let total = self.rng.range(1, 40);
        let window = self.rng.range(1, 8);
        let mut sent = 0;
        let mut expected: HashMap<&'static str, VecDeque<String>> = HashMap::new();
        let mut in_flight = 0;
        while sent < total || in_flight > 0 {
            if sent < total && in_flight < window {
                let stream = if self.rng.chance(70) {
                    "echostream"
                } else {
                    "altechostream"
                };
                let payload = random_json(&mut self.rng, 0);
                send_text(&mut ws, frame(stream, &payload), self.wait()).await?;
                expected.entry(stream).or_default().push_back(payload);
                sent += 1;
                in_flight += 1;
                continue;
            }
            let reply = match next_frame(&mut ws, self.wait()).await {
                Ok(reply) => reply,
                Err(e) => {
                    if matches!(e, Problem::Unexpected(_)) {
                        self.lost += in_flight;
                    }
                    return Err(e);
                }
            };
            in_flight -= 1;
            let Frame::Data { stream, payload } = reply else {
                return unexpected(format!("echo answered by {reply:?}"));
            };
            let Some(want) = expected
                .get_mut(stream.as_str())
                .and_then(VecDeque::pop_front)
            else {
                return unexpected(format!("reply on {stream:?} with nothing sent there"));
            };
            let right = if stream == "altechostream" {
                let exact = format!(r#"{{"received":{want},"alt_value":123}}"#);
                payload == exact || same_json(&payload, &exact)
            } else {
                payload == want
            };
            if !right {
                return unexpected(format!(
                    "{stream} sent {} and got back {}",
                    clip(&want),
                    clip(&payload)
                ));
            }
        }
        close_cleanly(&mut ws, self.wait()).await?;
        Ok("all verified")
    }

    async fn invalid(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        for _ in 0..self.rng.range(1, 4) {
            let (message, code, stream): (Message, &str, Option<String>) = match self.rng.below(7) {
                0 => {
                    let text = [
                        r#"{"stream":"echostream","payload":"#,
                        r#"{"stream":"echostream","payload":NaN}"#,
                        r#"{"stream":"echostream","payload":1} trailing"#,
                        "{not json",
                        "",
                    ][self.rng.below(5) as usize];
                    (Message::text(text), "invalid_json", None)
                }
                1 => {
                    let text = ["[1,2]", r#""echostream""#, "42", "null", "true"]
                        [self.rng.below(5) as usize];
                    (Message::text(text), "not_an_object", None)
                }
                2 => {
                    let text = [r#"{"payload":1}"#, r#"{"stream":5,"payload":1}"#]
                        [self.rng.below(2) as usize];
                    (Message::text(text), "missing_stream", None)
                }
                3 => (
                    Message::text(r#"{"stream":"echostream"}"#),
                    "missing_payload",
                    Some("echostream".to_owned()),
                ),
                4 => {
                    let name = format!("nope{}", self.rng.below(1000));
                    (
                        Message::text(frame(&name, "1")),
                        "unknown_stream",
                        Some(name),
                    )
                }
                5 => {
                    let bytes: Vec<u8> = (0..self.rng.range(0, 64))
                        .map(|_| self.rng.next_u64() as u8)
                        .collect();
                    (Message::binary(bytes), "binary_not_supported", None)
                }
                _ => {
                    let text = frame("echostream", &format!("\"{}\"", "x".repeat(OVERSIZED)));
                    (Message::text(text), "frame_too_large", None)
                }
            };
            send(&mut ws, message, self.wait()).await?;
            match next_frame(&mut ws, self.wait()).await? {
                Frame::Error {
                    code: got,
                    stream: got_stream,
                } if got == code && (stream.is_none() || stream == got_stream) => {}
                other => {
                    return unexpected(format!(
                        "expected error {code} (stream {stream:?}), got {other:?}"
                    ));
                }
            }
        }
        // The connection and its streams go on.
        self.echo_once(&mut ws, "echostream").await?;
        close_cleanly(&mut ws, self.wait()).await?;
        Ok("every error frame right, echo after")
    }

    async fn flood(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        let total = self.rng.range(100, 2000);
        let sending = async {
            for i in 0..total {
                ws.feed(Message::text(frame(
                    "echostream",
                    &format!(r#"{{"n":{i}}}"#),
                )))
                .await?;
            }
            ws.flush().await
        };
        match timeout(self.wait() * 2, sending).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return send_failed(&mut ws, e, self.wait()).await,
            Err(_) => return unexpected(format!("sending {total} frames stayed stuck")),
        }
        if self.rng.chance(40) {
            let reset = self.rng.chance(50);
            drop_socket(ws, reset);
            return Ok("sent, dropped unread");
        }
        let mut answered = 0;
        let mut overloaded = 0;
        let mut next = 0;
        while answered < total {
            match next_frame(&mut ws, self.wait()).await {
                Ok(Frame::Data { stream, payload }) if stream == "echostream" => {
                    let n: Option<u64> = serde_json::from_str::<serde_json::Value>(&payload)
                        .ok()
                        .and_then(|v| v["n"].as_u64());
                    match n {
                        Some(n) if n >= next && n < total => next = n + 1,
                        _ => {
                            return unexpected(format!(
                                "flood echo out of order or wrong: {} after n={next}",
                                clip(&payload)
                            ));
                        }
                    }
                }
                Ok(Frame::Error { code, .. }) if code == "stream_overloaded" => overloaded += 1,
                Ok(other) => return unexpected(format!("flood answered by {other:?}")),
                Err(e) => {
                    if matches!(e, Problem::Unexpected(_)) {
                        self.lost += total - answered;
                    }
                    return Err(e);
                }
            }
            answered += 1;
        }
        close_cleanly(&mut ws, self.wait()).await?;
        Ok(if overloaded > 0 {
            "every frame answered, some stream_overloaded"
        } else {
            "every frame echoed"
        })
    }

    async fn slow_reader(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        let count = self.rng.range(8, 32);
        let size = self.rng.range(64, 512) as usize * 1024;
        let payload = format!("\"{}\"", "y".repeat(size));
        let hold = self.rng.duration(self.config.max_hold);
        // The server stops reading once its writes back up: sending may block.
        let sending = async {
            for _ in 0..count {
                ws.send(Message::text(frame("echostream", &payload)))
                    .await?;
            }
            Ok::<(), WsError>(())
        };
        let blocked = match timeout(hold + Duration::from_secs(1), sending).await {
            Ok(Ok(())) => false,
            Ok(Err(_)) => true,
            Err(_) => true,
        };
        tokio::time::sleep(hold).await;
        if blocked || self.rng.chance(60) {
            let reset = self.rng.chance(50);
            drop_socket(ws, reset);
            return Ok(if blocked {
                "sends blocked, dropped"
            } else {
                "never read, dropped"
            });
        }
        // Read back what the server still has for us: an answer to every
        // frame (its echo, or `stream_overloaded` when the stream's queue,
        // bounded in frames and in bytes, was full), or its documented 1013
        // "slow client" close if the hold outlasted it.
        let mut read = 0;
        let mut overloaded = 0;
        while read < count {
            match next_frame(&mut ws, self.wait()).await {
                Ok(Frame::Data { stream, payload: p })
                    if stream == "echostream" && p == payload =>
                {
                    read += 1;
                }
                Ok(Frame::Error { code, stream })
                    if code == "stream_overloaded" && stream.as_deref() == Some("echostream") =>
                {
                    read += 1;
                    overloaded += 1;
                }
                Ok(other) => return unexpected(format!("slow reader got {other:?}")),
                Err(Problem::Refused(kind)) if kind == "close_1013" => {
                    return Ok("read back, server had closed with 1013");
                }
                Err(Problem::Unexpected(e))
                    if e.contains("reset") || e.contains("without a close") =>
                {
                    // The server may give up without a close frame when even
                    // the close cannot be written.
                    return Ok("read back, server had dropped us");
                }
                Err(e) => {
                    if matches!(e, Problem::Unexpected(_)) {
                        self.lost += count - read;
                    }
                    return Err(e);
                }
            }
        }
        close_cleanly(&mut ws, self.wait()).await?;
        Ok(if overloaded > 0 {
            "read back every answer, some stream_overloaded"
        } else {
            "read back every echo"
        })
    }

    /// Joins `room` on `chat` and waits for `{"joined": room}`.
    async fn join(&mut self, ws: &mut Client, room: &str) -> Result<(), Problem> {
        let request = serde_json::json!({"join": room}).to_string();
        send_text(ws, frame("chat", &request), self.wait()).await?;
        let want = serde_json::json!({"joined": room});
        self.chat_reply(ws, &want).await
    }

    /// Waits for the chat reply `want`, skipping room messages.
    async fn chat_reply(
        &mut self,
        ws: &mut Client,
        want: &serde_json::Value,
    ) -> Result<(), Problem> {
        loop {
            match next_frame(ws, self.wait()).await {
                Ok(Frame::Data { stream, payload }) if stream == "chat" => {
                    let value: serde_json::Value = serde_json::from_str(&payload)
                        .map_err(|e| Problem::Unexpected(format!("chat sent bad JSON: {e}")))?;
                    if &value == want {
                        return Ok(());
                    }
                    if value.get("room").is_none() {
                        return unexpected(format!(
                            "chat: expected {want}, got {}",
                            clip(&payload)
                        ));
                    }
                }
                Ok(other) => return unexpected(format!("chat: expected {want}, got {other:?}")),
                Err(e) => {
                    if matches!(e, Problem::Unexpected(_)) {
                        self.lost += 1;
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn chat(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        if self.rng.chance(20) {
            // A room name the group rules refuse: answered on the stream.
            send_text(
                &mut ws,
                frame("chat", r#"{"join":"no spaces allowed"}"#),
                self.wait(),
            )
            .await?;
            match next_frame(&mut ws, self.wait()).await? {
                Frame::Data { stream, payload }
                    if stream == "chat" && payload.contains("\"error\"") => {}
                other => return unexpected(format!("bad room name answered by {other:?}")),
            }
        }
        let room = format!("chaos{}", self.rng.below(6));
        self.join(&mut ws, &room).await?;
        for seq in 0..self.rng.range(1, 5) {
            let token = format!("{}-{}-{seq}", self.id, self.runs);
            let said = serde_json::json!({"room": room, "message": {"token": token}});
            send_text(&mut ws, frame("chat", &said.to_string()), self.wait()).await?;
            // Every member gets it, the sender too; others' messages pass by.
            self.chat_reply(&mut ws, &said).await?;
        }
        if self.rng.chance(50) {
            let reset = self.rng.chance(50);
            drop_socket(ws, reset);
            return Ok("own messages back, dropped while joined");
        }
        let request = serde_json::json!({"leave": room}).to_string();
        send_text(&mut ws, frame("chat", &request), self.wait()).await?;
        self.chat_reply(&mut ws, &serde_json::json!({"left": room}))
            .await?;
        close_cleanly(&mut ws, self.wait()).await?;
        Ok("own messages back, left, closed")
    }

    async fn closing_streams(&mut self) -> Outcome {
        let mut ws = self.connect().await?;
        let payload = random_json(&mut self.rng, 0);
        let back_to_back = self.rng.chance(50);
        send_text(&mut ws, frame("closeafterfirst", &payload), self.wait()).await?;
        if back_to_back {
            // Queued behind the first: refused once the stream has closed.
            send_text(&mut ws, frame("closeafterfirst", "2"), self.wait()).await?;
        }
        match next_frame(&mut ws, self.wait()).await? {
            Frame::Data { stream, payload: p } if stream == "closeafterfirst" && p == payload => {}
            other => return unexpected(format!("closeafterfirst's one echo: got {other:?}")),
        }
        if !back_to_back {
            send_text(&mut ws, frame("closeafterfirst", "2"), self.wait()).await?;
        }
        self.expect_not_accepting(&mut ws, "closeafterfirst")
            .await?;
        send_text(&mut ws, frame("neveraccept", "3"), self.wait()).await?;
        self.expect_not_accepting(&mut ws, "neveraccept").await?;
        self.echo_once(&mut ws, "echostream").await?;
        close_cleanly(&mut ws, self.wait()).await?;
        Ok("refused as documented, echo after")
    }

    async fn expect_not_accepting(&mut self, ws: &mut Client, name: &str) -> Result<(), Problem> {
        match next_frame(ws, self.wait()).await? {
            Frame::Error { code, stream }
                if code == "stream_not_accepting" && stream.as_deref() == Some(name) =>
            {
                Ok(())
            }
            other => unexpected(format!(
                "{name}: expected stream_not_accepting, got {other:?}"
            )),
        }
    }
}

fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

type Tallies = Arc<Mutex<BTreeMap<Scenario, ScenarioTally>>>;

fn record(
    tallies: &Tallies,
    scenario: Scenario,
    result: Result<Outcome, tokio::time::error::Elapsed>,
    lost: u64,
) {
    let mut tallies = tallies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tally = tallies.entry(scenario).or_default();
    tally.lost += lost;
    let label = match result {
        Ok(Ok(label)) => {
            tally.completed += 1;
            format!("ok: {label}")
        }
        Ok(Err(Problem::Refused(kind))) => {
            tally.refused += 1;
            format!("refused: {kind}")
        }
        Ok(Err(Problem::Unexpected(what))) => {
            tally.unexpected += 1;
            if tally.samples.len() < SAMPLES {
                tally.samples.push(clip(&what));
            }
            "unexpected".to_owned()
        }
        Err(_) => {
            tally.unexpected += 1;
            if tally.samples.len() < SAMPLES {
                tally
                    .samples
                    .push("the scenario overran its time limit".to_owned());
            }
            "unexpected".to_owned()
        }
    };
    *tally.outcomes.entry(label).or_default() += 1;
}

/// Runs the actors for the configured time, settles, checks, and reports.
///
/// # Errors
///
/// When the URL is not `ws://<ip>:<port>/...` or the stats URL not
/// `http://<ip>:<port>/...`. Failed checks are in the summary, not errors.
pub async fn run(config: &ChaosConfig) -> anyhow::Result<ChaosSummary> {
    let target = crate::idle::target(&config.url)?;
    let stats_target = config.stats_url.as_deref().map(http_target).transpose()?;
    let rss_start_kib = config.server_pid.and_then(rss_kib);
    let config = Arc::new(config.clone());
    let tallies: Tallies = Arc::default();
    for scenario in Scenario::ALL {
        tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(scenario, ScenarioTally::default());
    }
    let started = Instant::now();
    let deadline = started + config.duration;
    // A scenario's own waits are bounded; this bounds the whole of one.
    let limit = config.max_hold * 2 + config.reply_timeout * 4 + Duration::from_secs(10);
    let progress = config.progress.then(|| {
        let tallies = tallies.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let tallies = tallies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let started_runs: u64 = tallies.values().map(|t| t.started).sum();
                let unexpected: u64 = tallies.values().map(|t| t.unexpected).sum();
                eprintln!(
                    "  … {:.0} s: {started_runs} scenarios started, {unexpected} unexpected",
                    started.elapsed().as_secs_f64()
                );
            }
        })
    });
    let actors: Vec<_> = (0..config.workers)
        .map(|id| {
            let mut actor = Actor {
                id,
                rng: Rng::new(config.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                config: config.clone(),
                target,
                lost: 0,
                runs: 0,
            };
            let tallies = tallies.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    // Each actor starts with a different scenario, so a short
                    // run with at least nine actors runs every one.
                    let scenario = if actor.runs == 0 {
                        Scenario::ALL[id % Scenario::ALL.len()]
                    } else {
                        Scenario::ALL[actor.rng.below(Scenario::ALL.len() as u64) as usize]
                    };
                    tallies
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(scenario)
                        .or_default()
                        .started += 1;
                    let result = timeout(limit, actor.run(scenario)).await;
                    let failed_to_connect = matches!(
                        &result,
                        Ok(Err(Problem::Unexpected(e))) if e.starts_with("TCP connect")
                    );
                    record(&tallies, scenario, result, actor.lost);
                    if failed_to_connect {
                        // The server is gone or full: do not spin.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect();
    for actor in actors {
        if let Err(e) = actor.await {
            // A panic in an actor is a bug here, not in the server.
            anyhow::bail!("an actor panicked: {e}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(progress) = progress {
        progress.abort();
    }
    tokio::time::sleep(config.settle).await;

    let mut failures = Vec::new();
    let echo_after_ms = match prompt_echo(&config, target).await {
        Ok(rtt) => {
            if rtt > PROMPT_ECHO {
                failures.push(format!(
                    "the echo after the settle time took {:.1} ms (limit {PROMPT_ECHO:?})",
                    rtt.as_secs_f64() * 1e3
                ));
            }
            Some(rtt.as_secs_f64() * 1e3)
        }
        Err(e) => {
            failures.push(format!("the echo after the settle time failed: {e}"));
            None
        }
    };
    let rss_end_kib = config.server_pid.and_then(rss_kib);
    if let Some(pid) = config.server_pid {
        match (rss_start_kib, rss_end_kib) {
            (Some(start), Some(end)) => {
                if end > start + config.rss_slack_mib * 1024 {
                    failures.push(format!(
                        "the server's RSS grew from {start} KiB to {end} KiB (slack {} MiB)",
                        config.rss_slack_mib
                    ));
                }
            }
            _ => failures.push(format!("cannot read VmRSS of process {pid}")),
        }
    }
    let stats = match (&config.stats_url, stats_target) {
        (Some(url), Some((addr, path))) => match settled_stats(addr, &path).await {
            Ok((stats, leftovers)) => {
                if !leftovers.is_empty() {
                    failures.push(format!("{url} still reports {}", leftovers.join(", ")));
                }
                Some(stats)
            }
            Err(e) => {
                failures.push(format!("GET {url} failed: {e:#}"));
                None
            }
        },
        _ => None,
    };

    let tallies = tallies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut refusals = BTreeMap::new();
    for tally in tallies.values() {
        for (label, n) in &tally.outcomes {
            if let Some(kind) = label.strip_prefix("refused: ") {
                *refusals.entry(kind.to_owned()).or_default() += n;
            }
        }
    }
    let unexpected: u64 = tallies.values().map(|t| t.unexpected).sum();
    let lost: u64 = tallies.values().map(|t| t.lost).sum();
    if unexpected > 0 {
        failures.push(format!("{unexpected} unexpected results"));
    }
    if lost > 0 {
        failures.push(format!("{lost} replies lost"));
    }
    Ok(ChaosSummary {
        seed: config.seed,
        workers: config.workers,
        seconds,
        scenarios: tallies
            .into_iter()
            .map(|(scenario, tally)| (scenario.name().to_owned(), tally))
            .collect(),
        refusals,
        unexpected,
        lost,
        echo_after_ms,
        rss_start_kib,
        rss_end_kib,
        stats,
        failures,
    })
}

/// One echo on a fresh connection; its round trip. The connection is closed
/// (handshake finished) before this returns, so it is not counted after.
async fn prompt_echo(config: &ChaosConfig, target: SocketAddr) -> Result<Duration, String> {
    let mut actor = Actor {
        id: usize::MAX,
        rng: Rng::new(config.seed),
        config: Arc::new(config.clone()),
        target,
        lost: 0,
        runs: 0,
    };
    let describe = |p: Problem| match p {
        Problem::Refused(kind) => format!("refused ({kind})"),
        Problem::Unexpected(what) => what,
    };
    let mut ws = actor.connect().await.map_err(describe)?;
    let payload = r#"{"check":"after chaos"}"#;
    let sent = Instant::now();
    send_text(&mut ws, frame("echostream", payload), config.reply_timeout)
        .await
        .map_err(describe)?;
    let reply = next_frame(&mut ws, config.reply_timeout)
        .await
        .map_err(describe)?;
    let rtt = sent.elapsed();
    match reply {
        Frame::Data { stream, payload: p } if stream == "echostream" && p == payload => {}
        other => return Err(format!("wrong echo: {other:?}")),
    }
    close_cleanly(&mut ws, config.reply_timeout)
        .await
        .map_err(describe)?;
    Ok(rtt)
}

/// VmRSS of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The address and path in `http://<ip>:<port>/path`.
fn http_target(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!("the stats URL must look like http://127.0.0.1:8000/stats")
    })?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = host
        .parse()
        .map_err(|_| anyhow::anyhow!("the stats URL's host must be an IP address and port"))?;
    Ok((addr, if path.is_empty() { "/" } else { path }.to_owned()))
}

/// GETs the stats until nothing is left or 5 s have passed (the server may
/// take a moment to count the last close); returns them and what is left.
async fn settled_stats(
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<(serde_json::Value, Vec<String>)> {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = get_json(addr, path).await?;
        let leftovers: Vec<String> = ["connections", "channels", "groups", "memberships"]
            .into_iter()
            .filter_map(
                |key| match stats.get(key).and_then(serde_json::Value::as_u64) {
                    Some(0) => None,
                    Some(n) => Some(format!("{key} = {n}")),
                    None => Some(format!("no {key}")),
                },
            )
            .collect();
        if leftovers.is_empty() || Instant::now() >= give_up {
            return Ok((stats, leftovers));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A plain HTTP/1.1 GET with `Connection: close`; the body as JSON.
async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {}", clip(&response)))?;
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(
        status.split_whitespace().nth(1) == Some("200"),
        "answered {status:?}"
    );
    serde_json::from_str(body)
        .map_err(|e| anyhow::anyhow!("body is not JSON ({e}): {}", clip(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_is_deterministic_and_spreads() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(0).next_u64(), Rng::new(1).next_u64());
        let mut seen = [0u32; 9];
        let mut rng = Rng::new(42);
        for _ in 0..9000 {
            seen[rng.below(9) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn random_json_is_valid_json() {
        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let text = random_json(&mut rng, 0);
            assert!(
                serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn frames_are_read_as_data_or_error() {
        assert!(matches!(
            parse_frame(r#"{"stream":"s","payload":{"a": 1}}"#),
            Ok(Frame::Data { stream, payload }) if stream == "s" && payload == r#"{"a": 1}"#
        ));
        assert!(matches!(
            parse_frame(r#"{"error":{"code":"unknown_stream","message":"m"},"stream":null}"#),
            Ok(Frame::Error { code, stream: None }) if code == "unknown_stream"
        ));
        assert!(matches!(parse_frame("[1]"), Err(Problem::Unexpected(_))));
    }

    #[test]
    fn stats_urls_are_split_into_address_and_path() {
        let (addr, path) = http_target("http://127.0.0.1:8000/stats").unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:8000");
        assert_eq!(path, "/stats");
        assert!(http_target("https://x/stats").is_err());
    }
}
