//! Stream patterns such as `room:{id}`: the names a pattern stream answers to.

use std::fmt;

/// A stream pattern: segments split by `:`, each either literal text or a
/// `{name}` that captures one segment of 1–100 ASCII letters, digits, `-`,
/// `_` or `.`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: Box<str>,
    segments: Box<[Segment]>,
}

#[derive(Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    Capture(Box<str>),
}

/// The longest segment a capture takes.
pub(crate) const MAX_CAPTURE_LEN: usize = 100;

/// Why a pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Pattern {
    /// Reads `source`, e.g. `room:{id}` or `chat:{room}:typing`.
    pub(crate) fn parse(source: &str) -> Result<Self, PatternError> {
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for segment in source.split(':') {
            let parsed = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    if !is_identifier(name) {
                        return Err(PatternError(format!(
                            "capture {{{name}}} in {source:?} must be named by ASCII letters, digits or '_'"
                        )));
                    }
                    if names.contains(&name) {
                        return Err(PatternError(format!(
                            "capture {{{name}}} appears twice in {source:?}"
                        )));
                    }
                    names.push(name);
                    Segment::Capture(name.into())
                }
                None if segment.contains(['{', '}']) => {
                    return Err(PatternError(format!(
                        "segment {segment:?} of {source:?} must be literal text or a whole {{name}}"
                    )));
                }
                None if segment.is_empty() => {
                    return Err(PatternError(format!("{source:?} has an empty segment")));
                }
                None => Segment::Literal(segment.into()),
            };
            segments.push(parsed);
        }
        if names.is_empty() {
            return Err(PatternError(format!(
                "{source:?} captures nothing; declare it as a stream"
            )));
        }
        Ok(Pattern {
            source: source.into(),
            segments: segments.into(),
        })
    }

    /// Whether `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.captures(name).is_some()
    }

    /// What `name` captures, in pattern order, when it matches.
    pub(crate) fn captures<'n>(&self, name: &'n str) -> Option<Vec<(&str, &'n str)>> {
        let mut parts = name.split(':');
        let mut captured = Vec::new();
        for segment in &*self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(text) if **text == *part => {}
                Segment::Literal(_) => return None,
                Segment::Capture(capture) if is_capturable(part) => {
                    captured.push((&**capture, part));
                }
                Segment::Capture(_) => return None,
            }
        }
        parts.next().is_none().then_some(captured)
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_capturable(part: &str) -> bool {
    (1..=MAX_CAPTURE_LEN).contains(&part.len())
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_takes_one_segment_of_allowed_characters() {
        let room = Pattern::parse("room:{id}").unwrap();
        assert_eq!(room.captures("room:42"), Some(vec![("id", "42")]));
        assert_eq!(room.captures("room:a-b_c.d"), Some(vec![("id", "a-b_c.d")]));
        let longest = "x".repeat(MAX_CAPTURE_LEN);
        assert!(room.matches(&format!("room:{longest}")));
        for name in [
            "room:",
            "room",
            "room:1:2",
            "rooms:1",
            "room:a b",
            "room:é",
            "room:a/b",
            &format!("room:{longest}x"),
        ] {
            assert!(!room.matches(name), "{name}");
        }
    }

    #[test]
    fn literal_segments_match_exactly_and_captures_come_in_order() {
        let typing = Pattern::parse("chat:{room}:typing:{user}").unwrap();
        assert_eq!(
            typing.captures("chat:lobby:typing:ann"),
            Some(vec![("room", "lobby"), ("user", "ann")])
        );
        assert!(!typing.matches("chat:lobby:Typing:ann"));
        assert!(!typing.matches("chat:lobby:typing"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "room",
            "room:{}",
            "room:{id",
            "room:x{id}",
            "room::{id}",
            "room:{id}:{id}",
            "room:{a-b}",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
