//! The axum integration over real loopback sockets with a real WebSocket
//! client: what reaches the scope, the handshake's HTTP answers, subprotocols
//! and transport limits.

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use chanmux::axum::{ServeConfig, websocket, websocket_with_config};
use chanmux::{BoxError, ConnectionConfig, Consumer, Context, Demultiplexer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use support::*;

mod authorization;
mod exposure;
mod tls;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// Serves `app` on a loopback port with the library's accept loop.
async fn serve(app: Router) -> SocketAddr {
    serve_with(app, ServeConfig::default()).await
}

async fn serve_with(app: Router, config: ServeConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        chanmux::axum::serve(listener, app, config, std::future::pending())
            .await
            .unwrap();
    });
    addr
}

async fn connect(
    addr: SocketAddr,
    path: &str,
    protocols: Option<&str>,
) -> Result<(Client, http::HeaderMap), WsError> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(protocols) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    request
        .headers_mut()
        .insert("x-user", "ann".parse().unwrap());
    let (client, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake answered in time")?;
    Ok((client, response.headers().clone()))
}

async fn next_json(client: &mut Client) -> Value {
    match tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a message in time")
    {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// A marker a middleware layer puts in request extensions.
#[derive(Clone)]
struct User(&'static str);

/// Reports what its scope holds, then echoes.
struct ScopeReporter;

impl Consumer for ScopeReporter {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept_subprotocol("b").await?;
        let scope = ctx.scope();
        ctx.send_json(&json!({
            "path": scope.path,
            "query": scope.query_string,
            "header": scope.header("x-user"),
            "room": scope.path_param("room"),
            "user": scope.extensions.get::<User>().map(|u| u.0),
            "client_is_loopback": scope.client.is_some_and(|a| a.ip().is_loopback()),
            "server": scope.server.map(|a| a.to_string()),
            "subprotocols": scope.subprotocols,
        }))
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn the_scope_carries_path_query_headers_params_extensions_and_addresses() {
    let demux = Demultiplexer::builder()
        .stream("scope", || ScopeReporter)
        .build();
    let app = Router::new()
        .route("/ws/{room}/", websocket(demux))
        .layer(axum::Extension(User("admin")));
    let addr = serve(app).await;
    let (mut client, _) = connect(addr, "/ws/lobby/?token=abc", Some("a, b"))
        .await
        .unwrap();
    let reply = next_json(&mut client).await;
    assert_eq!(reply["stream"], "scope");
    assert_eq!(
        reply["payload"],
        json!({
            "path": "/ws/lobby/",
            "query": "token=abc",
            "header": "ann",
            "room": "lobby",
            "user": "admin",
            "client_is_loopback": true,
            "server": addr.to_string(),
            "subprotocols": ["a", "b"],
        })
    );
}

/// Accepts with the subprotocol `chat.v2` if offered.
struct PicksSubprotocol;

impl Consumer for PicksSubprotocol {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        match ctx.accept_subprotocol("chat.v2").await {
            Ok(()) => Ok(()),
            Err(_) => Ok(ctx.accept().await?),
        }
    }
}

#[tokio::test]
async fn a_consumer_can_choose_the_subprotocol() {
    let addr = serve(Router::new().route("/ws/", websocket(|| PicksSubprotocol))).await;
    let (_client, headers) = connect(addr, "/ws/", Some("chat.v1, chat.v2"))
        .await
        .unwrap();
    assert_eq!(headers.get("sec-websocket-protocol").unwrap(), "chat.v2");
    let (_client, headers) = connect(addr, "/ws/", None).await.unwrap();
    assert!(headers.get("sec-websocket-protocol").is_none());
}

fn status(error: WsError) -> u16 {
    match error {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_answer_the_upgrade_with_403_or_500() {
    let config = ConnectionConfig::default().with_connect_timeout(Duration::from_millis(200));
    let app = Router::new()
        .route(
            "/refuse/",
            websocket(Demultiplexer::builder().stream("s", || Refuse).build()),
        )
        .route(
            "/raise/",
            websocket(
                Demultiplexer::builder()
                    .stream("s", || RaiseInConnect)
                    .build(),
            ),
        )
        .route("/panic/", websocket(|| PanicInConnect))
        .route(
            "/never/",
            websocket_with_config(
                Demultiplexer::builder().stream("s", || NeverAccept).build(),
                config,
            ),
        );
    let addr = serve(app).await;
    assert_eq!(
        status(connect(addr, "/refuse/", None).await.unwrap_err()),
        403
    );
    assert_eq!(
        status(connect(addr, "/raise/", None).await.unwrap_err()),
        500
    );
    assert_eq!(
        status(connect(addr, "/panic/", None).await.unwrap_err()),
        500
    );
    assert_eq!(
        status(connect(addr, "/never/", None).await.unwrap_err()),
        403
    );
}

#[tokio::test]
async fn a_message_over_the_frame_limit_closes_with_1009_and_other_connections_go_on() {
    // The transport's limit follows the demultiplexer's frame limit, so an
    // oversized message is refused as its header arrives, never buffered.
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .max_frame_size(1024)
        .build();
    let config = ConnectionConfig::default().with_max_message_size(4096);
    let app = Router::new()
        .route("/ws/", websocket_with_config(demux, config.clone()))
        .route("/plain/", websocket_with_config(|| Echo, config));
    let addr = serve(app).await;
    let (mut other, _) = connect(addr, "/ws/", None).await.unwrap();
    let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();

    let _ = client
        .send(Message::text(format!(
            r#"{{"stream":"echo","payload":"{}"}}"#,
            "x".repeat(2000)
        )))
        .await;
    assert_eq!(next_close(&mut client).await, Some(CloseCode::Size));

    other
        .send(Message::text(r#"{"stream":"echo","payload":"fine"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut other).await,
        json!({"stream": "echo", "payload": "fine"})
    );

    // A consumer without a limit of its own gets the connection's.
    let (mut plain, _) = connect(addr, "/plain/", None).await.unwrap();
    plain.send(Message::text("z".repeat(3000))).await.unwrap();
    match tokio::time::timeout(WAIT, plain.next()).await.unwrap() {
        Some(Ok(Message::Text(text))) => assert_eq!(text.len(), 3000),
        other => panic!("expected the echo, got {other:?}"),
    }
    let _ = plain.send(Message::text("y".repeat(8000))).await;
    assert_eq!(next_close(&mut plain).await, Some(CloseCode::Size));
}

/// The code of the next close frame, skipping anything before it.
async fn next_close(client: &mut Client) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn many_connections_each_get_their_own_consumers() {
    let log = Log::default();
    let recorder_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("r", move || Recorder {
            name: "r",
            log: recorder_log.clone(),
        })
        .build();
    let addr = serve(Router::new().route("/ws/", websocket(demux))).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();
        client
            .send(Message::text(format!(r#"{{"stream":"r","payload":{i}}}"#)))
            .await
            .unwrap();
        clients.push(client);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            next_json(client).await,
            json!({"stream": "r", "payload": i})
        );
    }
    assert_eq!(
        log.entries()
            .iter()
            .filter(|e| e.ends_with("connect"))
            .count(),
        20
    );
}

#[tokio::test]
async fn consumers_hear_the_clients_close_code_over_a_socket() {
    let log = Log::default();
    let (a, b) = (log.clone(), log.clone());
    let demux = Demultiplexer::builder()
        .stream("a", move || Recorder {
            name: "a",
            log: a.clone(),
        })
        .stream("b", move || Recorder {
            name: "b",
            log: b.clone(),
        })
        .build();
    let addr = serve(Router::new().route("/ws/", websocket(demux))).await;
    let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();
    client
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::from(4000),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    wait_until("both disconnects", || {
        log.contains("a disconnect 4000") && log.contains("b disconnect 4000")
    })
    .await;
}

#[tokio::test]
async fn a_panicking_stream_leaves_the_others_serving_over_a_socket() {
    let demux = Demultiplexer::builder()
        .stream("bad", || PanicOnReceive)
        .stream("echo", || Echo)
        .build();
    let addr = serve(Router::new().route("/ws/", websocket(demux))).await;
    let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();
    client
        .send(Message::text(r#"{"stream":"bad","payload":1}"#))
        .await
        .unwrap();
    client
        .send(Message::text(r#"{"stream":"echo","payload":2}"#))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echo", "payload": 2})
    );
    client
        .send(Message::text(r#"{"stream":"bad","payload":3}"#))
        .await
        .unwrap();
    let reply = next_json(&mut client).await;
    assert_error_frame(&reply, "stream_not_accepting", Some("bad"));
}

#[tokio::test]
async fn order_is_kept_per_stream_over_a_socket() {
    // Room for the whole burst: this is about order, not overload.
    let demux = Demultiplexer::builder()
        .stream("a", || Echo)
        .stream("b", || Echo)
        .stream_queue_capacity(512)
        .build();
    let addr = serve(Router::new().route("/ws/", websocket(demux))).await;
    let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();
    for i in 0..500 {
        let stream = if i % 2 == 0 { "a" } else { "b" };
        client
            .feed(Message::text(format!(
                r#"{{"stream":"{stream}","payload":{i}}}"#
            )))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let reply = next_json(&mut client).await;
        let n = reply["payload"].as_i64().unwrap();
        if reply["stream"] == "a" {
            a.push(n)
        } else {
            b.push(n)
        }
    }
    assert_eq!(a, (0..500).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    assert_eq!(b, (0..500).filter(|i| i % 2 == 1).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_overloaded_stream_says_so_over_a_socket() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("slow", move || Gated { gate: held.clone() })
        .stream("echo", || Echo)
        .stream_queue_capacity(1)
        .build();
    let addr = serve(Router::new().route("/ws/", websocket(demux))).await;
    let (mut client, _) = connect(addr, "/ws/", None).await.unwrap();
    client
        .send(Message::text(r#"{"stream":"slow","payload":0}"#))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "slow", "payload": {"started": 0}})
    );
    client
        .send(Message::text(r#"{"stream":"slow","payload":1}"#))
        .await
        .unwrap();
    client
        .send(Message::text(r#"{"stream":"slow","payload":2}"#))
        .await
        .unwrap();
    let reply = next_json(&mut client).await;
    assert_error_frame(&reply, "stream_overloaded", Some("slow"));
    client
        .send(Message::text(r#"{"stream":"echo","payload":"flows"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "echo", "payload": "flows"})
    );
    gate.add_permits(2);
    assert_eq!(
        next_json(&mut client).await,
        json!({"stream": "slow", "payload": 0})
    );
}

/// Sends 64 KiB messages as fast as the connection takes them.
struct Firehose {
    log: Log,
}

impl Consumer for Firehose {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        let ctx = ctx.clone();
        let log = self.log.clone();
        let chunk = format!("\"{}\"", "z".repeat(64 * 1024));
        tokio::spawn(async move {
            loop {
                if ctx.send_text(chunk.clone()).await.is_err() {
                    log.push("send failed");
                    return;
                }
            }
        });
        Ok(())
    }
    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        self.log.push(format!("disconnect {code}"));
        Ok(())
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_with_1013_over_a_socket() {
    let log = Log::default();
    let firehose_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("firehose", move || Firehose {
            log: firehose_log.clone(),
        })
        .build();
    let config = ConnectionConfig::default().with_slow_client_timeout(Duration::from_millis(500));
    let addr = serve(Router::new().route("/ws/", websocket_with_config(demux, config))).await;
    let (client, _) = connect(addr, "/ws/", None).await.unwrap();
    // The client never reads: kernel buffers fill, then the server's writes stall.
    wait_until("the slow client to be dropped", || {
        log.contains("disconnect 1013")
    })
    .await;
    assert!(log.contains("send failed"));
    drop(client);
}
