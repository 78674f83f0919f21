//! Every frame a client may send (PROTOCOL.md): data frames, and version
//! 2's `subscribe`, `unsubscribe` and `ping`, read in one pass.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

use crate::envelope::EnvelopeError;
use crate::object::{self, ObjectError};

/// The longest `ref` string, in characters.
pub const MAX_REF_CHARS: usize = 64;

/// One frame from the client.
///
/// Borrows from the frame's text; a stream name is copied only when it
/// contains JSON escapes.
#[derive(Debug, Clone)]
pub enum ClientFrame<'a> {
    /// `{"stream": S, "payload": P, "ref": R?}`: a payload for a stream.
    Data {
        /// The stream named.
        stream: Cow<'a, str>,
        /// The payload's JSON text, exactly as sent.
        payload: &'a str,
        /// The ref's JSON text, when the frame had one (checked, see [`Ref`]).
        reference: Option<&'a str>,
    },
    /// `{"subscribe": S, "params": P?, "ref": R?}`.
    Subscribe {
        /// The stream to start or join.
        stream: Cow<'a, str>,
        /// The params' JSON text, when given.
        params: Option<&'a str>,
        /// The ref's JSON text, when given.
        reference: Option<&'a str>,
    },
    /// `{"unsubscribe": S, "ref": R?}`.
    Unsubscribe {
        /// The stream to stop.
        stream: Cow<'a, str>,
        /// The ref's JSON text, when given.
        reference: Option<&'a str>,
    },
    /// `{"ping": X}`: answered with `{"pong": X}`.
    Ping {
        /// X's JSON text, exactly as sent.
        value: &'a str,
    },
}

/// A frame that could not be read, with the ref to answer it with (when the
/// frame carried a valid one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<'a> {
    /// What is wrong with the frame.
    pub error: EnvelopeError,
    /// The frame's ref, when it had a valid one.
    pub reference: Option<&'a str>,
}

/// The fields of a data frame, read first: most frames are data frames,
/// and fewer fields make a cheaper pass.
const DATA_FIELDS: [&str; 3] = ["stream", "payload", "ref"];

/// The fields of the other frames, read when a frame has no `stream`.
const CONTROL_FIELDS: [&str; 5] = ["subscribe", "unsubscribe", "params", "ping", "ref"];

impl<'a> ClientFrame<'a> {
    /// Reads `frame`. A frame with a `stream` key is a data frame whatever
    /// else it holds (version 1's rules apply to it); otherwise the first of
    /// `subscribe`, `unsubscribe` and `ping` that it has decides; with none of
    /// them it is a data frame without a stream (`missing_stream`).
    ///
    /// # Errors
    ///
    /// A [`Rejected`] saying what is wrong, with the frame's ref when valid.
    pub fn parse(frame: &'a str) -> Result<Self, Rejected<'a>> {
        let [stream, payload, reference] = read(frame, DATA_FIELDS)?;
        if let Some(stream) = stream {
            let reference = check_ref(reference, || Some(stream))?;
            let with_ref = |error| Rejected { error, reference };
            let stream =
                object::json_str(stream).ok_or_else(|| with_ref(EnvelopeError::MissingStream))?;
            let payload = payload.ok_or_else(|| {
                with_ref(EnvelopeError::MissingPayload {
                    stream: stream.clone().into_owned(),
                })
            })?;
            return Ok(ClientFrame::Data {
                stream,
                payload: payload.get(),
                reference,
            });
        }
        // Not a data frame: a second pass for the other kinds.
        let [subscribe, unsubscribe, params, ping, reference] = read(frame, CONTROL_FIELDS)?;
        let reference = check_ref(reference, || subscribe.or(unsubscribe))?;
        let with_ref = |error| Rejected { error, reference };
        let name = |raw: &'a RawValue, field| {
            object::json_str(raw).ok_or_else(|| with_ref(EnvelopeError::NotAStreamName { field }))
        };
        if let Some(raw) = subscribe {
            return Ok(ClientFrame::Subscribe {
                stream: name(raw, "subscribe")?,
                params: params.map(RawValue::get),
                reference,
            });
        }
        if let Some(raw) = unsubscribe {
            return Ok(ClientFrame::Unsubscribe {
                stream: name(raw, "unsubscribe")?,
                reference,
            });
        }
        match ping {
            Some(value) => Ok(ClientFrame::Ping { value: value.get() }),
            None => Err(with_ref(EnvelopeError::MissingStream)),
        }
    }

