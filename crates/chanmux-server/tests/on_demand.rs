//! Streams on demand over real sockets, against the demo binary, as a new
//! user would try them (PROTOCOL.md): rooms, the ticker, refs, ping, the
//! stream limit, `closed`, the implicit subscribe, and rooms across two
//! processes sharing Redis or a Redis Cluster (through a failover).

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use support::{Server, WAIT};

/// A client on the demo's `/ws/`.
struct Client(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Client {
    async fn connect(server: &Server) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/", server.addr))
            .await
            .expect("the WebSocket handshake");
        Client(socket)
    }

    async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.0.send(Message::text(text)).await.expect("send");
    }

    async fn next(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).expect("JSON");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Whether nothing arrives within `wait`.
    async fn hears_nothing_within(&mut self, wait: Duration) -> bool {
        match tokio::time::timeout(wait, self.0.next()).await {
            Err(_) => true,
            Ok(frame) => panic!("expected silence, got {frame:?}"),
        }
    }

    async fn subscribe(&mut self, stream: &str, params: Option<Value>) -> Value {
        let mut frame = json!({"subscribe": stream, "ref": stream});
        if let Some(params) = params {
            frame["params"] = params;
        }
        self.send(frame).await;
        self.next().await
    }
}

#[tokio::test]
async fn two_clients_in_a_room_hear_each_other_until_one_unsubscribes() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]).await;
    let mut ann = Client::connect(&server).await;
    let mut bob = Client::connect(&server).await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(
            client.subscribe("room:lobby", None).await,
            json!({"subscribed": "room:lobby", "ref": "room:lobby"})
        );
    }
    ann.send(json!({"stream": "room:lobby", "payload": {"text": "hi", "n": 1.50}}))
        .await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(
            client.next().await,
            json!({"stream": "room:lobby", "payload": {"text": "hi", "n": 1.5}})
        );
    }
    bob.send(json!({"unsubscribe": "room:lobby", "ref": 1}))
        .await;
    assert_eq!(
        bob.next().await,
        json!({"unsubscribed": "room:lobby", "ref": 1})
    );
    ann.send(json!({"stream": "room:lobby", "payload": "after"}))
        .await;
    assert_eq!(ann.next().await["payload"], "after");
    assert!(bob.hears_nothing_within(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn the_ticker_counts_in_order_at_its_interval_and_stops_when_unsubscribed() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]).await;
    let mut client = Client::connect(&server).await;
    let started = std::time::Instant::now();
    assert_eq!(
        client
            .subscribe("ticker:ACME", Some(json!({"interval_ms": 100})))
            .await["subscribed"],
        "ticker:ACME"
    );
    for seq in 1..=3 {
        assert_eq!(
            client.next().await,
            json!({"stream": "ticker:ACME", "payload": {"symbol": "ACME", "seq": seq}})
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "three ticks took {took:?}");
    client
        .send(json!({"unsubscribe": "ticker:ACME", "ref": "u"}))
        .await;
    // A tick may have been on its way before the unsubscribe.
    loop {
        let frame = client.next().await;
        if frame.get("unsubscribed").is_some() {
            assert_eq!(frame, json!({"unsubscribed": "ticker:ACME", "ref": "u"}));
            break;
        }
        assert_eq!(frame["stream"], "ticker:ACME");
    }
    assert!(
        client
            .hears_nothing_within(Duration::from_millis(400))
            .await
    );
    // Too short an interval is refused with the reason.
    let refused = client
        .subscribe("ticker:FAST", Some(json!({"interval_ms": 10})))
        .await;
    assert_eq!(refused["error"]["code"], "subscription_refused");
    assert_eq!(
        refused["error"]["message"],
        "interval_ms must be between 50 and 3600000"
    );
    assert_eq!(refused["ref"], "ticker:FAST");
}

