//! The `chanmux-server` binary itself: --addr / CHANMUX_ADDR, the address
//! line on stdout, and Ctrl-C closing sockets with 1001 and exiting cleanly.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(20);

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Starts the binary and returns it with the address it printed.
async fn start(configure: impl FnOnce(&mut Command)) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chanmux-server"));
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    configure(&mut command);
    let mut child = command.spawn().expect("the server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the address line in time")
        .unwrap()
        .expect("a line");
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (child, addr)
}

async fn echo_once(
    addr: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/"))
        .await
        .unwrap();
    let frame = r#"{"stream":"echostream","payload":{"hello":"world"}}"#;
    client.send(Message::text(frame)).await.unwrap();
    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), frame),
        other => panic!("expected the echo, got {other:?}"),
    }
    client
}

#[tokio::test]
async fn ctrl_c_closes_sockets_with_1001_and_exits_cleanly() {
    let (mut child, addr) = start(|c| {
        c.args(["--addr", "127.0.0.1:0"]);
    })
    .await;
    let mut client = echo_once(&addr).await;

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());

    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    // Reading on sends our reply to the close.
    let _ = tokio::time::timeout(WAIT, client.next()).await;
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// The HTTP status of a WebSocket handshake from `origin` (101 on success).
async fn handshake_status(addr: &str, origin: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws/").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

#[tokio::test]
async fn origins_are_checked_and_the_allowed_list_comes_from_flags_or_the_environment() {
    let (_child, addr) = start(|c| {
        c.args(["--addr", "127.0.0.1:0"]);
    })
    .await;
    assert_eq!(
        handshake_status(&addr, Some("https://evil.example")).await,
        403
    );
    assert_eq!(
        handshake_status(&addr, Some(&format!("http://{addr}"))).await,
        101
    );
    assert_eq!(handshake_status(&addr, None).await, 101);

    let (_child, addr) = start(|c| {
        c.args([
            "--addr",
            "127.0.0.1:0",
            "--allowed-origin",
            "https://*.example.com",
        ]);
    })
    .await;
    assert_eq!(
        handshake_status(&addr, Some("https://app.example.com")).await,
        101
    );
    assert_eq!(
        handshake_status(&addr, Some(&format!("http://{addr}"))).await,
        101
    );
    assert_eq!(
        handshake_status(&addr, Some("https://evil.example")).await,
        403
    );

    let (_child, addr) = start(|c| {
        c.args(["--addr", "127.0.0.1:0"]).env(
            "CHANMUX_ALLOWED_ORIGINS",
            "https://a.example,https://b.example",
        );
    })
    .await;
    assert_eq!(
        handshake_status(&addr, Some("https://b.example")).await,
        101
    );
    assert_eq!(
        handshake_status(&addr, Some("https://c.example")).await,
        403
    );
}

#[tokio::test]
async fn connection_limits_come_from_flags() {
    let (_child, addr) = start(|c| {
        c.args(["--addr", "127.0.0.1:0", "--max-connections", "1"]);
    })
    .await;
    let _held = echo_once(&addr).await;
    assert_eq!(handshake_status(&addr, None).await, 503);

    let (_child, addr) = start(|c| {
        c.args(["--addr", "127.0.0.1:0", "--max-connections-per-ip", "1"]);
    })
    .await;
    let _held = echo_once(&addr).await;
    assert_eq!(handshake_status(&addr, None).await, 429);
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped_at_the_flags_timeouts() {
    let (_child, addr) = start(|c| {
        c.args([
            "--addr",
            "127.0.0.1:0",
            "--ping-interval",
            "1",
            "--pong-timeout",
            "1",
        ]);
    })
    .await;
    // A raw socket that completes the handshake and then reads nothing (so
    // never answers a ping): the server must close it.
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /ws/ HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // Not reading until then proves nothing was answered; the data is
    // waiting in the socket: the 101, a ping, the close frame, then EOF.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut received))
        .await
        .expect("closed by the server")
        .unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    // Unmasked server frames: a ping (0x89, empty), then a close with 1001.
    let frames = &received[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(&frames[..2], &[0x89, 0x00]);
    assert_eq!(&frames[2..6], &[0x88, 2 + 12, 0x03, 0xe9]);
    assert_eq!(&frames[6..], b"ping timeout");
}

#[tokio::test]
async fn the_address_can_come_from_the_environment() {
    // Not the default host (127.0.0.1), so ignoring the variable would show.
    let (_child, addr) = start(|c| {
        c.env("CHANMUX_ADDR", "127.0.0.2:0");
    })
    .await;
    assert!(
        addr.starts_with("127.0.0.2:") && !addr.ends_with(":0"),
        "{addr}"
    );
    echo_once(&addr).await;
}

#[tokio::test]
async fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_chanmux-server"))
            .args(["--addr", &addr])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("binding {addr}")), "{stderr}");
}

