//! A consumer that errors or panics is contained (3h).

use chanmux::testing::Communicator;
use chanmux::transport::CloseFrame;
use chanmux::{Consumer, ConsumerFactory, Demultiplexer};
use serde_json::json;

use crate::support::*;

async fn failing_stream_is_closed_and_others_go_on(failing: impl ConsumerFactory) {
    trace_init();
    let demux = Demultiplexer::builder()
        .stream("bad", failing)
        .stream("echo", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());

    comm.send_json_to(&json!({"stream": "bad", "payload": 1}))
        .await;
    comm.send_json_to(&json!({"stream": "echo", "payload": 2}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": 2})
    );
    // The failed stream receives nothing more.
    comm.send_json_to(&json!({"stream": "bad", "payload": 3}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("bad"),
    );
    comm.send_json_to(&json!({"stream": "echo", "payload": 4}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": 4})
    );
}

#[tokio::test]
async fn a_panic_in_receive_closes_only_that_stream() {
    failing_stream_is_closed_and_others_go_on(|| PanicOnReceive).await;
}

#[tokio::test]
async fn an_error_in_receive_closes_only_that_stream() {
    failing_stream_is_closed_and_others_go_on(|| ErrorOnReceive).await;
}

#[tokio::test]
async fn a_panic_in_connect_of_one_stream_leaves_the_others_serving() {
    let demux = Demultiplexer::builder()
        .stream("bad", || PanicInConnect)
        .stream("echo", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "bad", "payload": 1}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("bad"),
    );
    comm.send_json_to(&json!({"stream": "echo", "payload": 2}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": 2})
    );
}

#[tokio::test]
async fn the_last_accepting_stream_failing_closes_the_socket_with_1011() {
    let demux = Demultiplexer::builder()
        .stream("bad", || PanicOnReceive)
        .stream("never", || NeverAccept)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "bad", "payload": 1}))
        .await;
    let close = comm
        .receive_close()
        .await
        .expect("a close frame with a code");
    assert_eq!(close.code, 1011);
}

#[tokio::test]
async fn a_panicking_consumer_on_one_connection_does_not_affect_another() {
    let demux = Demultiplexer::builder()
        .stream("bad", || PanicOnReceive)
        .stream("echo", || Echo)
        .build();
    let mut first = Communicator::new(demux.clone(), "/");
    let mut second = Communicator::new(demux, "/");
    assert!(first.connect().await.is_accepted());
    assert!(second.connect().await.is_accepted());
    first
        .send_json_to(&json!({"stream": "bad", "payload": 1}))
        .await;
    second
        .send_json_to(&json!({"stream": "bad", "payload": 1}))
        .await;
    second
        .send_json_to(&json!({"stream": "echo", "payload": "still here"}))
        .await;
    assert_eq!(
        second.receive_json_from().await,
        json!({"stream": "echo", "payload": "still here"})
    );
    first
        .send_json_to(&json!({"stream": "echo", "payload": "me too"}))
        .await;
    assert_eq!(
        first.receive_json_from().await,
        json!({"stream": "echo", "payload": "me too"})
    );
}

/// A consumer that owns the whole socket (no demultiplexer) and panics.
struct PanicsAlone;

impl Consumer for PanicsAlone {
    async fn receive_text(
        &mut self,
        _ctx: &chanmux::Context,
        _text: chanmux::Text,
    ) -> Result<(), chanmux::BoxError> {
        panic!("alone")
    }
}

#[tokio::test]
async fn a_top_level_consumer_that_panics_closes_its_socket_with_1011() {
    let mut comm = Communicator::new(|| PanicsAlone, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_text_to("hi").await;
    assert_eq!(
        comm.receive_close().await,
        Some(CloseFrame::new(1011, "consumer error"))
    );
}

/// Expects `{"n": <number>}`.
struct Typed;

#[derive(serde::Deserialize)]
struct Numbered {
    n: i64,
}

impl chanmux::JsonConsumer for Typed {
    type Message = Numbered;
    async fn receive_json(
        &mut self,
        ctx: &chanmux::Context,
        message: Numbered,
    ) -> Result<(), chanmux::BoxError> {
        ctx.send_json(&json!({"double": message.n * 2})).await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_payload_a_json_consumer_cannot_read_gets_invalid_json_and_the_stream_goes_on() {
    let demux = Demultiplexer::builder().stream("typed", || Typed).build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "typed", "payload": {"n": "not a number"}}))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "invalid_json",
        Some("typed"),
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    comm.send_text_to(&format!(r#"{{"stream":"typed","payload":{deep}}}"#))
        .await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "invalid_json",
        Some("typed"),
    );
    comm.send_json_to(&json!({"stream": "typed", "payload": {"n": 21}}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "typed", "payload": {"double": 42}})
    );
}

/// Waits at a gate in its handler, then replies with `?`; logs its disconnect.
struct ReplyAfterGate {
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    log: Log,
}

impl Consumer for ReplyAfterGate {
    async fn receive_text(
        &mut self,
        ctx: &chanmux::Context,
        text: chanmux::Text,
    ) -> Result<(), chanmux::BoxError> {
        ctx.send_json(&"started").await?;
        self.gate.acquire().await?.forget();
        ctx.send_text(text).await?;
        Ok(())
    }
    async fn disconnect(
        &mut self,
        _ctx: &chanmux::Context,
        code: u16,
    ) -> Result<(), chanmux::BoxError> {
        self.log.push(format!("disconnect {code}"));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_reply_that_fails_because_the_client_left_is_not_a_failure() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let log = Log::default();
    let (held, consumer_log) = (gate.clone(), log.clone());
    let demux = Demultiplexer::builder()
        .stream("s", move || ReplyAfterGate {
            gate: held.clone(),
            log: consumer_log.clone(),
        })
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_json_to(&json!({"stream": "s", "payload": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "s", "payload": "started"})
    );
    // The client leaves while the handler waits; then the handler's reply fails.
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.add_permits(1);
    });
    comm.disconnect(1000).await;
    assert_eq!(log.entries(), ["disconnect 1000"]);
}
