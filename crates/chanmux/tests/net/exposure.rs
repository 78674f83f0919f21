//! Safe to expose, over real sockets: origin and limit refusals as HTTP
//! answers, RFC 6455's close codes for protocol errors, and the handshake
//! timeout of the library's accept loop.

use std::time::Duration;

use axum::Router;
use chanmux::axum::{ServeConfig, websocket_with_config};
use chanmux::{ConnectionConfig, ConnectionLimits, Demultiplexer};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{WAIT, connect, next_json, serve, serve_with};
use crate::support::*;

fn echo_app(config: ConnectionConfig) -> Router {
    let demux = Demultiplexer::builder().stream("echo", || Echo).build();
    Router::new().route("/ws/", websocket_with_config(demux, config))
}

async fn connect_from(
    addr: std::net::SocketAddr,
    origin: &str,
) -> Result<u16, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/ws/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let (_client, response) = tokio_tungstenite::connect_async(request).await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn an_evil_origin_gets_403_and_same_host_or_none_gets_101() {
    let addr = serve(echo_app(ConnectionConfig::default())).await;
    match connect_from(addr, "https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(
        connect_from(addr, &format!("http://{addr}")).await.unwrap(),
        101
    );
    assert!(
        connect(addr, "/ws/", None).await.is_ok(),
        "no Origin: allowed"
    );
}

