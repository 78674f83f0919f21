//! Streams on demand (PROTOCOL.md): subscribe and unsubscribe, patterns,
//! lazy streams, the implicit subscribe, `closed`, refs, ping, limits and
//! the socket's lifetime.

use chanmux::testing::Communicator;
use chanmux::{BoxError, Consumer, Context, Demultiplexer, ErrorCode, Text};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

/// Logs its lifecycle; refuses or fails as its params say, else accepts;
/// replies `{"got": <payload>, "id": <capture>}` to every frame (with the
/// frame's ref).
struct Probe {
    log: Log,
}

#[derive(Deserialize, Default)]
struct ProbeParams {
    refuse: Option<String>,
    #[serde(default)]
    fail: bool,
}

impl Consumer for Probe {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        let params: ProbeParams = ctx.params()?.unwrap_or_default();
        let stream = ctx.stream().unwrap_or_default();
        self.log.push(format!(
            "connect {stream} id={:?} params={:?}",
            ctx.capture("id"),
            ctx.raw_params()
        ));
        if params.fail {
            return Err("told to fail".into());
        }
        match params.refuse {
            Some(reason) => ctx.refuse_with(reason),
            None => ctx.accept().await?,
        }
        Ok(())
    }

    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        let reply = json!({"got": text.value()?, "id": ctx.capture("id")});
        ctx.reply(&reply).await?;
        Ok(())
    }

    async fn disconnect(&mut self, ctx: &Context, code: u16) -> Result<(), BoxError> {
        let stream = ctx.stream().unwrap_or_default();
        self.log.push(format!("disconnect {stream} {code}"));
        Ok(())
    }
}

fn probes(log: &Log) -> Demultiplexer {
    let (a, b) = (log.clone(), log.clone());
    Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("closeafterfirst", || CloseAfterFirst)
        .pattern("room:{id}", move || Probe { log: a.clone() })
        .lazy_stream("lazy", move || Probe { log: b.clone() })
        .build()
}

async fn connected(demux: Demultiplexer) -> Communicator {
    let mut comm = Communicator::new(demux, "/ws/");
    assert!(comm.connect().await.is_accepted());
    comm
}

#[tokio::test]
async fn a_pattern_stream_starts_on_subscribe_with_its_captures_and_params() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_text_to(r#"{"subscribe": "room:42", "params": {"x": [1, 2.50]}, "ref": "s1"}"#)
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"subscribed": "room:42", "ref": "s1"})
    );
    assert_eq!(
        log.entries(),
        [r#"connect room:42 id=Some("42") params=Some("{\"x\": [1, 2.50]}")"#]
    );
    comm.send_with_ref("room:42", &json!("hi"), 7).await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "room:42", "payload": {"got": "hi", "id": "42"}, "ref": 7})
    );
    // Each name has its own consumer.
    assert_eq!(comm.subscribe("room:43", None).await, Ok(()));
    comm.send_to("room:43", &1).await;
    assert_eq!(
        comm.receive_from("room:43").await,
        json!({"got": 1, "id": "43"})
    );
}

#[tokio::test]
async fn unsubscribing_stops_the_consumer_then_answers_and_a_second_time_is_not_subscribed() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    assert_eq!(comm.subscribe("room:1", None).await, Ok(()));
    comm.send_json_to(&json!({"unsubscribe": "room:1", "ref": 9}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"unsubscribed": "room:1", "ref": 9})
    );
    wait_until("the consumer's disconnect", || {
        log.contains("disconnect room:1 1000")
    })
    .await;
    let error = comm.unsubscribe("room:1").await.unwrap_err();
    assert_eq!(error["error"]["code"], "not_subscribed");
    assert_eq!(error["stream"], "room:1");
    // Unknown names cannot be unsubscribed from either.
    let error = comm.unsubscribe("nope").await.unwrap_err();
    assert_eq!(error["error"]["code"], "not_subscribed");
}

