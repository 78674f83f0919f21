//! The frames a server sends about streams rather than in them (PROTOCOL.md):
//! `subscribed`, `unsubscribed`, `closed` and `pong`.

use crate::error_frame::{push_json_string, push_ref};

/// `{"subscribed":"<stream>","ref":<ref>}` (no `ref` when the subscribe had none).
pub fn subscribed_frame(stream: &str, reference: Option<&str>) -> String {
    named("subscribed", stream, reference)
}

/// `{"unsubscribed":"<stream>","ref":<ref>}` (no `ref` when the unsubscribe had none).
pub fn unsubscribed_frame(stream: &str, reference: Option<&str>) -> String {
    named("unsubscribed", stream, reference)
}

/// `{"closed":"<stream>","code":<code>,"reason":"<reason>"}`.
pub fn closed_frame(stream: &str, code: u16, reason: &str) -> String {
    let mut out = String::with_capacity(40 + stream.len() + reason.len());
    out.push_str(r#"{"closed":"#);
    push_json_string(&mut out, stream);
    out.push_str(r#","code":"#);
    out.push_str(&code.to_string());
    out.push_str(r#","reason":"#);
    push_json_string(&mut out, reason);
    out.push('}');
    out
}

/// `{"pong":<value>}`, `value` being the ping's JSON text, copied as sent.
pub fn pong_frame(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 10);
    out.push_str(r#"{"pong":"#);
    out.push_str(value);
    out.push('}');
    out
}

fn named(kind: &str, stream: &str, reference: Option<&str>) -> String {
    let mut out = String::with_capacity(20 + stream.len() + reference.map_or(0, str::len));
    out.push_str(r#"{""#);
    out.push_str(kind);
    out.push_str(r#"":"#);
    push_json_string(&mut out, stream);
    push_ref(&mut out, reference);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(frame: &str) -> Value {
        serde_json::from_str(frame).unwrap()
    }

    #[test]
    fn each_frame_has_its_documented_shape() {
        assert_eq!(
            parsed(&subscribed_frame("room:\"1\"", Some(r#""r""#))),
            json!({"subscribed": "room:\"1\"", "ref": "r"})
        );
        assert_eq!(
            parsed(&unsubscribed_frame("a", None)),
            json!({"unsubscribed": "a"})
        );
        assert_eq!(
            parsed(&closed_frame("a", 1011, "consumer\nerror")),
            json!({"closed": "a", "code": 1011, "reason": "consumer\nerror"})
        );
        assert_eq!(pong_frame("[1.0, 2]"), r#"{"pong":[1.0, 2]}"#);
    }
}
