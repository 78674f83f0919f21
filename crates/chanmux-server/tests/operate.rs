//! The binary as an operator runs it: the drain on SIGTERM and SIGINT,
//! `/healthz` and `/readyz`, `/metrics` on `--metrics-addr`, and log lines
//! that name their connection and stream.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chanmux_redis::testing::RedisServer;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(20);

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running server binary.
struct Server {
    child: Child,
    addr: String,
    /// `host:port` of `/metrics`, when started with `--metrics-addr`.
    metrics: Option<String>,
    /// Every line it wrote to stderr so far.
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chanmux-server"));
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next_line = async || {
            timeout(WAIT, lines.next_line())
                .await
                .expect("a line in time")
                .unwrap()
                .expect("a line")
        };
        let line = next_line().await;
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        let metrics = if args.contains(&"--metrics-addr") {
            let line = next_line().await;
            Some(
                line.strip_prefix("metrics on http://")
                    .and_then(|rest| rest.strip_suffix("/metrics"))
                    .unwrap_or_else(|| panic!("unexpected second line: {line}"))
                    .to_owned(),
            )
        } else {
            None
        };
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            addr,
            metrics,
            logs,
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    async fn connect(&self) -> Client {
        let url = format!("ws://{}/ws/", self.addr);
        timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("handshake in time")
            .expect("connected")
            .0
    }

    async fn get(&self, path: &str) -> (u16, String) {
        get(&self.addr, path).await
    }

    /// The value of one series (`name{labels}` exactly as rendered), if present.
    async fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) =
            get(self.metrics.as_deref().expect("--metrics-addr"), "/metrics").await;
        assert_eq!(status, 200);
        body.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.parse().expect("a number"))
        })
    }

    /// Waits until `series` satisfies `check`, or fails saying what it was.
    async fn wait_for_metric(&self, series: &str, check: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.metric(series).await;
            if let Some(value) = value.filter(|&v| check(v)) {
                return value;
            }
            assert!(Instant::now() < deadline, "{series} is {value:?}");
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {limit:?}"))
            .unwrap()
    }
}

/// A one-request HTTP/1.1 GET: the status and the body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(WAIT, socket.read_to_string(&mut response))
        .await
        .expect("answered in time")
        .unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Reads until the server's close frame: its code and when it came.
