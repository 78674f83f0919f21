//! Invalid frames get an error frame and lose nothing else (3g, 3k); strict
//! mode closes with 1008 instead.

use chanmux::Demultiplexer;
use chanmux::testing::Communicator;
use chanmux::transport::CloseFrame;
use serde_json::json;

use crate::support::*;

fn demux() -> Demultiplexer {
    Demultiplexer::builder()
        .stream("echostream", || Echo)
        .stream("neveraccept", || NeverAccept)
        .max_frame_size(1024)
        .build()
}

/// Each bad frame with the code and stream it must get back.
const BAD_FRAMES: &[(&str, &str, Option<&str>)] = &[
    ("not json", "invalid_json", None),
    (
        r#"{"stream": "echostream", "payload": NaN}"#,
        "invalid_json",
        None,
    ),
    (
        r#"{"stream": "echostream", "payload": Infinity}"#,
        "invalid_json",
        None,
    ),
    (
        r#"{"stream": "echostream", "payload": 1} trailing"#,
        "invalid_json",
        None,
    ),
    ("[1, 2, 3]", "not_an_object", None),
    ("\"just a string\"", "not_an_object", None),
    (r#"{"payload": 1}"#, "missing_stream", None),
    (r#"{"stream": 5, "payload": 1}"#, "missing_stream", None),
    (
        r#"{"stream": "echostream"}"#,
        "missing_payload",
        Some("echostream"),
    ),
    (
        r#"{"stream": "nope", "payload": 1}"#,
        "unknown_stream",
        Some("nope"),
    ),
    (
        r#"{"stream": "neveraccept", "payload": 1}"#,
        "stream_not_accepting",
        Some("neveraccept"),
    ),
];

#[tokio::test]
async fn every_invalid_frame_gets_its_error_frame_and_the_socket_stays_open() {
    let mut comm = Communicator::new(demux(), "/");
    assert!(comm.connect().await.is_accepted());
    for &(frame, code, stream) in BAD_FRAMES {
        comm.send_text_to(frame).await;
        assert_error_frame(&comm.receive_json_from().await, code, stream);
        // Nothing was lost: the good stream still answers at once.
        comm.send_json_to(&json!({"stream": "echostream", "payload": frame}))
            .await;
        assert_eq!(
            comm.receive_json_from().await,
            json!({"stream": "echostream", "payload": frame})
        );
    }
}

#[tokio::test]
async fn binary_frames_get_binary_not_supported() {
    let mut comm = Communicator::new(demux(), "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_binary_to(&b"\x00\x01"[..]).await;
    assert_error_frame(
        &comm.receive_json_from().await,
        "binary_not_supported",
        None,
    );
    comm.send_json_to(&json!({"stream": "echostream", "payload": true}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": true})
    );
}

#[tokio::test]
async fn frames_over_the_size_limit_get_frame_too_large_without_being_parsed() {
    let mut comm = Communicator::new(demux(), "/");
    assert!(comm.connect().await.is_accepted());
    let at_limit = format!(
        r#"{{"stream":"echostream","payload":"{}"}}"#,
        "a".repeat(1024 - 36)
    );
    assert_eq!(at_limit.len(), 1024);
    comm.send_text_to(&at_limit).await;
    assert_eq!(comm.receive_text_from().await, at_limit);

    // One byte more, and not even JSON: the size is checked before parsing.
    let over = format!("{}x", "{".repeat(1024));
    comm.send_text_to(&over).await;
    let reply = comm.receive_json_from().await;
    assert_error_frame(&reply, "frame_too_large", None);
    assert!(reply["error"]["message"].as_str().unwrap().contains("1025"));
    comm.send_json_to(&json!({"stream": "echostream", "payload": 0}))
        .await;
    assert_eq!(
        comm.receive_json_from().await,
        json!({"stream": "echostream", "payload": 0})
    );
}

#[tokio::test]
async fn the_default_size_limit_is_one_mebibyte() {
    let demux = Demultiplexer::builder()
        .stream("echostream", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    let payload = format!("\"{}\"", "b".repeat(1024 * 1024));
    comm.send_text_to(&format!(r#"{{"stream":"echostream","payload":{payload}}}"#))
        .await;
    assert_error_frame(&comm.receive_json_from().await, "frame_too_large", None);
}

#[tokio::test]
async fn strict_mode_closes_with_1008_and_the_code_as_reason() {
    for &(frame, code, _) in BAD_FRAMES {
        let demux = Demultiplexer::builder()
            .stream("echostream", || Echo)
            .stream("neveraccept", || NeverAccept)
            .strict(true)
            .build();
        let mut comm = Communicator::new(demux, "/");
        assert!(comm.connect().await.is_accepted());
        comm.send_text_to(frame).await;
        assert_eq!(
            comm.receive_close().await,
            Some(CloseFrame::new(1008, code)),
            "{frame}"
        );
    }
}

/// One frame a client might send, good or bad.
#[derive(Debug, Clone)]
enum Sent {
    Echo(serde_json::Value),
    Text(&'static str),
    Binary,
    Oversized,
}

fn sent() -> impl proptest::strategy::Strategy<Value = Sent> {
    use proptest::prelude::*;
    let payload = prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        prop::collection::vec(any::<bool>(), 0..4).prop_map(serde_json::Value::from),
    ];
    prop_oneof![
        4 => payload.prop_map(Sent::Echo),
        4 => prop::sample::select(BAD_FRAMES.iter().map(|(frame, _, _)| *frame).collect::<Vec<_>>()).prop_map(Sent::Text),
        1 => Just(Sent::Binary),
        1 => Just(Sent::Oversized),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever mix of frames arrives, each gets exactly one answer — its
    /// echo or an error frame — in order, and the socket stays open.
    #[test]
    fn every_frame_of_any_mix_gets_exactly_one_answer_in_order(frames in proptest::collection::vec(sent(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let mut comm = Communicator::new(demux(), "/");
            assert!(comm.connect().await.is_accepted());
            for frame in &frames {
                match frame {
                    Sent::Echo(payload) => comm.send_json_to(&json!({"stream": "echostream", "payload": payload})).await,
                    Sent::Text(text) => comm.send_text_to(text).await,
                    Sent::Binary => comm.send_binary_to(&b"\x00"[..]).await,
                    Sent::Oversized => comm.send_text_to(&"x".repeat(2000)).await,
                }
            }
            for frame in &frames {
                let reply = comm.receive_json_from().await;
                match frame {
                    Sent::Echo(payload) => assert_eq!(reply, json!({"stream": "echostream", "payload": payload})),
                    Sent::Text(text) => {
                        let code = BAD_FRAMES.iter().find(|(f, _, _)| f == text).unwrap().1;
                        assert_eq!(reply["error"]["code"], code, "{text}");
                    }
                    Sent::Binary => assert_eq!(reply["error"]["code"], "binary_not_supported"),
                    Sent::Oversized => assert_eq!(reply["error"]["code"], "frame_too_large"),
                }
            }
            assert!(comm.receive_nothing().await);
            comm.disconnect(1000).await;
        });
    }
}
