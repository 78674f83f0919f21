//! [`Text`]: a text message that can be a zero-copy slice of a received frame.

use std::fmt;

use serde::de::DeserializeOwned;

/// The text of a message, in or out.
///
/// A payload handed to a stream consumer is a slice of the frame it arrived
/// in: no copy and no parse beyond finding its bounds. Call
/// [`as_str`](Text::as_str) for the raw JSON text, or [`json`](Text::json) /
/// [`value`](Text::value) to parse it when you need a value.
#[derive(Clone)]
pub struct Text {
    buf: Buf,
    start: usize,
    end: usize,
    /// Known to be one valid JSON value, so wrapping it needs no check.
    json: bool,
}

#[derive(Clone)]
enum Buf {
    Owned(String),
    /// A broadcast frame, shared by every recipient (UTF-8, from a `str`).
    Frame(bytes::Bytes),
    /// A received message, as the WebSocket library read it.
    #[cfg(feature = "axum")]
    Received(tungstenite::Utf8Bytes),
}

impl Text {
    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        let all = match &self.buf {
            Buf::Owned(s) => s.as_str(),
            // Only tests and rare paths read an outgoing frame's text; the
            // socket takes its bytes as they are (`into_received`).
            Buf::Frame(b) => std::str::from_utf8(b).expect("a frame is built from a str"),
            #[cfg(feature = "axum")]
            Buf::Received(b) => b.as_str(),
        };
        &all[self.start..self.end]
    }

    /// The length of the whole buffer this text is a slice of: what it keeps
    /// alive.
    pub(crate) fn held_len(&self) -> usize {
        match &self.buf {
            Buf::Owned(s) => s.len(),
            Buf::Frame(b) => b.len(),
            #[cfg(feature = "axum")]
            Buf::Received(b) => b.as_str().len(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Parses the text as JSON into `T`.
    ///
    /// # Errors
    ///
    /// When the text is not valid JSON for `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// Parses the text into a [`serde_json::Value`].
    ///
    /// # Errors
    ///
    /// When the text is not valid JSON (or nests deeper than serde_json's
    /// recursion limit of 128; raw text has no such limit).
    pub fn value(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.json()
    }

    /// Turns the text into a `String`, copying only when it is a slice.
    pub fn into_string(self) -> String {
        match self.buf {
            Buf::Owned(mut s) if self.start == 0 => {
                s.truncate(self.end);
                s
            }
            _ => self.as_str().to_owned(),
        }
    }

    /// Text known to hold exactly one valid JSON value.
    pub(crate) fn known_json(s: String) -> Self {
        let end = s.len();
        Text {
            buf: Buf::Owned(s),
            start: 0,
            end,
            json: true,
        }
    }

    /// A broadcast frame's shared bytes (a [`Message::frame_bytes`]): a
    /// recipient costs a reference count until its socket writes it.
    ///
    /// [`Message::frame_bytes`]: chanmux_core::Message::frame_bytes
    pub(crate) fn frame(bytes: bytes::Bytes) -> Self {
        Text {
            start: 0,
            end: bytes.len(),
            buf: Buf::Frame(bytes),
            json: true,
        }
    }

    /// The sub-slice `range` of this text, known to hold one JSON value.
    pub(crate) fn json_slice(self, range: std::ops::Range<usize>) -> Self {
        Text {
            buf: self.buf,
            start: self.start + range.start,
            end: self.start + range.end,
            json: true,
        }
    }

    pub(crate) fn is_known_json(&self) -> bool {
        self.json
    }

    /// To the WebSocket library's type without copying the text: the
    /// received buffer (or a slice of it), the owned string, or a shared
    /// broadcast frame (each recipient bumps its reference count, and the
    /// library checks it is UTF-8).
    #[cfg(feature = "axum")]
    pub(crate) fn into_received(self) -> tungstenite::Utf8Bytes {
        use bytes::Bytes;
        use tungstenite::Utf8Bytes;
        let whole = self.start == 0 && self.end == self.held_len();
        let (start, end) = (self.start, self.end);
        let bytes = match self.buf {
            Buf::Received(bytes) if whole => return bytes,
            Buf::Owned(_) => return self.into_string().into(),
            Buf::Received(bytes) => Bytes::from(bytes),
            Buf::Frame(bytes) => bytes,
        };
        let bytes = if whole {
            bytes
        } else {
            bytes.slice(start..end)
        };
        // A slice on char boundaries of UTF-8 text (as_str already relies on
        // it); the check is the price of a safe conversion, not a copy.
        Utf8Bytes::try_from(bytes).expect("a str slice is UTF-8")
    }

    #[cfg(feature = "axum")]
    pub(crate) fn from_received(bytes: tungstenite::Utf8Bytes) -> Self {
        let end = bytes.as_str().len();
        Text {
            buf: Buf::Received(bytes),
            start: 0,
            end,
            json: false,
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        let end = s.len();
        Text {
            buf: Buf::Owned(s),
            start: 0,
            end,
            json: false,
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::from(s.to_owned())
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    // Never print message contents: they may be large or private.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Text").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_slice_reads_its_range_and_copies_only_when_sliced() {
        let frame = Text::from(r#"{"payload":[1,2]}"#.to_owned());
        let payload = frame.json_slice(11..16);
        assert_eq!(payload, "[1,2]");
        assert!(payload.is_known_json());
        assert_eq!(payload.value().unwrap(), serde_json::json!([1, 2]));
        assert_eq!(payload.into_string(), "[1,2]");
        assert_eq!(Text::from("whole").into_string(), "whole");
    }

    #[cfg(feature = "axum")]
    #[test]
    fn every_kind_of_text_converts_to_the_socket_type_with_its_exact_contents() {
        let message = chanmux_core::Message::frame("s", r#""é""#);
        let frame = Text::frame(message.frame_bytes().unwrap());
        assert_eq!(frame.as_str(), r#"{"stream":"s","payload":"é"}"#);
        assert_eq!(
            frame.into_received().as_str(),
            r#"{"stream":"s","payload":"é"}"#
        );
        let received = Text::from_received(r#"{"payload":[1,"é"]}"#.into());
        assert_eq!(
            received.clone().json_slice(11..19).into_received().as_str(),
            r#"[1,"é"]"#
        );
        assert_eq!(received.into_received().as_str(), r#"{"payload":[1,"é"]}"#);
        assert_eq!(Text::from("owned").into_received().as_str(), "owned");
    }
}