#[tokio::test]
async fn subscribing_twice_is_refused_and_unknown_names_are_unknown() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    assert_eq!(comm.subscribe("room:1", None).await, Ok(()));
    let error = comm.subscribe("room:1", None).await.unwrap_err();
    assert_eq!(error["error"]["code"], "already_subscribed");
    for name in ["nope", "room:", "room:1:2", "room:a b"] {
        let error = comm.subscribe(name, None).await.unwrap_err();
        assert_eq!(error["error"]["code"], "unknown_stream", "{name}");
        assert_eq!(error["stream"], name);
    }
    // Still one consumer for room:1.
    assert_eq!(log.entries().len(), 1);
}

#[tokio::test]
async fn a_refusal_answers_subscription_refused_with_the_reason_and_the_ref() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_json_to(
        &json!({"subscribe": "room:vip", "params": {"refuse": "members only"}, "ref": "r"}),
    )
    .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "subscription_refused", "message": "members only"}, "stream": "room:vip", "ref": "r"})
    );
    wait_until("the refused consumer's disconnect", || {
        log.contains("disconnect room:vip 1006")
    })
    .await;
    let error = comm
        .subscribe("room:broken", Some(json!({"fail": true})))
        .await
        .unwrap_err();
    assert_eq!(error["error"]["code"], "subscription_refused");
    assert_eq!(
        error["error"]["message"],
        "stream \"room:broken\" failed to start"
    );
    wait_until("the failed consumer's disconnect", || {
        log.contains("disconnect room:broken 1011")
    })
    .await;
    // A refused name can be tried again.
    assert_eq!(comm.subscribe("room:vip", None).await, Ok(()));
}

#[tokio::test]
async fn a_data_frame_starts_a_pattern_or_lazy_stream_without_subscribing_it() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_to("room:x", &"first").await;
    comm.send_to("lazy", &"first").await;
    // Delivered once the consumers accept, with no subscribed frame.
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "room:x", "payload": {"got": "first", "id": "x"}})
    );
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "lazy", "payload": {"got": "first", "id": null}})
    );
    // Subscribing now joins the running stream.
    assert_eq!(comm.subscribe("room:x", None).await, Ok(()));
    assert_eq!(
        log.entries().len(),
        2,
        "no second consumer: {:?}",
        log.entries()
    );
}

/// Refuses with a reason, for the implicit subscribe.
struct Doorman;

impl Consumer for Doorman {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.refuse_with("closed today");
        Ok(())
    }
}

#[tokio::test]
async fn frames_that_started_a_stream_which_refuses_are_answered_subscription_refused() {
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .pattern("shop:{id}", || Doorman)
        .build();
    let mut comm = connected(demux).await;
    comm.send_with_ref("shop:1", &1, "a").await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "subscription_refused", "message": "closed today"}, "stream": "shop:1", "ref": "a"})
    );
    comm.send_to("shop:1", &2).await;
    let frame = comm.receive_json_from().await;
    assert_error_frame(&frame, "subscription_refused", Some("shop:1"));
}

#[tokio::test]
async fn an_eager_stream_subscribed_to_reports_its_close_and_starts_afresh_when_subscribed_again() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    assert_eq!(comm.subscribe("closeafterfirst", None).await, Ok(()));
    comm.send_to("closeafterfirst", &1).await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "closeafterfirst", "payload": 1})
    );
    assert_eq!(
        comm.receive_json_from().await,
        json!({"closed": "closeafterfirst", "code": 1000, "reason": ""})
    );
    // Not running: a frame is refused as in version 1...
    comm.send_to("closeafterfirst", &2).await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("closeafterfirst"),
    );
    // ...and a subscribe starts a fresh consumer, which echoes once more.
    assert_eq!(comm.subscribe("closeafterfirst", None).await, Ok(()));
    comm.send_to("closeafterfirst", &3).await;
    assert_eq!(comm.receive_from("closeafterfirst").await, json!(3));
    assert_eq!(
        comm.receive_json_from().await,
        json!({"closed": "closeafterfirst", "code": 1000, "reason": ""})
    );
    // The socket stays open: this demultiplexer has lazy streams.
    comm.send_to("echo", &4).await;
    assert_eq!(comm.receive_from("echo").await, json!(4));
}