#[tokio::test]
async fn refs_ping_and_the_stream_limit_over_a_real_socket() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]).await;
    let mut client = Client::connect(&server).await;
    client
        .send(json!({"stream": "echostream", "payload": [1], "ref": "e1"}))
        .await;
    assert_eq!(
        client.next().await,
        json!({"stream": "echostream", "payload": [1], "ref": "e1"})
    );
    client
        .send(json!({"stream": "nope", "payload": 1, "ref": 77}))
        .await;
    let error = client.next().await;
    assert_eq!(
        (&error["error"]["code"], &error["stream"], &error["ref"]),
        (&json!("unknown_stream"), &json!("nope"), &json!(77))
    );
    client
        .send_text(r#"{"stream": "echostream", "ref": "m"}"#)
        .await;
    let error = client.next().await;
    assert_eq!(
        (&error["error"]["code"], &error["ref"]),
        (&json!("missing_payload"), &json!("m"))
    );
    client.send(json!({"ping": 42})).await;
    assert_eq!(client.next().await, json!({"pong": 42}));
    for id in 1..=128 {
        let answer = client.subscribe(&format!("room:{id}"), None).await;
        assert_eq!(answer["subscribed"], format!("room:{id}"), "{answer}");
    }
    let refused = client.subscribe("room:129", None).await;
    assert_eq!(refused["error"]["code"], "too_many_streams");
    assert_eq!(refused["stream"], "room:129");
}

#[tokio::test]
async fn a_subscribed_closeafterfirst_reports_closed_and_starts_afresh() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]).await;
    let mut client = Client::connect(&server).await;
    for round in 1..=2 {
        assert_eq!(
            client.subscribe("closeafterfirst", None).await["subscribed"],
            "closeafterfirst"
        );
        client
            .send(json!({"stream": "closeafterfirst", "payload": round}))
            .await;
        assert_eq!(
            client.next().await,
            json!({"stream": "closeafterfirst", "payload": round})
        );
        assert_eq!(
            client.next().await,
            json!({"closed": "closeafterfirst", "code": 1000, "reason": ""})
        );
    }
}

#[tokio::test]
async fn a_data_frame_to_a_room_without_subscribing_is_delivered() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]).await;
    let mut client = Client::connect(&server).await;
    client
        .send(json!({"stream": "room:x", "payload": {"hello": "room"}}))
        .await;
    assert_eq!(
        client.next().await,
        json!({"stream": "room:x", "payload": {"hello": "room"}})
    );
}

#[tokio::test]
async fn rooms_reach_subscribers_on_another_process_through_redis() {
    let redis = chanmux_redis::testing::RedisServer::start().await;
    let url = redis.url();
    let args = ["--addr", "127.0.0.1:0", "--redis", &url];
    let (_servers, mut ann, mut bob) = subscribed_on_two_servers(&args, "room:shared").await;
    bob.send(json!({"stream": "room:shared", "payload": "from two"}))
        .await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(
            client.next().await,
            json!({"stream": "room:shared", "payload": "from two"})
        );
    }
}

#[tokio::test]
async fn rooms_reach_another_process_through_a_redis_cluster_and_survive_a_failover() {
    let mut cluster = chanmux_redis::testing::RedisCluster::start().await;
    let seeds = cluster.urls().join(",");
    let args = ["--addr", "127.0.0.1:0", "--redis-cluster", &seeds];
    let (_servers, mut ann, mut bob) = subscribed_on_two_servers(&args, "room:x").await;
    send_until_delivered(&mut ann, &mut bob, "ann").await;
    send_until_delivered(&mut bob, &mut ann, "bob").await;

    // The room's group is `room.x`, its shard channel `chanmux:g:room.x`.
    cluster.stop_master_of("chanmux:g:room.x").await;
    // The same server processes, not restarted.
    send_until_delivered(&mut ann, &mut bob, "ann after failover").await;
    send_until_delivered(&mut bob, &mut ann, "bob after failover").await;
}

/// Two server processes started with `args`, and a client on each
/// subscribed to `stream` (the servers live as long as the first value).
async fn subscribed_on_two_servers(args: &[&str], stream: &str) -> ([Server; 2], Client, Client) {
    let servers = [Server::start(args).await, Server::start(args).await];
    let mut ann = Client::connect(&servers[0]).await;
    let mut bob = Client::connect(&servers[1]).await;
    for client in [&mut ann, &mut bob] {
        assert_eq!(client.subscribe(stream, None).await["subscribed"], stream);
    }
    (servers, ann, bob)
}

/// Sends frames to `room:x` from `from` until `to` receives one: frames sent
/// while a shard fails over are lost (at most once), or fail and end the
/// sender's stream (the next frame joins again).
async fn send_until_delivered(from: &mut Client, to: &mut Client, tag: &str) {
    tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            from.send(json!({"stream": "room:x", "payload": {"from": tag}}))
                .await;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
            while let Ok(frame) = tokio::time::timeout_at(deadline, to.next()).await {
                if frame == json!({"stream": "room:x", "payload": {"from": tag}}) {
                    return;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{tag}: room messages never arrived"));
}
