//! Connect, accept, close and disconnect (3a–3f), ordering (3j) and
//! concurrency between streams.

use std::sync::Arc;
use std::time::Duration;

use chanmux::testing::{Communicator, Output};
use chanmux::transport::CloseFrame;
use chanmux::{
    BoxError, ConnectionConfig, Consumer, Context, Demultiplexer, DemultiplexerBuilder, Streams,
};
use http::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::support::*;

fn recorders(log: &Log, names: &[&'static str]) -> Demultiplexer {
    names
        .iter()
        .fold(Demultiplexer::builder(), |builder, &name| {
            let log = log.clone();
            builder.stream(name, move || Recorder {
                name,
                log: log.clone(),
            })
        })
        .build()
}

#[tokio::test]
async fn every_stream_consumer_receives_connect_and_disconnect_with_the_code() {
    let log = Log::default();
    let mut comm = Communicator::new(recorders(&log, &["a", "b", "c"]), "/");
    assert!(comm.connect().await.is_accepted());
    comm.disconnect(4321).await;
    let mut entries = log.entries();
    entries.sort();
    assert_eq!(
        entries,
        [
            "a connect",
            "a disconnect 4321",
            "b connect",
            "b disconnect 4321",
            "c connect",
            "c disconnect 4321"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_socket_is_accepted_as_soon_as_the_first_stream_accepts() {
    let gate = Arc::new(Semaphore::new(0));
    let later = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("never", || NeverAccept)
        .stream("later", move || AcceptLater {
            gate: later.clone(),
        })
        .build();
    let mut comm = Communicator::new(demux, "/");
    let opener = gate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        opener.add_permits(1);
    });
    let started = Instant::now();
    assert!(comm.connect().await.is_accepted());
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "not at the 5 s timeout"
    );
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "later", "payload": {"ready": true}})
    );
}

#[tokio::test(start_paused = true)]
async fn a_demultiplexer_without_streams_refuses_at_once_with_403() {
    let mut comm = Communicator::new(Demultiplexer::builder().build(), "/");
    let started = Instant::now();
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "nothing could accept");
}

#[tokio::test(start_paused = true)]
async fn all_streams_refusing_refuses_at_once_with_403() {
    let demux = Demultiplexer::builder()
        .stream("a", || Refuse)
        .stream("b", || Refuse)
        .build();
    let mut comm = Communicator::new(demux, "/");
    let started = Instant::now();
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no need to wait for the timeout"
    );
}

#[tokio::test]
async fn refusals_mixed_with_failures_give_403_and_failures_only_give_500() {
    let mixed = Demultiplexer::builder()
        .stream("a", || Refuse)
        .stream("b", || RaiseInConnect)
        .build();
    let mut comm = Communicator::new(mixed, "/");
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );

    let failing = Demultiplexer::builder()
        .stream("a", || RaiseInConnect)
        .stream("b", || PanicInConnect)
        .build();
    let mut comm = Communicator::new(failing, "/");
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
}

#[tokio::test(start_paused = true)]
async fn the_connect_timeout_is_configurable() {
    let demux = Demultiplexer::builder()
        .stream("never", || NeverAccept)
        .build();
    let config = ConnectionConfig::default().with_connect_timeout(Duration::from_millis(250));
    let mut comm = Communicator::new(demux, "/").config(config);
    let started = Instant::now();
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[tokio::test]
async fn frames_reach_a_stream_only_once_it_has_accepted() {
    let gate = Arc::new(Semaphore::new(0));
    let later = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("later", move || AcceptLater {
            gate: later.clone(),
        })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "later", "payload": "early"}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("later"),
    );

    gate.add_permits(1);
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "later", "payload": {"ready": true}})
    );
    comm.send_json_to(&json!({"stream": "later", "payload": "on time"}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "later", "payload": "on time"})
    );
}

#[tokio::test]
async fn the_last_stream_closing_closes_the_socket_with_its_code() {
    let demux = Demultiplexer::builder()
        .stream("closewithcode", || CloseWithCode)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "closewithcode", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closewithcode", "payload": 1})
    );
    assert_eq!(
        comm.receive_close().await,
        Some(CloseFrame::new(4001, "bye"))
    );

    let demux = Demultiplexer::builder()
        .stream("closeafterfirst", || CloseAfterFirst)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "closeafterfirst", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closeafterfirst", "payload": 1})
    );
    assert_eq!(comm.receive_close().await, Some(CloseFrame::new(1000, "")));
}

#[tokio::test]
async fn the_socket_closes_when_the_last_accepting_stream_closes_even_if_others_never_accepted() {
    let demux = Demultiplexer::builder()
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("neveraccept", || NeverAccept)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "closeafterfirst", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closeafterfirst", "payload": 1})
    );
    assert_eq!(comm.receive_close().await, Some(CloseFrame::new(1000, "")));
}