#[tokio::test]
async fn a_client_that_did_not_subscribe_hears_no_closed_frame() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_to("closeafterfirst", &1).await;
    assert_eq!(comm.receive_from("closeafterfirst").await, json!(1));
    assert!(comm.receive_nothing().await);
}

/// Fails on its first frame.
struct Fragile;

impl Consumer for Fragile {
    async fn receive_text(&mut self, _ctx: &Context, _text: Text) -> Result<(), BoxError> {
        Err("broke".into())
    }
}

#[tokio::test]
async fn a_subscribed_stream_that_fails_is_closed_with_1011() {
    let demux = Demultiplexer::builder()
        .pattern("fragile:{id}", || Fragile)
        .build();
    let mut comm = connected(demux).await;
    assert_eq!(comm.subscribe("fragile:1", None).await, Ok(()));
    comm.send_to("fragile:1", &1).await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"closed": "fragile:1", "code": 1011, "reason": "consumer error"})
    );
}

#[tokio::test]
async fn an_eager_stream_can_be_unsubscribed_and_subscribed_again() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    // Unsubscribing a running stream stops it, subscribed or not.
    assert_eq!(comm.unsubscribe("echo").await, Ok(()));
    comm.send_to("echo", &1).await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_not_accepting",
        Some("echo"),
    );
    assert_eq!(comm.subscribe("echo", None).await, Ok(()));
    comm.send_to("echo", &2).await;
    assert_eq!(comm.receive_from("echo").await, json!(2));
}

#[tokio::test]
async fn without_eager_streams_the_socket_opens_at_once_and_outlives_its_streams() {
    let demux = Demultiplexer::builder()
        .pattern("close:{id}", || CloseAfterFirst)
        .build();
    let mut comm = connected(demux).await;
    comm.send_to("close:1", &"x").await;
    assert_eq!(comm.receive_from("close:1").await, json!("x"));
    // The only stream closed; the socket stays, for new subscriptions.
    comm.send_json_to(&json!({"ping": 1})).await;
    assert_eq!(comm.receive_json_from().await, json!({"pong": 1}));
    assert_eq!(comm.subscribe("close:2", None).await, Ok(()));
}

#[tokio::test]
async fn without_lazy_streams_the_last_close_still_closes_the_socket() {
    let demux = Demultiplexer::builder()
        .stream("closeafterfirst", || CloseAfterFirst)
        .build();
    let mut comm = connected(demux).await;
    assert_eq!(comm.subscribe("closeafterfirst", None).await, Ok(()));
    comm.send_to("closeafterfirst", &1).await;
    assert_eq!(comm.receive_from("closeafterfirst").await, json!(1));
    assert_eq!(
        comm.receive_json_from().await,
        json!({"closed": "closeafterfirst", "code": 1000, "reason": ""})
    );
    assert_eq!(
        comm.receive_close().await,
        Some(chanmux::transport::CloseFrame::new(1000, ""))
    );
}

#[tokio::test]
async fn streams_the_client_starts_are_limited_and_a_stopped_one_frees_its_place() {
    let log = Log::default();
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .pattern("room:{id}", {
            let log = log.clone();
            move || Probe { log: log.clone() }
        })
        .max_streams(3)
        .build();
    let mut comm = connected(demux).await;
    for id in 1..=3 {
        assert_eq!(comm.subscribe(&format!("room:{id}"), None).await, Ok(()));
    }
    let error = comm.subscribe("room:4", None).await.unwrap_err();
    assert_eq!(error["error"]["code"], "too_many_streams");
    // The implicit subscribe counts too.
    comm.send_with_ref("room:5", &1, 5).await;
    let frame = comm.receive_json_from().await;
    assert_eq!(frame["error"]["code"], "too_many_streams");
    assert_eq!(frame["ref"], 5);
    assert_eq!(comm.unsubscribe("room:1").await, Ok(()));
    wait_until("room:1 to end", || log.contains("disconnect room:1 1000")).await;
    assert_eq!(comm.subscribe("room:4", None).await, Ok(()));
}

