//! The `{"stream": ..., "payload": ...}` envelope: parse without building a
//! tree, wrap without re-serialising.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde_json::value::RawValue;

use crate::ErrorCode;
use crate::error_frame::push_json_string;
use crate::object::{self, ObjectError};

/// One incoming frame, split into its stream name and the payload's raw JSON text.
///
/// Both borrow from the frame: parsing allocates only when the stream name
/// contains JSON escapes.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    stream: Cow<'a, str>,
    payload: &'a RawValue,
}

/// Why a text frame could not be read as an [`Envelope`].
///
/// Every variant maps to an [`ErrorCode`] with [`code`](EnvelopeError::code);
/// the connection stays open and the client gets an error frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The frame is not valid JSON.
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    /// The frame is valid JSON but not an object.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// The object has no `stream` field, or it is not a string.
    #[error("missing or non-string `stream` field")]
    MissingStream,
    /// The object has no `payload` field.
    #[error("missing `payload` field")]
    MissingPayload {
        /// The stream the frame named.
        stream: String,
    },
    /// A `subscribe` or `unsubscribe` whose value is not a stream name.
    #[error("`{field}` must be a stream name (a string)")]
    NotAStreamName {
        /// The field: `subscribe` or `unsubscribe`.
        field: &'static str,
    },
    /// The frame's `ref` is not a string of at most 64 characters or an
    /// integer (see [`Ref`](crate::Ref)).
    #[error("`ref` must be a string of at most 64 characters or an integer")]
    InvalidRef {
        /// The stream the frame named, if any.
        stream: Option<String>,
    },
}

impl EnvelopeError {
    /// The wire code reported to the client for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            EnvelopeError::InvalidJson(_) => ErrorCode::InvalidJson,
            EnvelopeError::NotAnObject => ErrorCode::NotAnObject,
            EnvelopeError::MissingStream | EnvelopeError::NotAStreamName { .. } => {
                ErrorCode::MissingStream
            }
            EnvelopeError::MissingPayload { .. } => ErrorCode::MissingPayload,
            EnvelopeError::InvalidRef { .. } => ErrorCode::InvalidRef,
        }
    }

    /// The stream the frame named, when it got that far.
    pub fn stream(&self) -> Option<&str> {
        match self {
            EnvelopeError::MissingPayload { stream } => Some(stream),
            EnvelopeError::InvalidRef { stream } => stream.as_deref(),
            _ => None,
        }
    }
}

impl<'a> Envelope<'a> {
    /// Reads `frame` as an envelope in a single pass.
    ///
    /// Fields other than `stream` and `payload` are ignored; when a field is
    /// repeated the last one wins (as in Python's `json`). Nesting depth inside
    /// the payload is not limited by recursion: the payload is skipped, not built.
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] saying what is wrong with the frame.
    pub fn parse(frame: &'a str) -> Result<Self, EnvelopeError> {
        let [stream, payload] = match object::fields(frame, ["stream", "payload"]) {
            Ok(fields) => fields,
            Err(ObjectError::NotAnObject) => return Err(EnvelopeError::NotAnObject),
            Err(ObjectError::Invalid(e)) => return Err(invalid_json(e)),
        };
        let stream = stream
            .and_then(object::json_str)
            .ok_or(EnvelopeError::MissingStream)?;
        let payload = payload.ok_or_else(|| EnvelopeError::MissingPayload {
            stream: stream.clone().into_owned(),
        })?;
        Ok(Envelope { stream, payload })
    }

    /// The stream name, unescaped.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The payload's JSON text exactly as it appears in the frame.
    pub fn payload(&self) -> &'a str {
        self.payload.get()
    }

    /// Where the payload sits in `frame`, the text this envelope was parsed from.
    ///
    /// Lets a caller keep the frame and hand out the payload without copying it.
    ///
    /// # Panics
    ///
    /// If `frame` is not the text this envelope was parsed from.
    pub fn payload_range(&self, frame: &str) -> Range<usize> {
        object::range_in(frame, self.payload.get())
            .expect("payload_range called with a frame other than the parsed one")
    }
}

fn invalid_json(e: serde_json::Error) -> EnvelopeError {
    EnvelopeError::InvalidJson(e.to_string())
}

/// Wraps payload JSON text into a frame for `stream`, copying the payload once.
///
/// `payload` must be valid JSON text; it is not checked or re-serialised.
/// For many frames on one stream, build a [`StreamPrefix`] once instead.
pub fn wrap(stream: &str, payload: &str) -> String {
    StreamPrefix::new(stream).wrap(payload)
}

/// The constant start of every frame on one stream, `{"stream":"<name>","payload":`,
/// built once so wrapping a payload is one allocation and two copies.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamPrefix {
    prefix: Box<str>,
}

