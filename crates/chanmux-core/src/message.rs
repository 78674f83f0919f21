//! [`Message`]: what travels on a channel layer.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StreamPrefix;
use crate::object::{self, ObjectError};

/// The `type` of a message that carries a ready-made frame for clients.
pub const FRAME_TYPE: &str = "chanmux.frame";

/// A message on a channel layer: one JSON object with a string `type` field.
///
/// Serialised once and shared: cloning is a reference-count bump, so a group
/// send hands every recipient the same text. Read it with
/// [`message_type`](Message::message_type) and [`json`](Message::json); an
/// internally tagged serde enum (`#[serde(tag = "type")]`) dispatches by type.
///
/// A *frame message* ([`Message::frame`]) carries a complete
/// `{"stream", "payload"}` frame that the runtime writes straight to each
/// recipient's socket, without passing it through a consumer.
#[derive(Clone)]
pub struct Message {
    text: Arc<str>,
    kind: Kind,
    frame: Option<Frame>,
}

/// A frame message's frame: where it sits in the text, and the same bytes
/// as a [`Bytes`] made once, for every recipient's socket to share.
#[derive(Clone)]
struct Frame {
    range: Range<usize>,
    bytes: Bytes,
}

impl Frame {
    fn new(text: &Arc<str>, range: Range<usize>) -> Self {
        let bytes = Bytes::from_owner(SharedText(text.clone())).slice(range.clone());
        Frame { range, bytes }
    }
}

/// The message's text as the owner of a [`Bytes`].
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Where the `type` is: in the text, or (when the text escapes it) unescaped
/// beside it. The text itself is never rewritten.
#[derive(Clone)]
enum Kind {
    InText(Range<usize>),
    Unescaped(Arc<str>),
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The text is not valid JSON, or could not be serialised.
    #[error("message is not valid JSON: {0}")]
    InvalidJson(String),
    /// The JSON is not an object.
    #[error("message is not a JSON object")]
    NotAnObject,
    /// The object has no `type` field, or it is not a string.
    #[error("message has no string `type` field")]
    MissingType,
    /// A `chanmux.frame` message without a valid `frame` object.
    #[error("frame message has no valid `frame` field")]
    BadFrame,
}

impl Message {
    /// Serialises `event`, which must serialise to an object with a string `type`.
    ///
    /// # Errors
    ///
    /// When it does not serialise, or not to such an object.
    pub fn new<T: Serialize + ?Sized>(event: &T) -> Result<Self, MessageError> {
        let text =
            serde_json::to_string(event).map_err(|e| MessageError::InvalidJson(e.to_string()))?;
        Message::from_json(text)
    }

    /// Reads a message from JSON text (as received from a backend).
    ///
    /// # Errors
    ///
    /// When the text is not an object with a string `type`.
    pub fn from_json(text: impl Into<Arc<str>>) -> Result<Self, MessageError> {
        let text: Arc<str> = text.into();
        let [kind, frame] = object::fields(&text, ["type", "frame"]).map_err(|e| match e {
            ObjectError::NotAnObject => MessageError::NotAnObject,
            ObjectError::Invalid(e) => MessageError::InvalidJson(e.to_string()),
        })?;
        let kind = kind.ok_or(MessageError::MissingType)?;
        let type_name = object::json_str(kind).ok_or(MessageError::MissingType)?;
        let is_frame = type_name == FRAME_TYPE;
        let kind = match type_name {
            // No escapes: the name is a slice of the text.
            Cow::Borrowed(name) => Kind::InText(in_text(&text, name)),
            Cow::Owned(name) => Kind::Unescaped(name.into()),
        };
        let frame = if is_frame {
            let frame = frame.ok_or(MessageError::BadFrame)?;
            if !frame.get().starts_with('{') {
                return Err(MessageError::BadFrame);
            }
            Some(Frame::new(&text, in_text(&text, frame.get())))
        } else {
            None
        };
        Ok(Message { text, kind, frame })
    }

    /// A frame message: `{"stream": stream, "payload": payload}` for clients,
    /// built once. `payload` must be valid JSON text; it is not re-serialised.
    pub fn frame(stream: &str, payload: &str) -> Self {
        Message::frame_with(&StreamPrefix::new(stream), payload)
    }

