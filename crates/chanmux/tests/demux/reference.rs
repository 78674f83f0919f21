//! The scenarios of channelsmultiplexer's own test suite, one test each.
//! Where the reference raises and kills the connection, we answer with an
//! error frame and keep going; those tests check that difference.

use std::time::Duration;

use chanmux::testing::Communicator;
use chanmux::{ConnectionConfig, Demultiplexer, PathRouter};
use http::StatusCode;
use serde_json::json;

use crate::support::*;

fn echo_demultiplexer() -> Demultiplexer {
    Demultiplexer::builder()
        .stream("echostream", || Echo)
        .stream("altechostream", || AltEcho)
        .stream("closeafterfirst", || CloseAfterFirst)
        .stream("neveraccept", || NeverAccept)
        .build()
}

#[tokio::test]
async fn stream_routing_reaches_echo_and_alt_echo() {
    let mut comm = Communicator::new(echo_demultiplexer(), "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "echostream", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": {"hello": "world"}})
    );
    comm.send_json_to(&json!({"stream": "altechostream", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "altechostream", "payload": {"alt_value": 123, "received": {"hello": "world"}}})
    );
    comm.disconnect(1000).await;
}

#[tokio::test]
async fn stream_not_listed_gets_unknown_stream_and_socket_stays_open() {
    let mut comm = Communicator::new(echo_demultiplexer(), "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "notlisted", "payload": {"hello": "world"}}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "unknown_stream",
        Some("notlisted"),
    );

    comm.send_json_to(&json!({"stream": "echostream", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": 1})
    );
}

#[tokio::test]
async fn frame_with_no_payload_gets_missing_payload_and_socket_stays_open() {
    let mut comm = Communicator::new(echo_demultiplexer(), "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "echostream", "no_payload": {"hello": "world"}}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "missing_payload",
        Some("echostream"),
    );

    comm.send_json_to(&json!({"stream": "echostream", "payload": 2}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": 2})
    );
}

#[tokio::test]
async fn close_after_first_replies_once_then_its_stream_is_silent() {
    let mut comm = Communicator::new(echo_demultiplexer(), "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "echostream", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": {"hello": "world"}})
    );
    comm.send_json_to(&json!({"stream": "closeafterfirst", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closeafterfirst", "payload": {"hello": "world"}})
    );
    assert!(
        comm.receive_nothing().await,
        "no close: echostream still accepts"
    );

    // The closed stream no longer receives; the other one still answers.
    comm.send_json_to(&json!({"stream": "closeafterfirst", "payload": 3}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("closeafterfirst"),
    );
    comm.send_json_to(&json!({"stream": "echostream", "payload": 4}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": 4})
    );
    comm.disconnect(1000).await;
}

#[tokio::test]
async fn error_in_connect_refuses_the_handshake_with_500() {
    let demux = Demultiplexer::builder()
        .stream("raiseinaccept", || RaiseInConnect)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
}

#[tokio::test(start_paused = true)]
async fn no_stream_accepting_refuses_with_403_at_the_connect_timeout() {
    let demux = Demultiplexer::builder()
        .stream("test", || NeverAccept)
        .build();
    let mut comm = Communicator::new(demux, "/");
    let started = tokio::time::Instant::now();
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "the default connect timeout"
    );
}

#[tokio::test]
async fn one_accepting_stream_is_enough_and_the_other_gets_stream_not_accepting() {
    let demux = Demultiplexer::builder()
        .stream("test", || NeverAccept)
        .stream("echo", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "echo", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": {"hello": "world"}})
    );
    comm.send_json_to(&json!({"stream": "test", "payload": {"hello": "world"}}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("test"),
    );
}

#[tokio::test(start_paused = true)]
async fn slow_disconnect_is_cut_off_at_the_close_timeout() {
    let log = Log::default();
    let consumer_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("mystream", move || SlowDisconnect {
            delay: Duration::from_secs(1),
            log: consumer_log.clone(),
        })
        .build();
    let config = ConnectionConfig::default().with_close_timeout(Duration::from_millis(100));
    let mut comm = Communicator::new(demux, "/testws/").config(config);
    assert!(comm.connect().await.is_accepted());

    let started = tokio::time::Instant::now();
    comm.disconnect(1000).await;
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert!(log.contains("sleep_start"));
    assert!(!log.contains("sleep_end"));
    // Stopped for good: it does not finish later either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!log.contains("sleep_end"));
}

#[tokio::test(start_paused = true)]
async fn fast_disconnect_is_waited_for() {
    let log = Log::default();
    let consumer_log = log.clone();
    let demux = Demultiplexer::builder()
        .stream("mystream", move || SlowDisconnect {
            delay: Duration::from_millis(10),
            log: consumer_log.clone(),
        })
        .build();
    let config = ConnectionConfig::default().with_close_timeout(Duration::from_millis(100));
    let mut comm = Communicator::new(demux, "/testws/").config(config);
    assert!(comm.connect().await.is_accepted());

    let started = tokio::time::Instant::now();
    comm.disconnect(1000).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(10),
        "returns as soon as it is done"
    );
    assert_eq!(log.entries(), ["sleep_start", "sleep_end"]);
}

fn path_routed() -> Demultiplexer {
    Demultiplexer::builder()
        .stream(
            "pathfilter",
            PathRouter::new()
                .route("echo", || Echo)
                .route("altecho", || AltEcho),
        )
        .build()
}

#[tokio::test]
async fn nested_path_router_picks_the_consumer_by_path() {
    let mut comm = Communicator::new(path_routed(), "/test");
    assert_eq!(
        comm.connect().await.refusal_status(),
        Some(StatusCode::FORBIDDEN),
        "no route"
    );

    let mut comm = Communicator::new(path_routed(), "echo");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "pathfilter", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "pathfilter", "payload": {"hello": "world"}})
    );
    comm.disconnect(1000).await;

    let mut comm = Communicator::new(path_routed(), "/altecho/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "pathfilter", "payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "pathfilter", "payload": {"alt_value": 123, "received": {"hello": "world"}}})
    );
    comm.disconnect(1000).await;
}

#[tokio::test]
async fn a_stream_without_a_route_is_refused_while_others_serve() {
    let demux = Demultiplexer::builder()
        .stream("pathfilter", PathRouter::new().route("echo", || Echo))
        .stream("plain", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/elsewhere/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "pathfilter", "payload": 1}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("pathfilter"),
    );
    comm.send_json_to(&json!({"stream": "plain", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "plain", "payload": 1})
    );
}