/// Closes its stream when told the client is leaving.
struct CloseOnDisconnect {
    log: Log,
}

impl Consumer for CloseOnDisconnect {
    async fn disconnect(&mut self, ctx: &Context, code: u16) -> Result<(), BoxError> {
        let outcome = ctx.close_with(4999, "late").await;
        self.log
            .push(format!("disconnect {code}, close {outcome:?}"));
        Ok(())
    }
}

/// The client is already gone, so nothing could show a close frame; what
/// this checks is that the close is accepted quietly (no error, no panic).
#[tokio::test]
async fn closing_a_stream_from_its_disconnect_handler_is_harmless() {
    let log = Log::default();
    let consumer_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("s", move || CloseOnDisconnect {
            log: consumer_log.clone(),
        })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_text_to(r#"{"stream":"s","payload":0}"#).await;
    comm.disconnect(1001).await;
    assert_eq!(log.entries(), ["disconnect 1001, close Ok(())"]);
}

#[tokio::test]
async fn frames_keep_their_order_within_each_stream_both_ways() {
    let demux = Demultiplexer::builder()
        .stream("a", || Echo)
        .stream("b", || AltEcho)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    for i in 0..200 {
        let stream = if i % 3 == 0 { "b" } else { "a" };
        comm.send_json_to(&json!({"stream": stream, "payload": i}))
            .await;
    }
    let (mut next_a, mut next_b) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let reply = comm.receive_json_from().await;
        match reply["stream"].as_str().unwrap() {
            "a" => next_a.push(reply["payload"].as_i64().unwrap()),
            _ => next_b.push(reply["payload"]["received"].as_i64().unwrap()),
        }
    }
    let expect_a: Vec<i64> = (0..200).filter(|i| i % 3 != 0).collect();
    let expect_b: Vec<i64> = (0..200).filter(|i| i % 3 == 0).collect();
    assert_eq!(next_a, expect_a);
    assert_eq!(next_b, expect_b);
}

#[tokio::test]
async fn a_slow_handler_on_one_stream_does_not_delay_another_stream() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("slow", move || Gated { gate: held.clone() })
        .stream("fast", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "slow", "payload": "x"}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "slow", "payload": {"started": "x"}})
    );
    comm.send_json_to(&json!({"stream": "fast", "payload": "y"}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "fast", "payload": "y"})
    );

    gate.add_permits(1);
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "slow", "payload": "x"})
    );
}

struct SeedDemultiplexer;

impl Streams for SeedDemultiplexer {
    fn streams(&self, builder: DemultiplexerBuilder) -> DemultiplexerBuilder {
        builder
            .stream("echostream", || Echo)
            .stream("altechostream", || AltEcho)
            .max_frame_size(1000)
    }
}

#[tokio::test]
async fn a_type_listing_its_streams_builds_the_same_demultiplexer() {
    let demux = Demultiplexer::from_streams(SeedDemultiplexer);
    assert_eq!(
        demux.stream_names().collect::<Vec<_>>(),
        ["echostream", "altechostream"]
    );
    assert_eq!(demux.config().max_frame_size, 1000);
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "altechostream", "payload": null}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "altechostream", "payload": {"received": null, "alt_value": 123}})
    );
}

#[tokio::test]
async fn a_demultiplexer_nests_inside_a_stream_of_another() {
    let inner = Demultiplexer::builder().stream("echo", || Echo).build();
    let outer = Demultiplexer::builder().stream("inner", inner).build();
    let mut comm = Communicator::new(outer, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "inner", "payload": {"stream": "echo", "payload": [1]}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "inner", "payload": {"stream": "echo", "payload": [1]}})
    );
    // Bad input for the inner demultiplexer is answered inside the outer envelope.
    comm.send_json_to(&json!({"stream": "inner", "payload": {"stream": "nope", "payload": 0}}))
        .await;
    let reply = comm.receive_json_from().await;
    assert_eq!(reply["stream"], "inner");
    assert_error_frame(&reply["payload"], "unknown_stream", Some("nope"));
}

