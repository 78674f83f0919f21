//! Payloads come back byte for byte (3l).

use chanmux::Demultiplexer;
use chanmux::testing::Communicator;

use crate::support::*;

async fn echo_raw(payload: &str) -> String {
    let demux = Demultiplexer::builder()
        .stream("echostream", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    comm.send_text_to(&format!(
        r#"{{"stream": "echostream", "payload": {payload}}}"#
    ))
    .await;
    let reply = comm.receive_text_from().await;
    let prefix = r#"{"stream":"echostream","payload":"#;
    assert!(reply.starts_with(prefix) && reply.ends_with('}'), "{reply}");
    reply[prefix.len()..reply.len() - 1].to_owned()
}

#[tokio::test]
async fn numbers_keep_their_exact_text() {
    for payload in [
        "123456789012345678901234567890123456789",
        "1e3",
        "1E+3",
        "1.0",
        "-0",
        "0.1000000000000000000000000001",
        "[1.5e-310, 2.000, -12345678901234567890.25]",
    ] {
        assert_eq!(echo_raw(payload).await, payload);
    }
}

#[tokio::test]
async fn unicode_escapes_and_whitespace_survive() {
    for payload in [
        r#""é ü 中文 😀""#,
        r#""\u00e9 \ud83d\ude00 \" \\ \n""#,
        "{ \"spaced\" :\t[ 1 ,\n 2 ] }",
        r#"{"a":1,"a":2}"#,
    ] {
        assert_eq!(echo_raw(payload).await, payload);
    }
}

#[tokio::test]
async fn payloads_nested_a_thousand_levels_deep_echo_without_overflow() {
    for depth in [1_000, 5_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(echo_raw(&arrays).await, arrays);
        let objects = format!("{}null{}", r#"{"k":"#.repeat(depth), "}".repeat(depth));
        assert_eq!(echo_raw(&objects).await, objects);
    }
}

#[tokio::test]
async fn non_json_number_tokens_are_rejected() {
    let demux = Demultiplexer::builder()
        .stream("echostream", || Echo)
        .build();
    let mut comm = Communicator::new(demux, "/");
    assert!(comm.connect().await.is_accepted());
    for token in [
        "NaN",
        "Infinity",
        "-Infinity",
        "+1",
        "01",
        "1.",
        ".5",
        "0x10",
    ] {
        comm.send_text_to(&format!(
            r#"{{"stream": "echostream", "payload": {token}}}"#
        ))
        .await;
        assert_error_frame(&comm.receive_json_from().await, "invalid_json", None);
    }
}