    /// For a data frame, where its payload sits in `frame`, the text it was
    /// parsed from (so the payload can be handed on without a copy).
    ///
    /// # Panics
    ///
    /// If `frame` is not the text this was parsed from.
    pub fn payload_range(&self, frame: &str) -> Option<Range<usize>> {
        match self {
            ClientFrame::Data { payload, .. } => Some(
                object::range_in(frame, payload)
                    .expect("payload_range called with a frame other than the parsed one"),
            ),
            _ => None,
        }
    }
}

/// Reads the raw values of `names` from `frame`, refusing what is not a
/// JSON object.
fn read<'a, const N: usize>(
    frame: &'a str,
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], Rejected<'a>> {
    object::fields(frame, names).map_err(|e| match e {
        ObjectError::NotAnObject => rejected(EnvelopeError::NotAnObject),
        ObjectError::Invalid(e) => rejected(EnvelopeError::InvalidJson(e.to_string())),
    })
}

/// The ref's JSON text if it is valid (or absent); else the rejection,
/// naming the stream the frame named (`named`), so the client can tell
/// which request it was.
fn check_ref<'a>(
    reference: Option<&'a RawValue>,
    named: impl FnOnce() -> Option<&'a RawValue>,
) -> Result<Option<&'a str>, Rejected<'a>> {
    match reference {
        None => Ok(None),
        Some(raw) if Ref::is_valid(raw.get()) => Ok(Some(raw.get())),
        Some(_) => {
            let stream = named().and_then(object::json_str).map(Cow::into_owned);
            Err(rejected(EnvelopeError::InvalidRef { stream }))
        }
    }
}

fn rejected<'a>(error: EnvelopeError) -> Rejected<'a> {
    Rejected {
        error,
        reference: None,
    }
}

/// A client's `ref`: the JSON text of a string of at most [`MAX_REF_CHARS`]
/// characters or of an integer (one that fits `i64` or `u64`), kept as sent
/// and echoed back verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ref(Box<str>);

impl Ref {
    /// Checks and keeps `json`, a ref's JSON text.
    pub fn new(json: &str) -> Option<Self> {
        Ref::is_valid(json).then(|| Ref(json.into()))
    }

    /// Keeps the ref of a frame that [`ClientFrame::parse`] accepted, which
    /// has checked it already (checking again costs a second pass over it).
    pub fn from_parsed(json: &str) -> Self {
        debug_assert!(
            Ref::is_valid(json),
            "not a ref ClientFrame::parse accepted: {json}"
        );
        Ref(json.into())
    }