async fn chat(client: &mut Client, payload: serde_json::Value) {
    let frame = serde_json::json!({"stream": "chat", "payload": payload}).to_string();
    client.send(Message::text(frame)).await.unwrap();
}

async fn next_json(client: &mut Client) -> serde_json::Value {
    match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn two_servers_sharing_redis_deliver_each_others_room_messages() {
    let redis = chanmux_redis::testing::RedisServer::start().await;
    let url = redis.url();
    let (_one, addr_one) = start(|c| {
        c.args(["--addr", "127.0.0.1:0", "--redis", &url]);
    })
    .await;
    let (_two, addr_two) = start(|c| {
        c.args(["--addr", "127.0.0.1:0"])
            .env("CHANMUX_REDIS_URL", &url);
    })
    .await;
    let connect = |addr: String| async move {
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/"))
            .await
            .unwrap()
            .0
    };
    let mut on_one = connect(addr_one.clone()).await;
    let mut on_two = connect(addr_two.clone()).await;
    let mut outsider = connect(addr_two).await;
    for client in [&mut on_one, &mut on_two] {
        chat(client, serde_json::json!({"join": "shared"})).await;
        assert_eq!(
            next_json(client).await["payload"],
            serde_json::json!({"joined": "shared"})
        );
    }
    chat(
        &mut on_one,
        serde_json::json!({"room": "shared", "message": {"from": "one"}}),
    )
    .await;
    chat(
        &mut on_two,
        serde_json::json!({"room": "shared", "message": {"from": "two"}}),
    )
    .await;
    for client in [&mut on_one, &mut on_two] {
        let mut heard = Vec::new();
        for _ in 0..2 {
            let frame = next_json(client).await;
            assert_eq!(frame["stream"], "chat");
            assert_eq!(frame["payload"]["room"], "shared");
            heard.push(
                frame["payload"]["message"]["from"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        heard.sort();
        assert_eq!(heard, ["one", "two"]);
    }
    outsider
        .send(Message::text(
            r#"{"stream":"echostream","payload":"marker"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut outsider).await["payload"],
        "marker",
        "nothing from the room before it"
    );
}

#[tokio::test]
async fn an_unreachable_redis_stops_the_server_at_start_with_a_clear_error() {
    let port = chanmux_redis::testing::free_port().await;
    let url = format!("redis://127.0.0.1:{port}/");
    let output = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_chanmux-server"))
            .args(["--addr", "127.0.0.1:0", "--redis", &url])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("connecting to Redis") && stderr.contains(&url),
        "{stderr}"
    );
}

#[tokio::test]
async fn out_of_descriptors_the_server_says_so_and_keeps_serving() {
    // A process here may not raise its cap, but it may lower its child's.
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -n 64 && exec \"$0\" --addr 127.0.0.1:0"])
        .arg(env!("CARGO_BIN_EXE_chanmux-server"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();

    let mut kept = echo_once(&addr).await;
    // Plain TCP connections take the server's remaining descriptors.
    let mut hogs = Vec::new();
    for _ in 0..100 {
        hogs.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // The server says why it cannot accept...
    let said = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = errors.next_line().await {
            if line.contains("Too many open files") {
                return line;
            }
        }
        panic!("the server ended without a word");
    })
    .await
    .expect("an error about descriptors");
    assert!(said.contains("accept"), "{said}");
    // ...and the connection it has keeps working.
    let frame = r#"{"stream":"echostream","payload":"still here"}"#;
    kept.send(Message::text(frame)).await.unwrap();
    match tokio::time::timeout(WAIT, kept.next()).await.unwrap() {
        Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), frame),
        other => panic!("expected the echo, got {other:?}"),
    }
    // Once descriptors are free again, new clients are served.
    drop(hogs);
    let mut fresh = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok((client, _)) =
                tokio_tungstenite::connect_async(format!("ws://{addr}/ws/")).await
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a new connection once descriptors are free");
    fresh.send(Message::text(frame)).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, fresh.next()).await.unwrap(),
        Some(Ok(Message::Text(_)))
    ));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
}
