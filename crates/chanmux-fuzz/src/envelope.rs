//! `Envelope::parse`, `ClientFrame::parse` and `wrap` against serde_json as
//! the oracle.

use chanmux_core::{ClientFrame, Envelope, EnvelopeError, ErrorCode, MAX_REF_CHARS, wrap};
use serde_json::{Map, Value};

use crate::json::read_json;

/// Parses `data` (read as UTF-8, invalid sequences replaced) as a frame and
/// checks the result against serde_json's reading of the same text (into a
/// `Value` without `Value`'s raw-value key; see `json::read_json`).
///
/// - `Envelope::parse` never panics.
/// - It accepts exactly the JSON objects with a string `stream` and a
///   `payload`; when it accepts, the stream name and the payload (parsed)
///   equal serde_json's values of those fields, the last of repeated fields
///   winning, and the payload is a slice of the frame (`payload_range`).
/// - Otherwise its error code is the first that applies of `invalid_json`,
///   `not_an_object`, `missing_stream`, `missing_payload` (with the stream).
/// - `wrap(stream, payload)` is valid JSON that parses back to the same
///   stream and the identical payload text.
/// - `ClientFrame::parse` (what the server routes by, PROTOCOL.md) never
///   panics and classifies the frame as the protocol says: a bad `ref`
///   first, then data, subscribe, unsubscribe or ping, each read as
///   serde_json reads it.
///
/// serde_json's `Value` reader stops at nesting depth 128, at numbers out of
/// `f64` range and at `\u` escapes of unpaired surrogates; all are allowed
/// by the JSON grammar, and the parser skips the payload without those
/// limits. For such texts (where serde_json's error says so)
/// only the checks that need no oracle run: no panic, and the wrap round trip.
///
/// # Panics
///
/// When an invariant breaks.
pub fn envelope(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let parsed = Envelope::parse(text);
    let oracle = match read_json(text) {
        Ok(value) => Some(Ok(value)),
        Err(e) if beyond_oracle(&e) => None,
        Err(e) => Some(Err(e)),
    };
    if let Ok(env) = &parsed {
        check_payload_slice(text, env);
        check_wrap_round_trip(env.stream(), env.payload());
    }
    let frame = ClientFrame::parse(text);
    let Some(oracle) = oracle else {
        return;
    };
    check_client_frame(text, &frame, &oracle);
    match (parsed, oracle) {
        (Ok(env), Ok(value)) => {
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("accepted a non-object: {text:?}"));
            assert_eq!(
                object.get("stream").and_then(Value::as_str),
                Some(env.stream()),
                "stream differs from serde_json's: {text:?}"
            );
            let payload = read_json(env.payload()).unwrap_or_else(|e| {
                panic!("payload {:?} is not JSON ({e}): {text:?}", env.payload())
            });
            assert_eq!(
                Some(&payload),
                object.get("payload"),
                "payload differs from serde_json's: {text:?}"
            );
        }
        (Ok(env), Err(e)) => panic!(
            "accepted (stream {:?}) what serde_json rejects ({e}): {text:?}",
            env.stream()
        ),
        (Err(err), Ok(value)) => check_rejection(text, &err, &value),
        (Err(err), Err(e)) => assert_eq!(
            err.code(),
            ErrorCode::InvalidJson,
            "serde_json rejects ({e}) but the parser says {err:?}: {text:?}"
        ),
    }
}

/// Whether serde_json rejected text the JSON grammar allows, for a limit of
/// its own (see [`envelope`]).
pub(crate) fn beyond_oracle(e: &serde_json::Error) -> bool {
    let message = e.to_string();
    [
        "recursion limit exceeded",
        "number out of range",
        // A `\uD800`-style escape without its pair: grammatical JSON (Python
        // reads it), but not a Rust string.
        "lone leading surrogate in hex escape",
        "unexpected end of hex escape",
        "invalid unicode code point",
    ]
    .iter()
    .any(|limit| message.contains(limit))
}