async fn close_of(mut client: Client) -> (Option<CloseCode>, Instant) {
    loop {
        match client.next().await {
            Some(Ok(Message::Close(frame))) => return (frame.map(|f| f.code), Instant::now()),
            Some(Ok(_)) => continue,
            _ => return (None, Instant::now()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_200_connections_spread_over_the_drain_time_and_exits_0() {
    const CLIENTS: usize = 200;
    let drain = Duration::from_secs(4);
    let mut server = Server::start(&["--drain-secs", "4"], &[]).await;
    assert_eq!(server.get("/readyz").await, (200, "ready".into()));
    let mut closes = Vec::new();
    for _ in 0..CLIENTS {
        closes.push(tokio::spawn(close_of(server.connect().await)));
    }

    let signalled = Instant::now();
    server.signal("TERM");
    sleep(Duration::from_millis(200)).await;
    // From the first signal on: not ready, and no new WebSocket.
    assert_eq!(server.get("/readyz").await, (503, "draining".into()));
    assert_eq!(server.get("/healthz").await.0, 200);
    let url = format!("ws://{}/ws/", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("a new WebSocket during the drain: {other:?}"),
    }

    let status = server.exit_within(drain + Duration::from_secs(2)).await;
    assert!(status.success(), "{status}");
    let mut at = Vec::new();
    for close in closes {
        let (code, when) = close.await.unwrap();
        assert_eq!(code, Some(CloseCode::Away));
        at.push(when - signalled);
    }
    // Spread evenly over the drain (its first nine tenths), not at once:
    // every quarter of that time closes at least a tenth of the clients.
    let spread = drain.mul_f64(0.9);
    for quarter in 0..4 {
        let from = spread.mul_f64(quarter as f64 / 4.0);
        let to = spread.mul_f64((quarter + 1) as f64 / 4.0);
        let n = at.iter().filter(|&&t| t >= from && t < to).count();
        assert!(n >= CLIENTS / 10, "{n} closes in {from:?}..{to:?}: {at:?}");
    }
}

#[tokio::test]
async fn a_half_sent_request_does_not_hold_sigint_past_the_drain_time() {
    let mut server = Server::start(&["--drain-secs", "2"], &[]).await;
    let mut socket = TcpStream::connect(&server.addr).await.unwrap();
    // A request head that never ends (the handshake timeout is 10 s).
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    sleep(Duration::from_millis(200)).await;
    server.signal("INT");
    let status = server.exit_within(Duration::from_secs(4)).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_second_signal_closes_the_rest_at_once() {
    let mut server = Server::start(&["--drain-secs", "60"], &[]).await;
    let mut closes = Vec::new();
    for _ in 0..20 {
        closes.push(tokio::spawn(close_of(server.connect().await)));
    }
    server.signal("TERM");
    sleep(Duration::from_millis(300)).await;
    let second = Instant::now();
    server.signal("TERM");
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");
    for close in closes {
        let (code, when) = close.await.unwrap();
        assert_eq!(code, Some(CloseCode::Away));
        // Not at their moments within 60 s: within a moment of the second.
        assert!(when < second + Duration::from_secs(2));
    }
}

async fn send(client: &mut Client, stream: &str, payload: serde_json::Value) {
    let frame = serde_json::json!({"stream": stream, "payload": payload});
    client.send(Message::text(frame.to_string())).await.unwrap();
}

async fn next_json(client: &mut Client) -> serde_json::Value {
    match timeout(WAIT, client.next()).await.expect("a frame in time") {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_what_the_clients_did() {
    let server = Server::start(
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--slow-client-timeout",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(server.metric("chanmux_connections").await, None);

    // One client: three echoes and a frame for a stream that does not exist.
    let mut active = server.connect().await;
    for n in 0..3 {
        send(&mut active, "echostream", serde_json::json!(n)).await;
        assert_eq!(next_json(&mut active).await["payload"], n);
    }
    send(&mut active, "nosuchstream", serde_json::json!(1)).await;
    assert_eq!(
        next_json(&mut active).await["error"]["code"],
        "unknown_stream"
    );

    // Another joins a room and stops reading; the first floods the room
    // until deliveries to it are dropped and it is dropped as a slow client.
    let mut silent = server.connect().await;
    send(&mut silent, "chat", serde_json::json!({"join": "flood"})).await;
    assert_eq!(next_json(&mut silent).await["payload"]["joined"], "flood");
    let message = "x".repeat(60_000);
    let flood = async {
        for _ in 0..400 {
            let said = serde_json::json!({"room": "flood", "message": message});
            send(&mut active, "chat", said).await;
        }
    };
    timeout(WAIT, flood).await.expect("the flood is sent");
    server
        .wait_for_metric("chanmux_slow_client_disconnects_total", |v| v == 1.0)
        .await;
    server
        .wait_for_metric(r#"chanmux_group_messages_total{result="dropped"}"#, |v| {
            v >= 1.0
        })
        .await;

    // Refusals are counted by outcome: a plain GET on the WebSocket route,
    // and a page from another origin.
    assert_eq!(server.get("/ws/").await.0, 426);
    let mut request = format!("ws://{}/ws/", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://elsewhere.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a foreign origin was not refused: {other:?}"),
    }

    let exactly = [
        ("chanmux_connections", 1.0),
        (r#"chanmux_connections_total{outcome="bad_request"}"#, 1.0),
        (
            r#"chanmux_connections_total{outcome="origin_refused"}"#,
            1.0,
        ),
        (r#"chanmux_connections_total{outcome="accepted"}"#, 2.0),
        (r#"chanmux_disconnects_total{code="1013"}"#, 1.0),
        (r#"chanmux_frames_received_total{stream="echostream"}"#, 3.0),
        (r#"chanmux_frames_sent_total{stream="echostream"}"#, 3.0),
        (r#"chanmux_handler_seconds_count{stream="echostream"}"#, 3.0),
        (r#"chanmux_frames_received_total{stream="chat"}"#, 401.0),
        (r#"chanmux_error_frames_total{code="unknown_stream"}"#, 1.0),
        // The active client's streams; the silent one's are gone.
        (r#"chanmux_streams{stream="echostream"}"#, 1.0),
        ("chanmux_layer_up", 1.0),
    ];
    for (series, expected) in exactly {
        assert_eq!(server.metric(series).await, Some(expected), "{series}");
    }
    let bytes_in = server.metric("chanmux_bytes_received_total").await.unwrap();
    assert!(bytes_in > 400.0 * 60_000.0, "{bytes_in}");
    assert!(server.metric("chanmux_bytes_sent_total").await.unwrap() > 0.0);
    let delivered = server
        .metric(r#"chanmux_group_messages_total{result="delivered"}"#)
        .await
        .unwrap();
    let dropped = server
        .metric(r#"chanmux_group_messages_total{result="dropped"}"#)
        .await
        .unwrap();
    assert_eq!(delivered + dropped, 400.0);
}

/// The JSON log line the chat consumer writes when a client joins a room,
/// from a server started with `RUST_LOG=rust_log`.
async fn joined_log_line(rust_log: &str) -> serde_json::Value {
    let server = Server::start(&["--log-format", "json"], &[("RUST_LOG", rust_log)]).await;
    let mut client = server.connect().await;
    send(&mut client, "chat", serde_json::json!({"join": "logged"})).await;
    assert_eq!(next_json(&mut client).await["payload"]["joined"], "logged");
    let deadline = Instant::now() + WAIT;
    let line = loop {
        let found = server
            .logs
            .lock()
            .unwrap()
            .iter()
            .find(|line| line.contains("joined a room"))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line from the chat consumer"
        );
        sleep(Duration::from_millis(50)).await;
    };
    let line: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(line["fields"]["room"], "logged", "{line}");
    line
}

#[tokio::test]
async fn a_consumers_log_line_names_its_connection_and_stream() {
    let line = joined_log_line("info,chanmux_server=debug").await;
    let spans = line["spans"]
        .as_array()
        .expect("the spans it was logged in");
    let connection = spans
        .iter()
        .find(|s| s["name"] == "connection")
        .unwrap_or_else(|| panic!("no connection span: {line}"));
    assert!(
        connection["id"].as_u64().is_some_and(|id| id >= 1),
        "{line}"
    );
    assert_eq!(connection["path"], "/ws/");
    assert!(
        connection["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:"))
    );
    let stream = spans
        .iter()
        .find(|s| s["name"] == "stream")
        .unwrap_or_else(|| panic!("no stream span: {line}"));
    assert_eq!(stream["stream"], "chat");
}

#[tokio::test]
async fn the_spans_can_be_turned_off_alone() {
    let line = joined_log_line("info,chanmux_server=debug,chanmux::spans=off").await;
    let spans = line["spans"].as_array().map_or(0, Vec::len);
    assert_eq!(spans, 0, "{line}");
}

#[tokio::test]
async fn readyz_is_503_while_redis_is_unreachable() {
    let mut redis = RedisServer::start().await;
    let server = Server::start(
        &["--redis", &redis.url(), "--metrics-addr", "127.0.0.1:0"],
        &[],
    )
    .await;
    assert_eq!(server.get("/readyz").await, (200, "ready".into()));
    redis.stop().await;
    let deadline = Instant::now() + WAIT;
    while server.get("/readyz").await.0 != 503 {
        assert!(Instant::now() < deadline, "/readyz still 200 without Redis");
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.get("/readyz").await,
        (503, "channel layer unreachable".into())
    );
    assert_eq!(server.get("/healthz").await, (200, "ok".into()));
    assert_eq!(server.metric("chanmux_layer_up").await, Some(0.0));
    redis.restart().await;
    let deadline = Instant::now() + WAIT;
    while server.get("/readyz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz still 503 with Redis back"
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.metric("chanmux_layer_up").await, Some(1.0));
}