impl StreamPrefix {
    /// Builds the prefix for `stream`, escaping the name as JSON.
    pub fn new(stream: &str) -> Self {
        let mut prefix = String::with_capacity(stream.len() + 24);
        prefix.push_str(r#"{"stream":"#);
        push_json_string(&mut prefix, stream);
        prefix.push_str(r#","payload":"#);
        StreamPrefix {
            prefix: prefix.into_boxed_str(),
        }
    }

    /// Wraps `payload` (valid JSON text, not checked) into a complete frame.
    pub fn wrap(&self, payload: &str) -> String {
        let mut frame = String::with_capacity(self.frame_len(payload));
        self.wrap_into(&mut frame, payload);
        frame
    }

    /// Appends the frame for `payload` to `out` (see [`wrap`](Self::wrap)).
    pub fn wrap_into(&self, out: &mut String, payload: &str) {
        out.push_str(&self.prefix);
        out.push_str(payload);
        out.push('}');
    }

    /// Wraps `payload` into a reply to a frame that carried `reference` (a
    /// ref's JSON text): `{"stream":"<name>","payload":<payload>,"ref":<ref>}`.
    pub fn wrap_reply(&self, payload: &str, reference: &str) -> String {
        let mut frame = String::with_capacity(self.frame_len(payload) + 7 + reference.len());
        frame.push_str(&self.prefix);
        frame.push_str(payload);
        crate::error_frame::push_ref(&mut frame, Some(reference));
        frame.push('}');
        frame
    }

    /// The length of the frame for `payload`.
    pub fn frame_len(&self, payload: &str) -> usize {
        self.prefix.len() + payload.len() + 1
    }
}

impl fmt::Debug for StreamPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StreamPrefix").field(&self.prefix).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_of(frame: &str) -> ErrorCode {
        Envelope::parse(frame).unwrap_err().code()
    }

    #[test]
    fn parses_stream_and_keeps_payload_text_exact() {
        let frame = r#" {"payload": [1.0, 1e3, 123456789012345678901234567890, "é\u00e9"], "stream": "a"} "#;
        let env = Envelope::parse(frame).unwrap();
        assert_eq!(env.stream(), "a");
        assert_eq!(
            env.payload(),
            r#"[1.0, 1e3, 123456789012345678901234567890, "é\u00e9"]"#
        );
        assert_eq!(&frame[env.payload_range(frame)], env.payload());
    }

    #[test]
    fn stream_names_with_escapes_are_unescaped() {
        let env = Envelope::parse(r#"{"stream":"a\"b\u00e9","payload":null}"#).unwrap();
        assert_eq!(env.stream(), "a\"bé");
    }

    #[test]
    fn extra_fields_are_ignored_and_last_duplicate_wins() {
        let env =
            Envelope::parse(r#"{"x":{"deep":[1]},"stream":"a","payload":1,"stream":"b"}"#).unwrap();
        assert_eq!(env.stream(), "b");
        assert_eq!(env.payload(), "1");
    }

    #[test]
    fn each_kind_of_bad_frame_gets_its_code() {
        assert_eq!(code_of("not json"), ErrorCode::InvalidJson);
        assert_eq!(code_of(""), ErrorCode::InvalidJson);
        assert_eq!(
            code_of(r#"{"stream":"a","payload":1"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code_of(r#"{"stream":"a","payload":1} x"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code_of(r#"{"stream":"a","payload":NaN}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code_of(r#"{"stream":"a","payload":Infinity}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code_of(r#"{"stream":"a","payload":-Infinity}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(code_of("[1,2"), ErrorCode::InvalidJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::NotAnObject);
        assert_eq!(code_of("\"text\""), ErrorCode::NotAnObject);
        assert_eq!(code_of("42"), ErrorCode::NotAnObject);
        assert_eq!(code_of(r#"{"payload":1}"#), ErrorCode::MissingStream);
        assert_eq!(
            code_of(r#"{"stream":7,"payload":1}"#),
            ErrorCode::MissingStream
        );
        assert_eq!(
            code_of(r#"{"stream":null,"payload":1}"#),
            ErrorCode::MissingStream
        );
        let err = Envelope::parse(r#"{"stream":"s"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MissingPayload);
        assert_eq!(err.stream(), Some("s"));
    }

    #[test]
    fn payload_nested_ten_thousand_levels_deep_parses_without_overflow() {
        let depth = 10_000;
        let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let frame = format!(r#"{{"stream":"s","payload":{payload}}}"#);
        let env = Envelope::parse(&frame).unwrap();
        assert_eq!(env.payload(), payload);
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let frame = format!(r#"{{"stream":"s","payload":{objects}}}"#);
        assert_eq!(Envelope::parse(&frame).unwrap().payload(), objects);
    }

    #[test]
    fn wrap_escapes_the_stream_name() {
        assert_eq!(wrap("a\"b", "[1]"), r#"{"stream":"a\"b","payload":[1]}"#);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(Into::into),
            any::<i64>().prop_map(Into::into),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Into::into),
            ".*".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Into::into),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn wrap_then_parse_returns_same_stream_and_identical_payload(
            stream in ".*", payload in json_value(), pretty in any::<bool>()
        ) {
            let raw = if pretty {
                serde_json::to_string_pretty(&payload).unwrap()
            } else {
                serde_json::to_string(&payload).unwrap()
            };
            let frame = wrap(&stream, &raw);
            let env = Envelope::parse(&frame).unwrap();
            prop_assert_eq!(env.stream(), stream.as_str());
            prop_assert_eq!(env.payload(), raw.as_str());
        }

        #[test]
        fn parse_never_panics(frame in ".*") {
            let _ = Envelope::parse(&frame);
        }

        #[test]
        fn parse_agrees_with_serde_json_on_validity(frame in r#"[\{\}\[\]":,a-z0-9 ]{0,40}"#) {
            let valid = serde_json::from_str::<serde_json::Value>(&frame).is_ok();
            let invalid_json = Envelope::parse(&frame)
                .is_err_and(|e| e.code() == ErrorCode::InvalidJson);
            // Both ways: valid JSON is never called invalid (it may still be
            // no envelope), invalid JSON always is.
            prop_assert_eq!(invalid_json, !valid);
        }
    }
}