/// A rejected frame that serde_json reads as `value`: the error must be the
/// first of the envelope's conditions that `value` fails.
fn check_rejection(text: &str, err: &EnvelopeError, value: &Value) {
    let (code, stream) = match value.as_object() {
        None => (ErrorCode::NotAnObject, None),
        Some(object) => match object.get("stream").and_then(Value::as_str) {
            None => (ErrorCode::MissingStream, None),
            Some(stream) => {
                assert!(
                    !object.contains_key("payload"),
                    "rejected a valid envelope ({err:?}): {text:?}"
                );
                (ErrorCode::MissingPayload, Some(stream))
            }
        },
    };
    assert_eq!(err.code(), code, "wrong code ({err:?}): {text:?}");
    assert_eq!(err.stream(), stream, "wrong stream in {err:?}: {text:?}");
}

/// `ClientFrame::parse` against serde_json's reading: a bad `ref` is
/// refused first; then a frame with a `stream` key is a data frame (version
/// 1's rules), else the first of `subscribe`, `unsubscribe`, `ping` decides;
/// what it reads equals serde_json's values.
fn check_client_frame(
    text: &str,
    frame: &Result<ClientFrame<'_>, chanmux_core::Rejected<'_>>,
    oracle: &Result<Value, serde_json::Error>,
) {
    let code = |code: ErrorCode| match frame {
        Err(rejected) => assert_eq!(rejected.error.code(), code, "{text:?}"),
        Ok(frame) => panic!("accepted as {frame:?} what should be {code}: {text:?}"),
    };
    let Ok(value) = oracle else {
        return code(ErrorCode::InvalidJson);
    };
    let Some(object) = value.as_object() else {
        return code(ErrorCode::NotAnObject);
    };
    let json = |raw: &str| read_json(raw).ok();
    let reference = object.get("ref");
    let ref_ok = ref_is_valid(text, object);
    if !ref_ok {
        return code(ErrorCode::InvalidRef);
    }
    let name = |key: &str| object.get(key).and_then(Value::as_str);
    let same_ref = |got: &Option<&str>| {
        assert_eq!(
            got.and_then(json).as_ref(),
            reference,
            "ref differs: {text:?}"
        );
    };
    let kind = ["stream", "subscribe", "unsubscribe", "ping"]
        .into_iter()
        .find(|key| object.contains_key(*key));
    match (kind, frame) {
        (Some("stream") | None, _) if name("stream").is_none() => code(ErrorCode::MissingStream),
        (Some("stream"), _) if !object.contains_key("payload") => code(ErrorCode::MissingPayload),
        (Some("subscribe" | "unsubscribe"), _) if name(kind.unwrap()).is_none() => {
            code(ErrorCode::MissingStream);
        }
        (
            Some("stream"),
            Ok(ClientFrame::Data {
                stream,
                payload,
                reference: got,
            }),
        ) => {
            assert_eq!(Some(&**stream), name("stream"), "{text:?}");
            assert_eq!(json(payload).as_ref(), object.get("payload"), "{text:?}");
            same_ref(got);
        }
        (
            Some("subscribe"),
            Ok(ClientFrame::Subscribe {
                stream,
                params,
                reference: got,
            }),
        ) => {
            assert_eq!(Some(&**stream), name("subscribe"), "{text:?}");
            assert_eq!(
                params.and_then(json).as_ref(),
                object.get("params"),
                "{text:?}"
            );
            same_ref(got);
        }
        (
            Some("unsubscribe"),
            Ok(ClientFrame::Unsubscribe {
                stream,
                reference: got,
            }),
        ) => {
            assert_eq!(Some(&**stream), name("unsubscribe"), "{text:?}");
            same_ref(got);
        }
        (Some("ping"), Ok(ClientFrame::Ping { value })) => {
            assert_eq!(json(value).as_ref(), object.get("ping"), "{text:?}");
        }
        (kind, frame) => panic!("{kind:?} frame read as {frame:?}: {text:?}"),
    }
}

