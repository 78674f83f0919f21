//! One-pass reading of the few fields we need from a JSON object, without
//! building a tree: the envelope's `stream`/`payload` and a layer message's
//! `type`/`frame`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why a text is not an object we can read fields from.
#[derive(Debug)]
pub(crate) enum ObjectError {
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Not valid JSON (including trailing text).
    Invalid(serde_json::Error),
}

/// The raw values of the fields named in `names` (the last one wins when a
/// field repeats); every other field is skipped without being built, so
/// nesting depth is not limited by recursion.
pub(crate) fn fields<'a, const N: usize>(
    text: &'a str,
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], ObjectError> {
    let starts_as_object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    if !starts_as_object {
        // Cold path: only bad input pays for this second look.
        return Err(match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => ObjectError::NotAnObject,
            Err(e) => ObjectError::Invalid(e),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let found = de
        .deserialize_map(FieldsVisitor { names })
        .map_err(ObjectError::Invalid)?;
    de.end().map_err(ObjectError::Invalid)?;
    Ok(found)
}

/// Decodes a raw value if it is a JSON string (borrowed unless it has escapes).
pub(crate) fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    // Already validated as a JSON string by the pass that found it: without
    // a backslash its contents are the text between the quotes.
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_str(StrVisitor).ok()
}

/// Where `part`, a sub-slice of `whole`, sits in it; `None` if it is not one.
pub(crate) fn range_in(whole: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start..start + part.len())
}

struct FieldsVisitor<const N: usize> {
    names: [&'static str; N],
}

impl<'de, const N: usize> Visitor<'de> for FieldsVisitor<N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with fields {:?}", self.names)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [None; N];
        while let Some(key) = map.next_key_seed(KeySeed { names: &self.names })? {
            match key {
                Some(index) => found[index] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// Classifies a field name against the wanted names, without allocating.
struct KeySeed<'n> {
    names: &'n [&'static str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.names.iter().position(|name| *name == v))
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}