#[tokio::test]
async fn the_default_limit_is_128_streams_started_by_the_client() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    for id in 1..=128 {
        assert_eq!(comm.subscribe(&format!("room:{id}"), None).await, Ok(()));
    }
    let error = comm.subscribe("room:129", None).await.unwrap_err();
    assert_eq!(error["error"]["code"], "too_many_streams");
}

#[tokio::test]
async fn params_over_the_limit_are_refused() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    let big = "x".repeat(4096);
    let error = comm
        .subscribe("room:1", Some(json!({"big": big})))
        .await
        .unwrap_err();
    assert_eq!(error["error"]["code"], "frame_too_large");
    assert!(log.entries().is_empty());
}

#[tokio::test]
async fn ping_is_answered_with_the_same_json() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_text_to(r#"{"ping": {"t": 1.50, "n": [1e3]}}"#)
        .await;
    assert_eq!(
        comm.receive_text_from().await,
        r#"{"pong":{"t": 1.50, "n": [1e3]}}"#
    );
    comm.send_text_to(r#"{"ping": 42}"#).await;
    assert_eq!(comm.receive_json_from().await, json!({"pong": 42}));
}

#[tokio::test]
async fn refs_come_back_on_replies_and_errors_and_only_when_sent() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_to("room:1", &1).await;
    let reply = comm.receive_json_from().await;
    assert!(reply.get("ref").is_none(), "{reply}");
    comm.send_with_ref("nope", &1, "why").await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "unknown_stream", "message": "no stream named \"nope\""}, "stream": "nope", "ref": "why"})
    );
    // A bad frame keeps its ref; a bad ref is refused without one.
    comm.send_text_to(r#"{"stream": "echo", "ref": 3}"#).await;
    let frame = comm.receive_json_from().await;
    assert_eq!(
        (&frame["error"]["code"], &frame["ref"]),
        (&json!("missing_payload"), &json!(3))
    );
    for bad in [
        r#"1.5"#,
        r#"{"a":1}"#,
        r#"null"#,
        &format!("\"{}\"", "r".repeat(65)),
    ] {
        comm.send_text_to(&format!(
            r#"{{"stream": "echo", "payload": 1, "ref": {bad}}}"#
        ))
        .await;
        let frame = comm.receive_json_from().await;
        assert_error_frame(&frame, "invalid_ref", Some("echo"));
    }
    // A consumer's plain send carries no ref; its reply does.
    comm.send_with_ref("echo", &1, 11).await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echo", "payload": 1})
    );
}

/// Rejects every payload with `send_error` and an application code.
struct Strict;

impl Consumer for Strict {
    async fn receive_text(&mut self, ctx: &Context, _text: Text) -> Result<(), BoxError> {
        ctx.send_error(ErrorCode::StreamOverloaded, "busy").await?;
        ctx.send_app_error("room_full", "no seats left").await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_consumers_error_frames_carry_the_ref_of_the_frame_it_handles() {
    let demux = Demultiplexer::builder().stream("s", || Strict).build();
    let mut comm = connected(demux).await;
    comm.send_with_ref("s", &1, "q").await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "stream_overloaded", "message": "busy"}, "stream": "s", "ref": "q"})
    );
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "room_full", "message": "no seats left"}, "stream": "s", "ref": "q"})
    );
    comm.send_to("s", &1).await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "stream_overloaded",
        Some("s"),
    );
    assert_error_frame(&comm.receive_json_from().await, "room_full", Some("s"));
}

/// Sends a greeting as soon as it accepts.
struct Greeter;