/// Whether the frame's `ref` (if any) is one PROTOCOL.md allows: a string
/// of at most 64 characters, or an integer. An integer is judged by its
/// text: `-0` is one, though serde_json reads it as a float.
pub(crate) fn ref_is_valid(text: &str, object: &Map<String, Value>) -> bool {
    match (object.get("ref"), raw_ref(text)) {
        (None, _) => true,
        (Some(Value::String(s)), _) => s.chars().count() <= MAX_REF_CHARS,
        (Some(Value::Number(_)), Some(raw)) => {
            let digits = raw.strip_prefix('-').unwrap_or(&raw);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (raw.parse::<i64>().is_ok() || raw.parse::<u64>().is_ok())
        }
        (Some(Value::Number(n)), None) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// The JSON text of the frame's last `ref`, as serde_json reads the object
/// (`None` when it cannot: the checks then fall back to its value).
fn raw_ref(text: &str) -> Option<String> {
    use serde_json::value::RawValue;
    let fields: std::collections::BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).ok()?;
    fields.get("ref").map(|raw| raw.get().to_owned())
}

/// The payload is the frame's own text, with no surrounding whitespace.
fn check_payload_slice(text: &str, env: &Envelope<'_>) {
    let payload = env.payload();
    assert_eq!(&text[env.payload_range(text)], payload);
    assert!(
        !payload.is_empty() && payload.trim() == payload,
        "payload {payload:?} is empty or padded: {text:?}"
    );
}

/// `wrap` gives valid JSON that parses back to the same stream and payload.
fn check_wrap_round_trip(stream: &str, payload: &str) {
    let frame = wrap(stream, payload);
    let again = Envelope::parse(&frame)
        .unwrap_or_else(|e| panic!("wrapped frame does not parse ({e}): {frame:?}"));
    assert_eq!(again.stream(), stream, "wrapped stream: {frame:?}");
    assert_eq!(again.payload(), payload, "wrapped payload: {frame:?}");
    match read_json(&frame) {
        Ok(value) => {
            assert_eq!(value["stream"].as_str(), Some(stream), "{frame:?}");
            let object = value.as_object().expect("wrap gives an object");
            assert_eq!(object.len(), 2, "wrap gives exactly two fields: {frame:?}");
        }
        Err(e) => assert!(
            beyond_oracle(&e),
            "wrapped frame is not JSON ({e}): {frame:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::envelope;

    #[test]
    fn accepts_and_rejects_the_documented_examples() {
        for frame in [
            r#"{"stream":"echo","payload":{"a":[1,2.5,"x"]}}"#,
            r#" {"payload":null,"x":1,"stream":"a\u00e9"} "#,
            r#"{"stream":"a","payload":1,"stream":"b","payload":[2]}"#,
            r#"{"stream":"a","payload":1e400}"#,
            r#"{"stream":"s"}"#,
            r#"{"payload":1}"#,
            "[1]",
            "not json",
            "",
            "{\"stream\":\"\u{fffd}\",\"payload\":\"\\ud800\"}",
            r#"{"streyload":{"$serde_json::private::RawValue":true}}"#,
            r#"{"stream":"a","payload":{"$serde_json::private::RawValue":"[1]"}}"#,
            r#"{"subscribe":"room:1","params":{"a":1},"ref":"r"}"#,
            r#"{"unsubscribe":"room:1","ref":-3}"#,
            r#"{"ping":[1.50],"unsubscribe":5}"#,
            r#"{"ping":1,"stream":"s","payload":2,"ref":18446744073709551615}"#,
            r#"{"subscribe":"a","ref":1.0}"#,
            r#"{"ref":"x"}"#,
            r#"{"ref":-0,"d":{}}"#,
            r#"{"stream":"s","payload":1,"ref":-0}"#,
        ] {
            envelope(frame.as_bytes());
        }
        let deep = format!(
            r#"{{"stream":"s","payload":{}{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        envelope(deep.as_bytes());
        envelope(&[0xff, b'{', 0xfe]);
    }
}
