//! The demo server and the conformance routes over real loopback sockets,
//! driven by a real WebSocket client (tokio-tungstenite).

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use chanmux::axum::ServeConfig;
use chanmux::layer::{InMemoryLayer, SharedLayer};
use chanmux::{ConnectionConfig, Shutdown};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every wait in these tests is bounded.
const WAIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    shutdown: Shutdown,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(conformance: bool) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        // A close timeout far beyond every wait here: a connection that only
        // ends by timing out makes its test fail instead of passing slowly.
        let config = ConnectionConfig::default()
            .with_connect_timeout(Duration::from_millis(300))
            .with_close_timeout(Duration::from_secs(600))
            .with_shutdown(shutdown.clone());
        let layer: SharedLayer = Arc::new(InMemoryLayer::new());
        let app = if conformance {
            chanmux_server::conformance_router(config, layer)
        } else {
            chanmux_server::demo_router(config, layer)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chanmux::axum::serve(
            listener,
            app,
            ServeConfig::default().with_shutdown(shutdown.clone()),
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            shutdown,
            stop: Some(stop),
            task,
        }
    }

    async fn connect(&self, path: &str) -> Result<Client, WsError> {
        let url = format!("ws://{}{path}", self.addr);
        let (client, _response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("handshake answered in time")?;
        Ok(client)
    }

    /// Shuts down and checks every connection finished its closing
    /// handshake (serve() gives up at the end of its 10 s drain and leaves
    /// them counted).
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(2 * WAIT, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            self.shutdown.live_connections(),
            0,
            "a connection did not close cleanly"
        );
    }
}

/// Closes from the client side and reads until the server's reply has come.
async fn hang_up(mut client: Client) {
    let _ = client.close(None).await;
    tokio::time::timeout(WAIT, async { while client.next().await.is_some() {} })
        .await
        .expect("the server answers the close");
}