impl Consumer for Greeter {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.accept().await?;
        ctx.send_json(&"hello").await?;
        Ok(())
    }
}

#[tokio::test]
async fn subscribed_comes_before_anything_the_stream_sends() {
    let demux = Demultiplexer::builder()
        .pattern("greet:{id}", || Greeter)
        .build();
    let mut comm = connected(demux).await;
    comm.send_json_to(&json!({"subscribe": "greet:1"})).await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"subscribed": "greet:1"})
    );
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "greet:1", "payload": "hello"})
    );
}

#[tokio::test]
async fn a_version_1_client_sees_only_version_1_frames() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_to("room:1", &1).await;
    comm.send_to("closeafterfirst", &2).await;
    comm.send_to("echo", &3).await;
    let mut frames = Vec::new();
    while let Ok(chanmux::testing::Output::Text(text)) = comm.receive_output().await {
        frames.push(serde_json::from_str::<Value>(&text).unwrap());
        if frames.len() == 3 {
            break;
        }
    }
    assert_eq!(frames.len(), 3, "{frames:?}");
    for frame in &frames {
        let keys: Vec<&String> = frame.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["payload", "stream"], "{frame}");
    }
    assert!(comm.receive_nothing().await);
}

#[tokio::test]
async fn a_subscribe_to_a_stream_that_never_decides_is_refused_at_the_subscribe_timeout() {
    let demux = Demultiplexer::builder()
        .stream("echo", || Echo)
        .stream("neveraccept", || NeverAccept)
        .pattern("undecided:{id}", || NeverAccept)
        .subscribe_timeout(std::time::Duration::from_millis(200))
        .build();
    let mut comm = connected(demux).await;
    // Started by the subscribe: refused, and the stream is gone.
    comm.send_json_to(&json!({"subscribe": "undecided:1", "ref": 1}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "subscription_refused", "message": "stream \"undecided:1\" did not accept within 0.2 s"}, "stream": "undecided:1", "ref": 1})
    );
    assert_eq!(
        comm.unsubscribe("undecided:1").await.unwrap_err()["error"]["code"],
        "not_subscribed"
    );
    // Started at connect: the subscribe is refused, the stream runs on, and
    // the client may subscribe again.
    comm.send_json_to(&json!({"subscribe": "neveraccept", "ref": 2}))
        .await;
    let refused = comm.receive_json_from().await;
    assert_eq!(
        (&refused["error"]["code"], &refused["ref"]),
        (&json!("subscription_refused"), &json!(2))
    );
    comm.send_json_to(&json!({"subscribe": "neveraccept", "ref": 3}))
        .await;
    assert_eq!(comm.receive_json_from().await["ref"], 3);
}

#[tokio::test]
async fn unsubscribing_before_the_stream_decides_answers_the_subscribe_too() {
    let demux = Demultiplexer::builder()
        .pattern("undecided:{id}", || NeverAccept)
        .build();
    let mut comm = connected(demux).await;
    comm.send_json_to(&json!({"subscribe": "undecided:1", "ref": "s"}))
        .await;
    comm.send_json_to(&json!({"unsubscribe": "undecided:1", "ref": "u"}))
        .await;
    let refused = comm.receive_json_from().await;
    assert_eq!(
        (&refused["error"]["code"], &refused["ref"]),
        (&json!("subscription_refused"), &json!("s"))
    );
    assert_eq!(
        comm.receive_json_from().await,
        json!({"unsubscribed": "undecided:1", "ref": "u"})
    );
    assert!(comm.receive_nothing().await);
}

#[tokio::test]
async fn a_control_frame_without_a_stream_name_says_which_field_is_wrong() {
    let log = Log::default();
    let mut comm = connected(probes(&log)).await;
    comm.send_json_to(&json!({"subscribe": null, "ref": 4}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"error": {"code": "missing_stream", "message": "`subscribe` must be a stream name (a string)"}, "stream": null, "ref": 4})
    );
}
