//! Error frames: what the client gets instead of a dropped connection.

use std::fmt;

/// Why a frame from the client was not delivered to a consumer.
///
/// Each code is sent to the client in an error frame (see [`error_frame`]);
/// its [`as_str`](ErrorCode::as_str) form is the wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not valid JSON (including `NaN`, `Infinity` and trailing text).
    InvalidJson,
    /// The frame is valid JSON but not an object.
    NotAnObject,
    /// The object has no `stream` field, or it is not a string.
    MissingStream,
    /// The object has no `payload` field.
    MissingPayload,
    /// No consumer is registered under that stream name.
    UnknownStream,
    /// The stream exists but its consumer has not accepted, or has closed.
    StreamNotAccepting,
    /// A binary frame arrived; the multiplexed protocol carries text only.
    BinaryNotSupported,
    /// The frame is larger than the configured maximum; it was not parsed.
    FrameTooLarge,
    /// The stream's inbound queue is full; this frame was dropped.
    StreamOverloaded,
    /// The connection sent frames faster than its rate limit; this frame
    /// was dropped.
    RateLimited,
    /// The frame's `ref` is neither a string of at most [`MAX_REF_CHARS`](crate::MAX_REF_CHARS)
    /// characters nor an integer; the frame was not acted on.
    InvalidRef,
    /// The stream's consumer refused to start (the message is its reason).
    SubscriptionRefused,
    /// A `subscribe` named a stream this client is already subscribed to.
    AlreadySubscribed,
    /// An `unsubscribe` named a stream that is not running.
    NotSubscribed,
    /// Starting the stream would take the connection over its limit of
    /// streams started by the client.
    TooManyStreams,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidJson,
        ErrorCode::NotAnObject,
        ErrorCode::MissingStream,
        ErrorCode::MissingPayload,
        ErrorCode::UnknownStream,
        ErrorCode::StreamNotAccepting,
        ErrorCode::BinaryNotSupported,
        ErrorCode::FrameTooLarge,
        ErrorCode::StreamOverloaded,
        ErrorCode::RateLimited,
        ErrorCode::InvalidRef,
        ErrorCode::SubscriptionRefused,
        ErrorCode::AlreadySubscribed,
        ErrorCode::NotSubscribed,
        ErrorCode::TooManyStreams,
    ];

    /// The code as it appears on the wire, e.g. `"invalid_json"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::MissingStream => "missing_stream",
            ErrorCode::MissingPayload => "missing_payload",
            ErrorCode::UnknownStream => "unknown_stream",
            ErrorCode::StreamNotAccepting => "stream_not_accepting",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::StreamOverloaded => "stream_overloaded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidRef => "invalid_ref",
            ErrorCode::SubscriptionRefused => "subscription_refused",
            ErrorCode::AlreadySubscribed => "already_subscribed",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::TooManyStreams => "too_many_streams",
        }
    }

    /// The protocol's code spelled `code`, if there is one.
    pub fn from_wire(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stream names longer than this (in bytes) are never echoed back: an error
/// frame about one has `"stream": null`, so a client cannot make the server
/// repeat a megabyte-long name.
pub const MAX_ECHOED_NAME: usize = 255;

/// Builds the error frame sent to the client:
/// `{"error": {"code": "<code>", "message": "<text>"}, "stream": <name or null>}`.
///
/// The frame has no `payload` key, so a client can tell it from data. A
/// stream name over [`MAX_ECHOED_NAME`] bytes is written as `null`.
///
/// ```
/// use chanmux_core::{ErrorCode, error_frame};
/// let frame = error_frame(ErrorCode::UnknownStream, "no such stream", Some("nope"));
/// assert_eq!(
///     frame,
///     r#"{"error":{"code":"unknown_stream","message":"no such stream"},"stream":"nope"}"#
/// );
/// ```
pub fn error_frame(code: ErrorCode, message: &str, stream: Option<&str>) -> String {
    error_frame_with(code.as_str(), message, stream, None)
}

/// As [`error_frame`], with any code (the protocol's, or an application's
/// checked by [`AppCode`]) and the `ref` of the frame that caused it, as the
/// JSON text the client sent: `{"error": {...}, "stream": ..., "ref": <ref>}`.
pub fn error_frame_with(
    code: &str,
    message: &str,
    stream: Option<&str>,
    reference: Option<&str>,
) -> String {
    let stream = stream.filter(|name| name.len() <= MAX_ECHOED_NAME);
    let mut out = String::with_capacity(
        64 + message.len() + stream.map_or(4, str::len) + reference.map_or(0, str::len),
    );
    out.push_str(r#"{"error":{"code":""#);
    out.push_str(code);
    out.push_str(r#"","message":"#);
    push_json_string(&mut out, message);
    out.push_str(r#"},"stream":"#);
    match stream {
        Some(name) => push_json_string(&mut out, name),
        None => out.push_str("null"),
    }
    push_ref(&mut out, reference);
    out.push('}');
    out
}

/// Appends `,"ref":<reference>` when there is one.
pub(crate) fn push_ref(out: &mut String, reference: Option<&str>) {
    if let Some(reference) = reference {
        out.push_str(r#","ref":"#);
        out.push_str(reference);
    }
}

/// An error code chosen by an application: lower snake case (`[a-z0-9_]`,
/// starting with a letter, 1–64 bytes), and never one of the protocol's
/// [`ErrorCode`]s, so a client can always tell the two apart.
///
/// ```
/// use chanmux_core::AppCode;
/// assert!(AppCode::new("room_full").is_ok());
/// assert!(AppCode::new("Room-Full").is_err());
/// assert!(AppCode::new("unknown_stream").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppCode(Box<str>);

/// Why a string is not an [`AppCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppCodeError {
    /// Empty, longer than 64 bytes, or not lower snake case.
    #[error(
        "application error code {0:?} is not lower snake case of 1-64 bytes starting with a letter"
    )]
    Malformed(String),
    /// One of the protocol's own codes.
    #[error("{0:?} is a protocol error code; choose another")]
    Reserved(String),
}

impl AppCode {
    /// Checks `code`.
    ///
    /// # Errors
    ///
    /// See [`AppCodeError`].
    pub fn new(code: &str) -> Result<Self, AppCodeError> {
        let well_formed = (1..=64).contains(&code.len())
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            return Err(AppCodeError::Malformed(code.to_owned()));
        }
        if ErrorCode::from_wire(code).is_some() {
            return Err(AppCodeError::Reserved(code.to_owned()));
        }
        Ok(AppCode(code.into()))
    }

    /// The code as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Appends `s` as a JSON string literal (quoted and escaped).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping cannot fail when writing a `str` into a `String`.
    let quoted = serde_json::to_string(s).expect("serialising a str cannot fail");
    out.push_str(&quoted);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_frame_is_valid_json_with_the_documented_shape() {
        for code in ErrorCode::ALL {
            for stream in [None, Some("a\"b\\c\u{1F600}")] {
                let frame = error_frame(code, "line\nbreak \"quoted\"", stream);
                let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
                let object = value.as_object().unwrap();
                assert_eq!(object.len(), 2, "only `error` and `stream`: {frame}");
                assert_eq!(value["error"]["code"], code.as_str());
                assert_eq!(value["error"]["message"], "line\nbreak \"quoted\"");
                assert_eq!(
                    value["stream"],
                    stream.map_or(serde_json::Value::Null, Into::into)
                );
            }
        }
    }

    #[test]
    fn long_stream_names_are_not_echoed() {
        let longest = "s".repeat(MAX_ECHOED_NAME);
        let frame = error_frame(ErrorCode::UnknownStream, "m", Some(&longest));
        assert!(
            frame.ends_with(&format!(r#""stream":"{longest}"}}"#)),
            "{frame}"
        );
        let over = "s".repeat(MAX_ECHOED_NAME + 1);
        let frame = error_frame(ErrorCode::UnknownStream, "m", Some(&over));
        assert!(frame.ends_with(r#""stream":null}"#), "{frame}");
    }

    #[test]
    fn wire_codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate {s}");
        }
    }
}