    /// Whether `json` (valid JSON text) is an acceptable ref.
    pub fn is_valid(json: &str) -> bool {
        if json.starts_with('"') {
            let Ok(text) = serde_json::from_str::<Cow<'_, str>>(json) else {
                return false;
            };
            text.chars().nth(MAX_REF_CHARS).is_none()
        } else {
            json.parse::<i64>().is_ok() || json.parse::<u64>().is_ok()
        }
    }

    /// The ref's JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn error(frame: &str) -> (ErrorCode, Option<&str>) {
        let rejected = ClientFrame::parse(frame).unwrap_err();
        (rejected.error.code(), rejected.reference)
    }

    #[test]
    fn a_version_1_frame_reads_as_before() {
        let frame = r#"{"stream":"a","payload":{"x":[1e3]}}"#;
        let ClientFrame::Data {
            stream,
            payload,
            reference,
        } = ClientFrame::parse(frame).unwrap()
        else {
            panic!("not a data frame")
        };
        assert_eq!(
            (&*stream, payload, reference),
            ("a", r#"{"x":[1e3]}"#, None)
        );
    }

    #[test]
    fn a_stream_key_makes_a_data_frame_whatever_else_it_holds() {
        let frame = r#"{"subscribe":"x","stream":"a","payload":1,"ping":2}"#;
        assert!(matches!(
            ClientFrame::parse(frame).unwrap(),
            ClientFrame::Data { stream, .. } if stream == "a"
        ));
        // Version 1's rules still apply to it.
        assert_eq!(
            error(r#"{"stream":1,"subscribe":"x"}"#).0,
            ErrorCode::MissingStream
        );
        assert_eq!(
            error(r#"{"stream":"a","subscribe":"x"}"#).0,
            ErrorCode::MissingPayload
        );
    }

    #[test]
    fn control_frames_are_read_with_their_params_and_refs() {
        let frame = r#"{"subscribe":"ticker:ACME","params":{"interval_ms":100},"ref":"r1"}"#;
        let ClientFrame::Subscribe {
            stream,
            params,
            reference,
        } = ClientFrame::parse(frame).unwrap()
        else {
            panic!("not a subscribe")
        };
        assert_eq!(stream, "ticker:ACME");
        assert_eq!(params, Some(r#"{"interval_ms":100}"#));
        assert_eq!(reference, Some(r#""r1""#));
        assert!(matches!(
            ClientFrame::parse(r#"{"unsubscribe":"a","ref":7}"#).unwrap(),
            ClientFrame::Unsubscribe { stream, reference: Some("7") } if stream == "a"
        ));
        assert!(matches!(
            ClientFrame::parse(r#"{"ping":{"t": 1.50}}"#).unwrap(),
            ClientFrame::Ping {
                value: r#"{"t": 1.50}"#
            }
        ));
        // Subscribe comes before unsubscribe, which comes before ping.
        assert!(matches!(
            ClientFrame::parse(r#"{"ping":1,"unsubscribe":"u","subscribe":"s"}"#).unwrap(),
            ClientFrame::Subscribe { stream, .. } if stream == "s"
        ));
    }

    #[test]
    fn a_control_frame_naming_no_string_is_missing_its_stream_and_keeps_its_ref() {
        assert_eq!(
            error(r#"{"subscribe":5,"ref":1}"#),
            (ErrorCode::MissingStream, Some("1"))
        );
        assert_eq!(
            error(r#"{"unsubscribe":null}"#),
            (ErrorCode::MissingStream, None)
        );
        let rejected = ClientFrame::parse(r#"{"subscribe":null}"#).unwrap_err();
        assert_eq!(
            rejected.error.to_string(),
            "`subscribe` must be a stream name (a string)"
        );
        assert_eq!(error(r#"{"ref":2}"#), (ErrorCode::MissingStream, Some("2")));
    }

    #[test]
    fn refs_are_short_strings_or_integers() {
        let longest = format!(r#""{}""#, "é".repeat(MAX_REF_CHARS));
        for good in [
            "0",
            "-12",
            "18446744073709551615",
            r#""""#,
            &longest,
            r#""\u00e9""#,
        ] {
            assert!(Ref::is_valid(good), "{good}");
        }
        let too_long = format!(r#""{}""#, "a".repeat(MAX_REF_CHARS + 1));
        for bad in [
            "1.5",
            "1e3",
            "18446744073709551616",
            "null",
            "true",
            "[1]",
            "{}",
            &too_long,
        ] {
            assert!(!Ref::is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_ref_is_refused_naming_the_stream() {
        let rejected = ClientFrame::parse(r#"{"stream":"s","payload":1,"ref":[1]}"#).unwrap_err();
        assert_eq!(rejected.error.code(), ErrorCode::InvalidRef);
        assert_eq!(rejected.error.stream(), Some("s"));
        assert_eq!(rejected.reference, None);
        assert_eq!(
            error(r#"{"subscribe":"s","ref":1.5}"#).0,
            ErrorCode::InvalidRef
        );
    }

    #[test]
    fn the_payload_range_points_into_the_frame() {
        let frame = r#"{"ref":1,"stream":"a","payload":[1, 2]}"#;
        let parsed = ClientFrame::parse(frame).unwrap();
        assert_eq!(&frame[parsed.payload_range(frame).unwrap()], "[1, 2]");
    }
}