#[tokio::test]
async fn sending_before_accepting_is_an_error_not_a_frame() {
    struct SendsEarly(Log);
    impl Consumer for SendsEarly {
        async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
            self.0.push(format!("{:?}", ctx.send_text("1").await));
            ctx.accept().await?;
            self.0.push(format!("{:?}", ctx.send_text("2").await));
            Ok(())
        }
    }
    let log = Log::default();
    let consumer_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("s", move || SendsEarly(consumer_log.clone()))
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    assert_eq!(
        comm.receive_output().await,
        Ok(Output::Text(r#"{"stream":"s","payload":2}"#.into()))
    );
    assert_eq!(log.entries(), ["Err(NotAccepted)", "Ok(())"]);
}

/// Accepts and closes straight away.
struct CloseAtOnce;

impl Consumer for CloseAtOnce {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.close_with(4002, "done").await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_close_ends_the_connection_after_the_close_timeout_if_the_client_never_answers() {
    let config = ConnectionConfig::default().with_close_timeout(Duration::from_secs(2));
    let mut comm = Communicator::new(|| CloseAtOnce, "/").config(config);
    assert!(comm.connect().await.is_accepted());
    // The client neither reads nor answers the close.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert!(!comm.is_finished(), "waits for the client's close reply");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(comm.is_finished());
    assert_eq!(
        comm.receive_close().await,
        Some(CloseFrame::new(4002, "done"))
    );
}

/// Accepts only when its gate opens, from inside connect.
struct SlowConnect {
    gate: Arc<Semaphore>,
}

impl Consumer for SlowConnect {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        self.gate.acquire().await?.forget();
        ctx.accept().await?;
        Ok(())
    }
    async fn receive_text(&mut self, ctx: &Context, text: chanmux::Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_stream_closing_while_another_is_still_connecting_does_not_close_the_socket() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("slow", move || SlowConnect { gate: held.clone() })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "closeafterfirst", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closeafterfirst", "payload": 1})
    );
    assert!(
        comm.receive_nothing().await,
        "no close while `slow` may still accept"
    );

    gate.add_permits(1);
    comm.send_json_to(&json!({"stream": "slow", "payload": 2}))
        .await;
    // Until the accept lands the frame may be refused; retry once it has.
    let mut reply = comm.receive_json_from().await;
    while reply.get("error").is_some() {
        comm.send_json_to(&json!({"stream": "slow", "payload": 2}))
            .await;
        reply = comm.receive_json_from().await;
    }
    assert_eq!(reply, json!({"stream": "slow", "payload": 2}));
}

#[tokio::test]
async fn a_deferred_close_happens_once_the_last_connecting_stream_gives_up() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("closewithcode", || CloseWithCode)
        .stream("slow", move || SlowRefuse { gate: held.clone() })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "closewithcode", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closewithcode", "payload": 1})
    );
    assert!(comm.receive_nothing().await);
    gate.add_permits(1);
    assert_eq!(
        comm.receive_close().await,
        Some(CloseFrame::new(4001, "bye"))
    );
}

/// Refuses once its gate opens.
struct SlowRefuse {
    gate: Arc<Semaphore>,
}

impl Consumer for SlowRefuse {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        self.gate.acquire().await?.forget();
        ctx.refuse();
        Ok(())
    }
}

#[tokio::test]
async fn frames_for_a_stream_still_in_connect_wait_for_it_and_arrive_once_it_accepts() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("slow", move || SlowConnect { gate: held.clone() })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    // A client may send as soon as the socket opens.
    for n in 0..3 {
        comm.send_json_to(&json!({"stream": "slow", "payload": n}))
            .await;
    }
    assert!(comm.receive_nothing().await, "held, not refused");
    gate.add_permits(1);
    for n in 0..3 {
        assert_eq!(
            comm.receive_json_from().await,
            json!({"stream": "slow", "payload": n})
        );
    }
}

#[tokio::test]
async fn frames_held_for_a_stream_that_then_refuses_are_answered_stream_not_accepting() {
    let gate = Arc::new(Semaphore::new(0));
    let held = gate.clone();
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("slow", move || SlowRefuse { gate: held.clone() })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "slow", "payload": 1}))
        .await;
    assert!(comm.receive_nothing().await);
    gate.add_permits(1);
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("slow"),
    );
    comm.send_json_to(&json!({"stream": "slow", "payload": 2}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("slow"),
    );
}

/// Lives in a connection's scope; its weak twin tells when the scope is freed.
#[derive(Clone)]
struct Tracker(#[allow(dead_code)] Arc<()>);

/// Connects, echoes once, ends the connection as `end` says, and checks
/// that the connection's state (its scope, contexts, router) is freed.
async fn state_is_freed_after(end: &str) {
    let token = Arc::new(());
    let freed = Arc::downgrade(&token);
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("never", || NeverAccept)
        .build();
    let scope = chanmux::Scope::new("/").with_extension(Tracker(token));
    let mut comm = Communicator::with_scope(demux, scope);
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "echo", "payload": 1}))
        .await;
    comm.receive_json_from().await;
    match end {
        "close" => comm.disconnect(1000).await,
        _ => comm.abort().await,
    }
    wait_until("the connection's state to be freed", || {
        freed.upgrade().is_none()
    })
    .await;
}

#[tokio::test]
async fn a_closed_connection_frees_all_its_state() {
    state_is_freed_after("close").await;
}

#[tokio::test]
async fn an_aborted_connection_frees_all_its_state() {
    state_is_freed_after("abort").await;
}