#[tokio::test]
async fn over_the_limit_the_upgrade_gets_503_with_retry_after_then_admits_again() {
    let config = ConnectionConfig::default().with_limits(ConnectionLimits::new(1, 0));
    let addr = serve(echo_app(config)).await;
    let (first, _) = connect(addr, "/ws/", None).await.unwrap();
    match connect(addr, "/ws/", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "5");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    drop(first);
    // Admitted again once the first connection has ended.
    let admitted = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok((mut client, _)) = connect(addr, "/ws/", None).await {
                client
                    .send(Message::text(r#"{"stream":"echo","payload":1}"#))
                    .await
                    .unwrap();
                return next_json(&mut client).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(admitted["payload"], 1);
}

#[tokio::test]
async fn per_address_limit_answers_429() {
    let config = ConnectionConfig::default().with_limits(ConnectionLimits::new(0, 2));
    let addr = serve(echo_app(config)).await;
    let _a = connect(addr, "/ws/", None).await.unwrap();
    let _b = connect(addr, "/ws/", None).await.unwrap();
    match connect(addr, "/ws/", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected 429, got {other:?}"),
    }
}

/// A WebSocket opened by hand, to send what no client library would.
async fn raw_socket(addr: std::net::SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws/ HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        socket.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    socket
}

/// Sends one masked frame (mask zero) with `first` as its first byte.
async fn send_raw_frame(socket: &mut TcpStream, first: u8, payload: &[u8]) {
    let mut frame = vec![
        first,
        0x80 | u8::try_from(payload.len()).unwrap(),
        0,
        0,
        0,
        0,
    ];
    frame.extend_from_slice(payload);
    socket.write_all(&frame).await.unwrap();
}

/// Reads frames until a close frame; returns its code.
async fn read_close_code(socket: &mut (impl AsyncReadExt + Unpin)) -> u16 {
    tokio::time::timeout(WAIT, async {
        loop {
            let mut header = [0u8; 2];
            socket.read_exact(&mut header).await.unwrap();
            let len = usize::from(header[1] & 0x7f);
            assert!(len < 126, "short frames only here");
            let mut payload = vec![0; len];
            socket.read_exact(&mut payload).await.unwrap();
            if header[0] & 0x0f == 0x8 {
                assert!(payload.len() >= 2, "a close frame without a status code");
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let addr = serve(echo_app(ConnectionConfig::default())).await;
    let mut socket = raw_socket(addr).await;
    send_raw_frame(&mut socket, 0x81, &[b'{', 0xff, 0xfe, b'}']).await;
    assert_eq!(read_close_code(&mut socket).await, 1007);
}

#[tokio::test]
async fn protocol_errors_close_with_1002() {
    let addr = serve(echo_app(ConnectionConfig::default())).await;
    // A reserved opcode.
    let mut socket = raw_socket(addr).await;
    send_raw_frame(&mut socket, 0x83, b"x").await;
    assert_eq!(read_close_code(&mut socket).await, 1002);
    // A fragmented ping (control frames cannot be fragmented).
    let mut socket = raw_socket(addr).await;
    send_raw_frame(&mut socket, 0x09, b"x").await;
    assert_eq!(read_close_code(&mut socket).await, 1002);
}

/// Whether the server closes `socket` (EOF or reset) within `wait`.
async fn closed_within(socket: &mut TcpStream, wait: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_slow_or_silent_http_head_is_closed_at_the_handshake_timeout() {
    let config = ServeConfig::default().with_handshake_timeout(Duration::from_millis(300));
    let addr = serve_with(echo_app(ConnectionConfig::default()), config).await;
    let opened = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /ws/ HT").await.unwrap();
    // A keep-alive connection that finished a request and then idles.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(format!("GET /nothing HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = [0u8; 12];
    idle.read_exact(&mut response).await.unwrap();
    assert_eq!(&response, b"HTTP/1.1 404");

    // Meanwhile the server serves new clients at once.
    let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();
    client
        .send(Message::text(r#"{"stream":"echo","payload":"ok"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut client).await["payload"], "ok");

    for (name, socket) in [
        ("silent", &mut silent),
        ("slow", &mut slow),
        ("idle", &mut idle),
    ] {
        // At the 300 ms timeout, not at some later default: all within 3 s
        // of connecting (the default timeout is 10 s).
        let left = Duration::from_secs(3).saturating_sub(opened.elapsed());
        assert!(
            closed_within(socket, left).await,
            "{name} connection still open {:?} after it connected",
            opened.elapsed()
        );
    }
    // The WebSocket, past its handshake, is not affected.
    client
        .send(Message::text(r#"{"stream":"echo","payload":"still"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut client).await["payload"], "still");
}

fn timed_app(message_timeout: Duration) -> Router {
    let config = ConnectionConfig::default().with_message_timeout(message_timeout);
    echo_app(config)
}

/// Writes `chunk` every 50 ms (at most 100 times) until the server has
/// closed, while reading the server's close code.
async fn trickle_until_closed(socket: TcpStream, chunk: &[u8]) -> u16 {
    let (mut read, mut write) = socket.into_split();
    let trickle = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if write.write_all(chunk).await.is_err() {
                break;
            }
        }
    };
    let closed = async { read_close_code(&mut read).await };
    tokio::select! {
        code = closed => code,
        () = trickle => panic!("still open after 100 chunks"),
    }
}

#[tokio::test]
async fn a_trickled_frame_is_cut_off_at_the_message_timeout_with_1008() {
    let addr = serve(timed_app(Duration::from_millis(400))).await;
    let mut socket = raw_socket(addr).await;
    // A text frame announcing 1,000 bytes (16-bit length), then a trickle.
    socket
        .write_all(&[0x81, 0x80 | 126, 0x03, 0xe8, 0, 0, 0, 0])
        .await
        .unwrap();
    assert_eq!(trickle_until_closed(socket, b"x").await, 1008);
}

#[tokio::test]
async fn a_trickled_fragmented_message_is_cut_off_even_while_it_answers_pings() {
    let addr = serve(timed_app(Duration::from_millis(400))).await;
    let mut socket = raw_socket(addr).await;
    // A first fragment (FIN clear), then one-byte continuation fragments,
    // each followed by a pong (control frames may come between fragments).
    send_raw_frame(&mut socket, 0x01, b"{\"stream\":").await;
    let continuation_and_pong = [0x00, 0x81, 0, 0, 0, 0, b' ', 0x8a, 0x80, 0, 0, 0, 0];
    assert_eq!(
        trickle_until_closed(socket, &continuation_and_pong).await,
        1008
    );
}

#[tokio::test]
async fn a_message_split_across_writes_within_the_timeout_arrives() {
    let addr = serve(timed_app(Duration::from_secs(2))).await;
    let mut socket = raw_socket(addr).await;
    let frame = br#"{"stream":"echo","payload":"split"}"#;
    let mut bytes = vec![0x81, 0x80 | u8::try_from(frame.len()).unwrap(), 0, 0, 0, 0];
    bytes.extend_from_slice(frame);
    for _ in 0..3 {
        let (head, tail) = bytes.split_at(10);
        socket.write_all(head).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        socket.write_all(tail).await.unwrap();
        // The echo: an unmasked text frame from the server.
        let mut header = [0u8; 2];
        socket.read_exact(&mut header).await.unwrap();
        assert_eq!(header[0], 0x81);
        let mut payload = vec![0; usize::from(header[1])];
        socket.read_exact(&mut payload).await.unwrap();
        assert_eq!(payload, frame);
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_ever_on_a_half_sent_request() {
    // No handshake timeout here: only the drain timeout can end the wait.
    let config = ServeConfig::default()
        .with_handshake_timeout(Duration::ZERO)
        .with_drain_timeout(Duration::from_millis(300));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(chanmux::axum::serve(
        listener,
        echo_app(ConnectionConfig::default()),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /ws/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    // The 300 ms drain ends it, well before the 10 s default would.
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("serve returned at the end of the 300 ms drain")
        .unwrap()
        .unwrap();
}