async fn send(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

async fn next(client: &mut Client) -> Message {
    loop {
        match tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return message,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn next_json(client: &mut Client) -> Value {
    match next(client).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn expect_close(client: &mut Client) -> Option<CloseFrame> {
    match next(client).await {
        Message::Close(frame) => frame,
        other => panic!("expected a close, got {other:?}"),
    }
}

fn http_status(error: WsError) -> u16 {
    match error {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn demo_echo_alt_echo_and_close_after_first_behave_as_the_readme_says() {
    let server = Server::start(false).await;
    let mut client = server.connect("/ws/").await.unwrap();

    send(
        &mut client,
        r#"{"stream":"echostream","payload":{"hello":"world"}}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echostream", "payload": {"hello": "world"}})
    );
    send(
        &mut client,
        r#"{"stream":"altechostream","payload":{"hello":"world"}}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "altechostream", "payload": {"received": {"hello": "world"}, "alt_value": 123}})
    );
    send(&mut client, r#"{"stream":"closeafterfirst","payload":1}"#).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "closeafterfirst", "payload": 1})
    );
    send(&mut client, r#"{"stream":"closeafterfirst","payload":2}"#).await;
    assert_eq!(
        next_json(&mut client).await["error"]["code"],
        "stream_not_accepting"
    );
    send(&mut client, r#"{"stream":"echostream","payload":3}"#).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echostream", "payload": 3})
    );

    hang_up(client).await;
    server.stop().await;
}

#[tokio::test]
async fn the_reference_route_serves_the_python_references_streams_and_no_others() {
    let server = Server::start(false).await;
    let mut client = server.connect("/ws/reference/").await.unwrap();
    send(&mut client, r#"{"stream":"echostream","payload":[1]}"#).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echostream", "payload": [1]})
    );
    send(&mut client, r#"{"stream":"neveraccept","payload":1}"#).await;
    assert_eq!(
        next_json(&mut client).await["error"]["code"],
        "stream_not_accepting"
    );
    send(&mut client, r#"{"stream":"chat","payload":{"join":"r"}}"#).await;
    assert_eq!(
        next_json(&mut client).await["error"]["code"],
        "unknown_stream",
        "chat is the demo's own stream, not the reference's"
    );
    hang_up(client).await;
    server.stop().await;
}

#[tokio::test]
async fn every_invalid_frame_gets_its_error_frame_over_a_real_socket() {
    let server = Server::start(false).await;
    let mut client = server.connect("/ws/").await.unwrap();
    let cases = [
        ("nope", "invalid_json", Value::Null),
        ("[]", "not_an_object", Value::Null),
        (r#"{"payload":1}"#, "missing_stream", Value::Null),
        (
            r#"{"stream":"echostream"}"#,
            "missing_payload",
            json!("echostream"),
        ),
        (
            r#"{"stream":"zzz","payload":1}"#,
            "unknown_stream",
            json!("zzz"),
        ),
        (
            r#"{"stream":"neveraccept","payload":1}"#,
            "stream_not_accepting",
            json!("neveraccept"),
        ),
    ];
    for (frame, code, stream) in cases {
        send(&mut client, frame).await;
        let reply = next_json(&mut client).await;
        assert_eq!(reply["error"]["code"], code, "{frame}");
        assert_eq!(reply["stream"], stream);
        assert!(reply.get("payload").is_none());
    }
    client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        next_json(&mut client).await["error"]["code"],
        "binary_not_supported"
    );
    // Over the frame limit (1 MiB): refused by the transport as its header
    // arrives, with 1009, on that connection only.
    let mut big_sender = server.connect("/ws/").await.unwrap();
    let big = format!(
        r#"{{"stream":"echostream","payload":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let _ = big_sender.send(Message::text(big)).await;
    match tokio::time::timeout(WAIT, big_sender.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }

    send(&mut client, r#"{"stream":"echostream","payload":"alive"}"#).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echostream", "payload": "alive"})
    );
    hang_up(client).await;
    server.stop().await;
}

#[tokio::test]
async fn payloads_come_back_byte_for_byte_over_a_real_socket() {
    let server = Server::start(false).await;
    let mut client = server.connect("/ws/").await.unwrap();
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    for payload in [
        "1e3",
        "123456789012345678901234567890",
        r#""é😀\u00e9""#,
        deep.as_str(),
    ] {
        send(
            &mut client,
            &format!(r#"{{"stream":"echostream","payload":{payload}}}"#),
        )
        .await;
        match next(&mut client).await {
            Message::Text(text) => {
                assert_eq!(
                    text.as_str(),
                    format!(r#"{{"stream":"echostream","payload":{payload}}}"#)
                )
            }
            other => panic!("{other:?}"),
        }
        // The alt stream embeds the payload as raw JSON: exact text too.
        send(
            &mut client,
            &format!(r#"{{"stream":"altechostream","payload":{payload}}}"#),
        )
        .await;
        let expected = format!(
            r#"{{"stream":"altechostream","payload":{{"received":{payload},"alt_value":123}}}}"#
        );
        match next(&mut client).await {
            Message::Text(text) => assert_eq!(text.as_str(), expected),
            other => panic!("{other:?}"),
        }
    }
    hang_up(client).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_sockets_with_1001() {
    let server = Server::start(false).await;
    let mut client = server.connect("/ws/").await.unwrap();
    send(&mut client, r#"{"stream":"echostream","payload":0}"#).await;
    next_json(&mut client).await;
    let stopping = tokio::spawn(server.stop());
    let close = expect_close(&mut client).await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    // Reading on flushes the client's reply to the close; then the server finishes.
    assert!(
        tokio::time::timeout(WAIT, client.next())
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::timeout(2 * WAIT, stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_page_is_served_at_the_root() {
    let server = Server::start(false).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("<html") && response.contains("/ws/"));
    server.stop().await;
}

#[tokio::test]
async fn conformance_routes_serve_the_reference_applications() {
    let server = Server::start(true).await;

    let mut client = server.connect("/ws/").await.unwrap();
    send(
        &mut client,
        r#"{"stream":"echostream","payload":{"hello":"world"}}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echostream", "payload": {"hello": "world"}})
    );
    hang_up(client).await;

    assert_eq!(
        http_status(server.connect("/ws/raise/").await.unwrap_err()),
        500
    );
    assert_eq!(
        http_status(server.connect("/ws/single/").await.unwrap_err()),
        403
    );

    let mut client = server.connect("/ws/lastclose/").await.unwrap();
    send(&mut client, r#"{"stream":"closeafterfirst","payload":"a"}"#).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "closeafterfirst", "payload": "a"})
    );
    send(&mut client, r#"{"stream":"closewithcode","payload":"b"}"#).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "closewithcode", "payload": "b"})
    );
    let close = expect_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), "bye");
    hang_up(client).await;

    let mut client = server.connect("/ws/lastclose/").await.unwrap();
    send(&mut client, r#"{"stream":"closewithcode","payload":"b"}"#).await;
    next_json(&mut client).await;
    send(&mut client, r#"{"stream":"closeafterfirst","payload":"a"}"#).await;
    next_json(&mut client).await;
    let close = expect_close(&mut client).await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Normal);
    hang_up(client).await;
    server.stop().await;
}

async fn chat(client: &mut Client, payload: Value) {
    send(
        client,
        &json!({"stream": "chat", "payload": payload}).to_string(),
    )
    .await;
}

#[tokio::test]
async fn chat_says_so_when_a_connection_is_in_too_many_rooms() {
    let server = Server::start(false).await;
    let mut client = server.connect("/ws/").await.unwrap();
    // The layer's default: 1,000 groups per consumer. Sent 50 at a time
    // (the stream's queue holds 64), then a pause for the frame rate limit
    // (1,000 per second, in bursts of 1,000) to refill.
    for batch in 0..20 {
        for n in batch * 50..(batch + 1) * 50 {
            chat(&mut client, json!({"join": format!("room{n}")})).await;
        }
        for _ in 0..50 {
            let reply = next_json(&mut client).await;
            assert!(reply["payload"]["joined"].is_string(), "{reply}");
        }
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    chat(&mut client, json!({"join": "one-too-many"})).await;
    assert_eq!(
        next_json(&mut client).await["payload"]["error"],
        "you may be in at most 1000 rooms; leave one first"
    );
    // Rejoining a room it is in is fine; leaving one makes room.
    chat(&mut client, json!({"join": "room7"})).await;
    assert_eq!(next_json(&mut client).await["payload"]["joined"], "room7");
    chat(&mut client, json!({"leave": "room7"})).await;
    assert_eq!(next_json(&mut client).await["payload"]["left"], "room7");
    chat(&mut client, json!({"join": "one-too-many"})).await;
    assert_eq!(
        next_json(&mut client).await["payload"]["joined"],
        "one-too-many"
    );
    hang_up(client).await;
    server.stop().await;
}

#[tokio::test]
async fn chat_rooms_deliver_to_everyone_who_joined() {
    let server = Server::start(false).await;
    let mut ann = server.connect("/ws/").await.unwrap();
    let mut bob = server.connect("/ws/").await.unwrap();
    let mut eve = server.connect("/ws/").await.unwrap();
    for client in [&mut ann, &mut bob] {
        chat(client, json!({"join": "lobby"})).await;
        assert_eq!(
            next_json(client).await,
            json!({"stream": "chat", "payload": {"joined": "lobby"}})
        );
    }

    // Exact text of the message survives: it is passed on as raw JSON.
    send(
        &mut ann,
        r#"{"stream":"chat","payload":{"room":"lobby","message":{"text":"hi","n":1e3}}}"#,
    )
    .await;
    for client in [&mut ann, &mut bob] {
        match next(client).await {
            Message::Text(text) => assert_eq!(
                text.as_str(),
                r#"{"stream":"chat","payload":{"room":"lobby","message":{"text":"hi","n":1e3}}}"#
            ),
            other => panic!("{other:?}"),
        }
    }
    // Sending to a room one has not joined is allowed; the sender hears nothing.
    chat(
        &mut eve,
        json!({"room": "lobby", "message": "from outside"}),
    )
    .await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(
            next_json(client).await,
            json!({"stream": "chat", "payload": {"room": "lobby", "message": "from outside"}})
        );
    }

    chat(&mut bob, json!({"leave": "lobby"})).await;
    assert_eq!(
        next_json(&mut bob).await,
        json!({"stream": "chat", "payload": {"left": "lobby"}})
    );
    chat(&mut ann, json!({"room": "lobby", "message": 2})).await;
    assert_eq!(next_json(&mut ann).await["payload"]["message"], 2);

    // Bad requests get an answer on the stream; the connection goes on.
    // Errors speak of the room name the client sent, not the group's.
    for (room, says) in [
        (
            "bad room".to_owned(),
            "room name \"bad room\" may only hold",
        ),
        (String::new(), "a room name cannot be empty"),
        (
            "r".repeat(96),
            "room name is 96 bytes long; at most 95 are allowed",
        ),
    ] {
        chat(&mut eve, json!({"join": room})).await;
        let error = next_json(&mut eve).await["payload"]["error"].clone();
        let error = error.as_str().unwrap().to_owned();
        assert!(error.starts_with(says), "{error}");
        assert!(!error.contains("chat."), "{error}");
    }
    chat(&mut eve, json!({"join": "r".repeat(95)})).await;
    assert_eq!(
        next_json(&mut eve).await["payload"]["joined"],
        "r".repeat(95)
    );
    chat(&mut eve, json!({"leave": "r".repeat(95)})).await;
    assert_eq!(next_json(&mut eve).await["payload"]["left"], "r".repeat(95));
    chat(&mut eve, json!({"what": 1})).await;
    assert!(next_json(&mut eve).await["payload"]["error"].is_string());
    // Neither bob (left) nor eve (never joined) got room messages.
    for client in [&mut bob, &mut eve] {
        send(client, r#"{"stream":"echostream","payload":"marker"}"#).await;
        assert_eq!(
            next_json(client).await,
            json!({"stream": "echostream", "payload": "marker"})
        );
    }
    for client in [ann, bob, eve] {
        hang_up(client).await;
    }
    server.stop().await;
}
