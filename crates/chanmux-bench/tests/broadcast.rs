//! `chanmux-bare-broadcast`, the fan-out ceiling, speaks the demo's `chat`
//! wire shape, and the fan-out engine measures it: every member gets every
//! round in order, and the server's CPU per delivery is a real figure.

use std::process::Stdio;
use std::time::Duration;

use chanmux_bench::fanout::{self, FanoutConfig};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// Starts the binary on port 0; returns it and its address.
async fn start() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chanmux-bare-broadcast"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the broadcaster starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the address line in time")
        .unwrap()
        .expect("the address line");
    let addr = line
        .strip_prefix("listening on http://")
        .expect("the address line")
        .to_owned();
    (child, addr)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(client: &mut Client) -> String {
    match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn send(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

#[tokio::test]
async fn joins_are_answered_and_room_messages_reach_only_that_rooms_members() {
    let (_server, addr) = start().await;
    let url = format!("ws://{addr}/ws/");
    let (mut alice, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut bob, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    send(&mut alice, r#"{"stream":"chat","payload":{"join":"one"}}"#).await;
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"stream":"chat","payload":{"joined":"one"}}"#
    );
    send(&mut bob, r#"{"stream":"chat","payload":{"join":"two"}}"#).await;
    assert_eq!(
        next_text(&mut bob).await,
        r#"{"stream":"chat","payload":{"joined":"two"}}"#
    );

    // Alice is in "one" and gets her own message; Bob is not in it, so the
    // first thing he gets is the later message to "two".
    send(
        &mut alice,
        r#"{"stream":"chat","payload":{"room":"one","message":{"text":"hi","n":[1,2]}}}"#,
    )
    .await;
    send(
        &mut alice,
        r#"{"stream":"chat","payload":{"room":"two","message":"to two"}}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"stream":"chat","payload":{"room":"one","message":{"text":"hi","n":[1,2]}}}"#
    );
    assert_eq!(
        next_text(&mut bob).await,
        r#"{"stream":"chat","payload":{"room":"two","message":"to two"}}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_every_round_in_order_and_server_cpu_is_reported() {
    let (server, addr) = start().await;
    let config = FanoutConfig {
        url: format!("ws://{addr}/ws/"),
        clients: 20,
        rounds: 30,
        // Several outstanding, so a server that reordered would show it.
        in_flight: 4,
        stream: "chat".into(),
        room: "bench".into(),
        sources: 1,
        timeout: Duration::from_secs(30),
        server_pid: server.id(),
        progress: false,
    };
    // A lost message fails the run (a round short of a member times out).
    let summary = fanout::run(&config).await.unwrap();
    assert_eq!(summary.reordered, 0, "{summary:?}");
    assert_eq!((summary.clients, summary.rounds), (20, 30));
    let cpu = summary
        .server_cpu_us_per_delivery
        .expect("a CPU figure with server_pid");
    assert!(cpu.is_finite() && cpu >= 0.0, "{summary:?}");
    assert!(summary.deliveries_per_sec.is_finite() && summary.deliveries_per_sec > 0.0);
    assert!(summary.p50_ms <= summary.p99_ms && summary.p99_ms <= summary.max_ms);
}
