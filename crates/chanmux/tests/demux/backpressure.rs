//! Streams on demand while the client is slow to read (a full outbound
//! queue), and nested demultiplexers as on-demand streams: the cases a
//! review found hanging or lost.

use std::time::Duration;

use chanmux::testing::{Communicator, Output};
use chanmux::transport::CloseFrame;
use chanmux::{BoxError, Consumer, Context, Demultiplexer, Text};
use serde_json::json;

use crate::support::*;

/// Sends ten frames for each one it gets.
struct Flood;

impl Consumer for Flood {
    async fn receive_text(&mut self, ctx: &Context, _text: Text) -> Result<(), BoxError> {
        for i in 0..10 {
            ctx.send_json(&i).await?;
        }
        Ok(())
    }
}

/// Accepts and does nothing else.
struct Quiet;

impl Consumer for Quiet {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_while_the_accept_waits_for_room_does_not_stall_the_connection() {
    let demux = Demultiplexer::builder()
        .stream("flood", || Flood)
        .pattern("room:{id}", || Quiet)
        .build();
    let mut comm = slow_reader(demux, 2);
    assert!(comm.connect().await.is_accepted());
    // The outbound queue fills and the client reads nothing yet, so the
    // room's `subscribed` waits for room while its accept is in progress.
    comm.send_to("flood", &1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    comm.send_json_to(&json!({"subscribe": "room:1", "ref": "s"}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    comm.send_json_to(&json!({"unsubscribe": "room:1", "ref": "u"}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    comm.send_json_to(&json!({"ping": 7})).await;
    let got = drain(&mut comm).await;
    assert!(
        got.iter().any(|frame| frame == r#"{"pong":7}"#),
        "the connection stalled: {got:?}"
    );
    assert!(
        got.iter()
            .any(|frame| frame.contains(r#""unsubscribed":"room:1""#)),
        "{got:?}"
    );
}

/// Sends three frames, then closes its stream.
struct SendThenClose;

impl Consumer for SendThenClose {
    async fn receive_text(&mut self, ctx: &Context, _text: Text) -> Result<(), BoxError> {
        for i in 0..3 {
            ctx.send_json(&i).await?;
        }
        ctx.close().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_stream_closing_while_the_client_is_slow_still_closes_the_socket() {
    let demux = Demultiplexer::builder()
        .stream("s", || SendThenClose)
        .build();
    let mut comm = slow_reader(demux, 1);
    assert!(comm.connect().await.is_accepted());
    comm.send_to("s", &1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = drain(&mut comm).await;
    let close = format!("{:?}", Output::Close(Some(CloseFrame::new(1000, ""))));
    assert_eq!(got.last(), Some(&close), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_stream_closing_while_the_client_is_slow_still_sends_closed() {
    let demux = Demultiplexer::builder()
        .pattern("s:{id}", || SendThenClose)
        .build();
    let mut comm = slow_reader(demux, 1);
    assert!(comm.connect().await.is_accepted());
    assert_eq!(comm.subscribe("s:1", None).await, Ok(()));
    comm.send_to("s:1", &1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = drain(&mut comm).await;
    assert_eq!(
        got.last().map(String::as_str),
        Some(r#"{"closed":"s:1","code":1000,"reason":""}"#),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_nested_demultiplexer_that_refuses_answers_the_subscribe_and_frees_its_place() {
    let inner = Demultiplexer::builder().stream("x", || Refuse).build();
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .lazy_stream("inner", inner)
        .max_streams(1)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    for _ in 0..3 {
        let refused = comm.subscribe("inner", None).await.unwrap_err();
        assert_eq!(
            refused["error"]["code"], "subscription_refused",
            "{refused}"
        );
    }
    let started = std::time::Instant::now();
    comm.disconnect(1000).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "teardown waited for the close timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn long_names_are_never_echoed_in_answers_to_control_frames() {
    let demux = Demultiplexer::builder()
        .pattern("room:{id}", || Quiet)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    let name = "\"".repeat(100_000);
    for frame in [
        json!({"subscribe": name}),
        json!({"unsubscribe": name}),
        json!({"stream": name, "payload": 1}),
    ] {
        comm.send_json_to(&frame).await;
        let error = comm.receive_json_from().await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.len() < 100, "{message}");
        assert_eq!(error["stream"], serde_json::Value::Null);
    }
}

/// Never decides: frames for it wait in its queue.
struct Undecided;

impl Consumer for Undecided {
    async fn connect(&mut self, _ctx: &Context) -> Result<(), BoxError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_connections_streams_share_one_budget_of_queued_bytes() {
    let demux = Demultiplexer::builder()
        .pattern("hold:{id}", || Undecided)
        .max_queued_bytes(1000)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    let payload = "x".repeat(400);
    for id in 1..=2 {
        comm.send_to(&format!("hold:{id}"), &payload).await;
    }
    assert!(comm.receive_nothing().await, "two frames fit");
    // A third stream's queue is empty, but the connection's budget is not.
    comm.send_to("hold:3", &payload).await;
    let error = comm.receive_json_from().await;
    assert_error_frame(&error, "stream_overloaded", Some("hold:3"));
}
