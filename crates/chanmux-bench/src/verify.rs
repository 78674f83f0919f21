//! Checking every echo reply: right stream, exact payload, per-stream order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chanmux_core::Envelope;

/// What a reply turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next expected reply on its stream, after this long.
    Ok(Duration),
    /// A stream we did not send on (or a reply that is not an envelope).
    WrongStream,
    /// Not any payload we sent on that stream.
    WrongPayload,
    /// A payload we sent, but not the next one on its stream.
    Reordered,
}

/// The frames one connection has in flight, per stream, oldest first.
#[derive(Debug, Default)]
pub struct Verifier {
    /// `None` is the plain-echo mode: one queue, whole frames compared.
    in_flight: HashMap<Option<String>, VecDeque<(String, Instant)>>,
}

/// Builds the payload for message `seq`: a JSON object padded to about `size` bytes.
pub fn payload(seq: u64, size: usize) -> String {
    let head = format!(r#"{{"seq":{seq},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    let mut text = String::with_capacity(head.len() + pad + 2);
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str(r#""}"#);
    text
}

impl Verifier {
    /// Records a frame sent now: `stream` is `None` in plain-echo mode, where
    /// `text` is the whole frame; otherwise `text` is the payload.
    pub fn sent(&mut self, stream: Option<&str>, text: String) {
        self.in_flight
            .entry(stream.map(str::to_owned))
            .or_default()
            .push_back((text, Instant::now()));
    }

    /// Checks a reply.
    pub fn received(&mut self, reply: &str, multiplexed: bool) -> Verdict {
        let (stream, payload) = if multiplexed {
            match Envelope::parse(reply) {
                Ok(envelope) => (Some(envelope.stream().to_owned()), envelope.payload()),
                Err(_) => return Verdict::WrongStream,
            }
        } else {
            (None, reply)
        };
        let Some(queue) = self.in_flight.get_mut(&stream) else {
            return Verdict::WrongStream;
        };
        // Byte-exact first; a server that re-serialises (the Python
        // reference does) is judged by JSON value instead.
        let found = queue
            .iter()
            .position(|(sent, _)| sent == payload)
            .or_else(|| {
                let reply: serde_json::Value = serde_json::from_str(payload).ok()?;
                queue.iter().position(|(sent, _)| {
                    serde_json::from_str::<serde_json::Value>(sent).is_ok_and(|v| v == reply)
                })
            });
        match found {
            Some(0) => {
                let (_, at) = queue.pop_front().expect("position 0 exists");
                Verdict::Ok(at.elapsed())
            }
            Some(later) => {
                queue.remove(later);
                Verdict::Reordered
            }
            None => Verdict::WrongPayload,
        }
    }

    /// Frames sent and never answered.
    pub fn outstanding(&self) -> usize {
        self.in_flight.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_of_the_asked_size() {
        for size in [0, 64, 4096] {
            let text = payload(7, size);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["seq"], 7);
            // 18 bytes is the smallest payload: {"seq":7,"pad":""}
            assert_eq!(text.len(), size.max(18), "{size}");
        }
    }

    #[test]
    fn replies_are_judged_by_stream_payload_and_order() {
        let mut v = Verifier::default();
        v.sent(Some("a"), payload(1, 64));
        v.sent(Some("a"), payload(2, 64));
        v.sent(Some("b"), payload(3, 64));
        let frame = |stream: &str, seq| {
            format!(r#"{{"stream":"{stream}","payload":{}}}"#, payload(seq, 64))
        };
        assert!(
            matches!(v.received(&frame("b", 3), true), Verdict::Ok(_)),
            "other streams may overtake"
        );
        assert_eq!(v.received(&frame("a", 2), true), Verdict::Reordered);
        assert_eq!(v.received(&frame("c", 1), true), Verdict::WrongStream);
        assert_eq!(v.received(&frame("a", 9), true), Verdict::WrongPayload);
        assert_eq!(v.received("not json", true), Verdict::WrongStream);
        assert!(matches!(v.received(&frame("a", 1), true), Verdict::Ok(_)));
        assert_eq!(v.outstanding(), 0);
    }

    #[test]
    fn a_reserialised_but_equal_payload_is_right() {
        let mut v = Verifier::default();
        v.sent(Some("a"), r#"{"seq":1,"pad":"xx"}"#.to_owned());
        assert!(matches!(
            v.received(
                r#"{"stream": "a", "payload": {"seq": 1, "pad": "xx"}}"#,
                true
            ),
            Verdict::Ok(_)
        ));
    }
}
