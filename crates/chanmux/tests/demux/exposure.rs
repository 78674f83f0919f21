//! Safe to expose: the origin policy, connection limits, heartbeats, the
//! frame rate limit, bounded stream names and the groups-per-consumer limit,
//! through the communicator (Tokio's paused clock for every timeout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chanmux::layer::{InMemoryLayer, LayerError};
use chanmux::testing::{Communicator, Output};
use chanmux::transport::CloseFrame;
use chanmux::{
    BoxError, ConnectionConfig, ConnectionLimits, Consumer, Context, Demultiplexer, GroupError,
    OriginPolicy, Scope, Text,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use crate::support::*;

fn scope(origin: Option<&str>, host: &str) -> Scope {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(host).unwrap());
    if let Some(origin) = origin {
        headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    Scope::new("/ws/").with_headers(headers)
}

fn recorded(log: &Log) -> Demultiplexer {
    let log = log.clone();
    Demultiplexer::builder()
        .stream("echo", move || Recorder {
            name: "echo",
            log: log.clone(),
        })
        .build()
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_before_any_consumer_starts() {
    let log = Log::default();
    let mut evil = Communicator::with_scope(
        recorded(&log),
        scope(Some("https://evil.example"), "chat.example.com"),
    );
    assert_eq!(
        evil.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert!(
        log.entries().is_empty(),
        "no consumer started: {:?}",
        log.entries()
    );

    for allowed in [
        scope(Some("https://chat.example.com"), "chat.example.com"),
        scope(Some("http://chat.example.com"), "chat.example.com"),
        scope(None, "chat.example.com"),
    ] {
        let mut comm = Communicator::with_scope(recorded(&log), allowed);
        assert!(comm.connect().await.is_accepted());
        comm.disconnect(1000).await;
    }
}

#[tokio::test]
async fn allowed_origin_patterns_add_to_the_same_host() {
    let config = ConnectionConfig::default()
        .with_origins(OriginPolicy::same_host().allow("https://*.example.com"));
    let connect = |origin: &'static str| {
        let config = config.clone();
        async move {
            let mut comm = Communicator::with_scope(
                Demultiplexer::builder().stream("e", || Echo).build(),
                scope(Some(origin), "api.test"),
            )
            .config(config);
            comm.connect().await
        }
    };
    assert!(connect("https://app.example.com").await.is_accepted());
    assert!(connect("https://api.test").await.is_accepted());
    assert_eq!(
        connect("https://example.org").await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    let any = ConnectionConfig::default().with_origins(OriginPolicy::any());
    let mut comm = Communicator::with_scope(
        Demultiplexer::builder().stream("e", || Echo).build(),
        scope(Some("https://evil.example"), "api.test"),
    )
    .config(any);
    assert!(comm.connect().await.is_accepted());
}

fn from(address: &str) -> Scope {
    let mut scope = Scope::new("/ws/");
    scope.client = Some(address.parse::<SocketAddr>().unwrap());
    scope
}

#[tokio::test]
async fn connection_limits_refuse_with_503_and_429_and_admit_again_once_under() {
    let demux = || Demultiplexer::builder().stream("echo", || Echo).build();
    let config = ConnectionConfig::default().with_limits(ConnectionLimits::new(3, 2));
    let open = |address: &'static str| {
        let config = config.clone();
        let demux = demux();
        async move {
            let mut comm = Communicator::with_scope(demux, from(address)).config(config);
            let outcome = comm.connect().await;
            (comm, outcome)
        }
    };
    let (mut a1, outcome) = open("10.0.0.1:1000").await;
    assert!(outcome.is_accepted());
    let (_a2, outcome) = open("10.0.0.1:1001").await;
    assert!(outcome.is_accepted());
    let (_, outcome) = open("10.0.0.1:1002").await;
    assert_eq!(
        outcome.refusal_status(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    let (_b1, outcome) = open("10.0.0.2:1000").await;
    assert!(outcome.is_accepted());
    let (_, outcome) = open("10.0.0.3:1000").await;
    assert_eq!(
        outcome.refusal_status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(config.limits.live(), 3);

    // One leaves: both limits admit again.
    a1.disconnect(1000).await;
    assert_eq!(config.limits.live(), 2);
    // A refused consumer frees its slot too.
    let refusing = Demultiplexer::builder().stream("no", || Refuse).build();
    let mut comm = Communicator::with_scope(refusing, from("10.0.0.9:1")).config(config.clone());
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(config.limits.live(), 2);
    let (_a3, outcome) = open("10.0.0.1:1003").await;
    assert!(outcome.is_accepted());
    assert_eq!(config.limits.live(), 3);
}

fn heartbeat_config() -> ConnectionConfig {
    ConnectionConfig::default()
        .with_ping_interval(Duration::from_secs(25))
        .with_pong_timeout(Duration::from_secs(10))
}

/// Joins group "room" on connect, records its disconnect code.
struct Member {
    log: Log,
}

impl Consumer for Member {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.group_add("room").await?;
        Ok(())
    }
    async fn disconnect(&mut self, _ctx: &Context, code: u16) -> Result<(), BoxError> {
        self.log.push(format!("disconnect {code}"));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_answers_pings_is_dropped_and_leaves_its_groups() {
    let layer = Arc::new(InMemoryLayer::new());
    let log = Log::default();
    let member_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("member", move || Member {
            log: member_log.clone(),
        })
        .channel_layer(layer.clone())
        .build();
    let mut comm = Communicator::new(demux, "/ws/").config(heartbeat_config());
    assert!(comm.connect().await.is_accepted());
    assert_eq!(chanmux::layer::ChannelLayer::stats(&*layer).memberships, 1);

    // Reads nothing, so answers nothing: pinged at 25 s, gone at 35 s.
    tokio::time::sleep(Duration::from_secs(34)).await;
    assert!(!comm.is_finished(), "gone before the pong timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        comm.is_finished(),
        "still there after interval + pong timeout"
    );
    assert_eq!(log.entries(), ["disconnect 1006"]);
    assert_eq!(chanmux::layer::ChannelLayer::stats(&*layer).memberships, 0);
    assert_eq!(chanmux::layer::ChannelLayer::stats(&*layer).channels, 0);
    // What it would have read: the ping, then a close saying why.
    assert_eq!(
        comm.receive_output().await.unwrap(),
        Output::Close(Some(CloseFrame::new(1001, "ping timeout")))
    );
    assert_eq!(comm.pings_received(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_answers_pings_stays() {
    let demux = Demultiplexer::builder().stream("echo", || Echo).build();
    let mut comm = Communicator::new(demux, "/ws/").config(heartbeat_config());
    assert!(comm.connect().await.is_accepted());
    // Reading answers each ping as it arrives.
    assert!(comm.receive_nothing_within(Duration::from_secs(300)).await);
    assert!(!comm.is_finished());
    assert!(comm.pings_received() >= 5, "{}", comm.pings_received());
    comm.send_json_to(&json!({"stream": "echo", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": 1})
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_client_is_never_pinged() {
    let demux = Demultiplexer::builder().stream("echo", || Echo).build();
    let mut comm = Communicator::new(demux, "/ws/").config(heartbeat_config());
    assert!(comm.connect().await.is_accepted());
    for i in 0..30 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        comm.send_json_to(&json!({"stream": "echo", "payload": i}))
            .await;
        assert_eq!(comm.receive_json_from().await["payload"], i);
    }
    assert_eq!(comm.pings_received(), 0);
}

#[tokio::test(start_paused = true)]
async fn zero_ping_interval_turns_pings_off() {
    let demux = Demultiplexer::builder().stream("echo", || Echo).build();
    let config = ConnectionConfig::default().with_ping_interval(Duration::ZERO);
    let mut comm = Communicator::new(demux, "/ws/").config(config);
    assert!(comm.connect().await.is_accepted());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!comm.is_finished());
    assert!(comm.receive_nothing().await);
    assert_eq!(comm.pings_received(), 0);
}

#[tokio::test(start_paused = true)]
async fn frames_over_the_rate_get_rate_limited_and_the_socket_stays_open() {
    let demux = Demultiplexer::builder().stream("echo", || Echo).build();
    let config = ConnectionConfig::default().with_max_frame_rate(5);
    let mut comm = Communicator::new(demux, "/ws/").config(config);
    assert!(comm.connect().await.is_accepted());
    for i in 0..8 {
        comm.send_json_to(&json!({"stream": "echo", "payload": i}))
            .await;
    }
    let mut echoed = Vec::new();
    let mut limited = 0;
    for _ in 0..8 {
        let frame = comm.receive_json_from().await;
        if frame.get("payload").is_some() {
            echoed.push(frame["payload"].as_i64().unwrap());
        } else {
            assert_error_frame(&frame, "rate_limited", None);
            limited += 1;
        }
    }
    assert_eq!(echoed, [0, 1, 2, 3, 4]);
    assert_eq!(limited, 3);
    assert!(comm.receive_nothing().await);
    // A second later the bucket is full again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    comm.send_json_to(&json!({"stream": "echo", "payload": "again"}))
        .await;
    assert_eq!(comm.receive_json_from().await["payload"], "again");
    assert!(!comm.is_finished());
}

#[tokio::test(start_paused = true)]
async fn strict_mode_closes_1008_over_the_rate() {
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .strict(true)
        .build();
    let config = ConnectionConfig::default().with_max_frame_rate(1);
    let mut comm = Communicator::new(demux, "/ws/").config(config);
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "echo", "payload": 1}))
        .await;
    comm.send_json_to(&json!({"stream": "echo", "payload": 2}))
        .await;
    assert_eq!(comm.receive_json_from().await["payload"], 1);
    assert_eq!(
        comm.receive_close().await,
        Some(CloseFrame::new(1008, "rate_limited"))
    );
}

#[tokio::test]
async fn long_stream_names_are_not_echoed() {
    let demux = Demultiplexer::builder().stream("echo", || Echo).build();
    let mut comm = Communicator::new(demux, "/ws/");
    assert!(comm.connect().await.is_accepted());
    let longest = "n".repeat(255);
    comm.send_json_to(&json!({"stream": longest, "payload": 1}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "unknown_stream",
        Some(&longest),
    );

    let huge = "n".repeat(100_000);
    comm.send_json_to(&json!({"stream": huge, "payload": 1}))
        .await;
    let reply = comm.receive_text_from().await;
    assert!(
        reply.len() < 200,
        "{} bytes: the name came back",
        reply.len()
    );
    let frame: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_error_frame(&frame, "unknown_stream", None);
    assert!(
        frame["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100000 bytes")
    );
    // Without a payload: missing_payload, also without the name.
    comm.send_json_to(&json!({"stream": huge})).await;
    assert_error_frame(&comm.receive_json_from().await, "missing_payload", None);
}

/// Joins the group named by each payload; answers "ok" or the error.
struct Joiner;

impl Consumer for Joiner {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let group: String = serde_json::from_str(text.as_str())?;
        let answer = match ctx.group_add(&group).await {
            Ok(()) => json!("ok"),
            Err(GroupError::Layer(LayerError::TooManyGroups { limit })) => json!({"limit": limit}),
            Err(other) => json!(other.to_string()),
        };
        ctx.send_json(&answer).await?;
        Ok(())
    }
}

#[tokio::test]
async fn group_add_beyond_the_limit_is_an_error_the_consumer_can_answer() {
    let layer = Arc::new(InMemoryLayer::with_max_groups_per_channel(3));
    let demux = Demultiplexer::builder()
        .stream("join", || Joiner)
        .channel_layer(layer.clone())
        .build();
    let mut comm = Communicator::new(demux, "/ws/");
    assert!(comm.connect().await.is_accepted());
    for group in ["a", "b", "c", "a", "d", "c"] {
        comm.send_json_to(&json!({"stream": "join", "payload": group}))
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(comm.receive_json_from().await["payload"].clone());
    }
    assert_eq!(
        got,
        [
            json!("ok"),
            json!("ok"),
            json!("ok"),
            json!("ok"),
            json!({"limit": 3}),
            json!("ok")
        ]
    );
    assert_eq!(chanmux::layer::ChannelLayer::stats(&*layer).memberships, 3);
    // The stream goes on.
    comm.send_json_to(&json!({"stream": "join", "payload": "b"}))
        .await;
    assert_eq!(comm.receive_json_from().await["payload"], "ok");
}

#[tokio::test]
async fn a_stream_queue_is_bounded_in_bytes_too() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("slow", move || Gated { gate: held.clone() })
        .stream_queue_bytes(100)
        .build();
    let mut comm = Communicator::new(demux, "/ws/");
    assert!(comm.connect().await.is_accepted());
    let big = "x".repeat(40);
    // The first is taken by the handler, which then waits at the gate.
    comm.send_json_to(&json!({"stream": "slow", "payload": 0}))
        .await;
    assert_eq!(comm.receive_json_from().await["payload"]["started"], 0);
    // Each queued frame keeps its whole frame (about 70 bytes): one fits.
    comm.send_json_to(&json!({"stream": "slow", "payload": big}))
        .await;
    comm.send_json_to(&json!({"stream": "slow", "payload": big}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_overloaded",
        Some("slow"),
    );
    // Small frames still fit beside it, under 64 frames.
    comm.send_json_to(&json!({"stream": "slow", "payload": 1}))
        .await;
    gate.add_permits(10);
    let mut echoed = Vec::new();
    while echoed.len() < 3 {
        let frame = comm.receive_json_from().await;
        if frame["payload"].get("started").is_none() {
            echoed.push(frame["payload"].clone());
        }
    }
    assert_eq!(echoed, [json!(0), json!(big), json!(1)]);
}

/// Sends `count` messages of `size` bytes on connect, logging each send.
struct Sender {
    count: usize,
    size: usize,
    log: Log,
}

impl Consumer for Sender {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        for i in 0..self.count {
            ctx.send_text(format!("{i:0>width$}", width = self.size))
                .await?;
            self.log.push(format!("sent {i}"));
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_holds_at_most_the_outbound_bytes() {
    let log = Log::default();
    let sender_log = log.clone();
    let app = move || Sender {
        count: 20,
        size: 500,
        log: sender_log.clone(),
    };
    let config = ConnectionConfig::default().with_outbound_bytes(1000);
    // The client's own buffer holds one message; it reads nothing yet.
    let mut comm = Communicator::new(app, "/ws/")
        .config(config)
        .client_buffer(1);
    assert!(comm.connect().await.is_accepted());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = log.entries().len();
    // One in the client's buffer, one being written, two queued (1,000
    // bytes), and the sender waits: a handful, not all twenty.
    assert!(
        (3..=6).contains(&sent),
        "{sent} sent while the client read nothing"
    );
    for i in 0..20 {
        assert_eq!(comm.receive_text_from().await, format!("{i:0>500}"));
    }
    assert_eq!(log.entries().len(), 20);
}