    /// As [`frame`](Message::frame), with the stream's prefix built already.
    pub fn frame_with(prefix: &StreamPrefix, payload: &str) -> Self {
        // {"type":"chanmux.frame","frame":<frame>}, in one buffer.
        let head = r#"{"type":""#.len() + FRAME_TYPE.len() + r#"","frame":"#.len();
        let mut text = String::with_capacity(head + prefix.frame_len(payload) + 1);
        text.push_str(r#"{"type":""#);
        text.push_str(FRAME_TYPE);
        text.push_str(r#"","frame":"#);
        let start = text.len();
        prefix.wrap_into(&mut text, payload);
        let end = text.len();
        text.push('}');
        let text: Arc<str> = text.into();
        Message {
            frame: Some(Frame::new(&text, start..end)),
            text,
            kind: Kind::InText(9..9 + FRAME_TYPE.len()),
        }
    }

    /// The message's `type`.
    pub fn message_type(&self) -> &str {
        match &self.kind {
            Kind::InText(range) => &self.text[range.clone()],
            Kind::Unescaped(name) => name,
        }
    }

    /// The whole message as JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The shared text (for backends that send it on).
    pub fn to_shared(&self) -> Arc<str> {
        self.text.clone()
    }

    /// For a frame message, the `{"stream", "payload"}` frame to write to clients.
    pub fn frame_text(&self) -> Option<&str> {
        let frame = self.frame.as_ref()?;
        Some(&self.text[frame.range.clone()])
    }

    /// For a frame message, where the frame sits in [`as_str`](Message::as_str).
    pub fn frame_range(&self) -> Option<Range<usize>> {
        self.frame.as_ref().map(|frame| frame.range.clone())
    }

    /// For a frame message, the frame's UTF-8 bytes, shared: a copy for a
    /// socket costs a reference count, not an allocation.
    pub fn frame_bytes(&self) -> Option<Bytes> {
        self.frame.as_ref().map(|frame| frame.bytes.clone())
    }

    /// Parses the message into `T`.
    ///
    /// # Errors
    ///
    /// When it does not fit `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.text)
    }
}

/// Where `part`, read from `text`, sits in it.
fn in_text(text: &str, part: &str) -> Range<usize> {
    object::range_in(text, part).expect("fields are read from the text itself")
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("type", &self.message_type())
            .field("len", &self.text.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_reads_its_type_and_keeps_its_text() {
        let message =
            Message::from_json(r#"{"text": "hi", "type": "chat.message", "n": 1e3}"#).unwrap();
        assert_eq!(message.message_type(), "chat.message");
        assert_eq!(
            message.as_str(),
            r#"{"text": "hi", "type": "chat.message", "n": 1e3}"#
        );
        assert_eq!(message.frame_text(), None);
        let value: serde_json::Value = message.json().unwrap();
        assert_eq!(value["text"], "hi");
    }

    #[test]
    fn messages_without_a_string_type_are_rejected() {
        assert_eq!(
            Message::from_json("[1]").unwrap_err(),
            MessageError::NotAnObject
        );
        assert_eq!(
            Message::from_json(r#"{"t": 1}"#).unwrap_err(),
            MessageError::MissingType
        );
        assert_eq!(
            Message::from_json(r#"{"type": 1}"#).unwrap_err(),
            MessageError::MissingType
        );
        assert!(matches!(
            Message::from_json("{"),
            Err(MessageError::InvalidJson(_))
        ));
        assert!(matches!(
            Message::new(&json!("x")),
            Err(MessageError::NotAnObject)
        ));
        assert_eq!(
            Message::from_json(r#"{"type": "chanmux.frame", "frame": 3}"#).unwrap_err(),
            MessageError::BadFrame
        );
    }

    #[test]
    fn escaped_type_names_are_unescaped_and_the_text_kept() {
        for (text, name) in [
            (r#"{"type": "a\u002eb", "x": [1e3]}"#, "a.b"),
            (r#"{"type": "a\"b", "x": [1e3]}"#, "a\"b"),
            (r#"{"type": "a\nb\t\\", "x": [1e3]}"#, "a\nb\t\\"),
        ] {
            let message = Message::from_json(text).unwrap();
            assert_eq!(message.message_type(), name);
            assert_eq!(message.as_str(), text, "never rewritten");
        }
        let message = Message::new(&json!({"type": "line\nbreak"})).unwrap();
        assert_eq!(message.message_type(), "line\nbreak");
    }

    #[test]
    fn an_escaped_frame_type_is_still_a_frame_with_its_exact_text() {
        let text = r#"{"type":"chanmux\u002eframe","frame":{"stream":"s","payload":[1e3,123456789012345678901234567890]}}"#;
        let message = Message::from_json(text).unwrap();
        assert_eq!(message.message_type(), FRAME_TYPE);
        assert_eq!(
            message.frame_text(),
            Some(r#"{"stream":"s","payload":[1e3,123456789012345678901234567890]}"#)
        );
    }

    #[test]
    fn a_frame_message_round_trips_through_its_text() {
        let message = Message::frame("chat", r#"{"room": "a", "message": 1e3}"#);
        assert_eq!(message.message_type(), FRAME_TYPE);
        let frame = r#"{"stream":"chat","payload":{"room": "a", "message": 1e3}}"#;
        assert_eq!(message.frame_text(), Some(frame));
        assert_eq!(message.frame_bytes().as_deref(), Some(frame.as_bytes()));
        let again = Message::from_json(message.to_shared()).unwrap();
        assert_eq!(again.frame_text(), Some(frame));
        assert_eq!(again.message_type(), FRAME_TYPE);
    }
}
