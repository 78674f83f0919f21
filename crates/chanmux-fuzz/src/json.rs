//! A JSON value the fuzzer can build from bytes, bounded in depth and size,
//! and the serde_json reading the checks compare against.

use std::fmt;

use arbitrary::Arbitrary;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deeper values are cut to `null`: far below serde_json's recursion limit
/// (128), so serde_json can always be the oracle for generated payloads.
const MAX_DEPTH: usize = 8;

/// An arbitrary JSON value; [`Json::to_value`] turns it into serde_json's.
#[derive(Arbitrary, Debug, Clone)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (non-finite ones become `null`: JSON has no NaN or infinity).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object; a repeated key keeps its last value, as in serde_json.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The serde_json value, nested at most a few levels.
    pub fn to_value(&self) -> Value {
        self.value_at(0)
    }

    fn value_at(&self, depth: usize) -> Value {
        if depth >= MAX_DEPTH {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.clone()),
            Json::Array(items) => items.iter().map(|j| j.value_at(depth + 1)).collect(),
            Json::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value_at(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// serde_json's reading of `text` as a [`Value`], built by a visitor of our
/// own: the oracle for the parser and for replies.
///
/// Not `serde_json::from_str::<Value>`: with serde_json's `raw_value`
/// feature (on in this workspace), `Value` reads an object whose only key is
/// `$serde_json::private::RawValue` as a raw value instead of an object, so
/// it rejects or misreads valid JSON such as `{"$serde_json::private::RawValue": true}`
/// (found by the `envelope` target). Everything else — grammar, depth
/// limit, numbers, escapes, last duplicate wins — is serde_json's own.
///
/// # Errors
///
/// serde_json's error when the text is not JSON it can read.
pub(crate) fn read_json(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = PlainValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserialises any JSON into a [`Value`], with no special keys.
struct PlainValue;

impl<'de> DeserializeSeed<'de> for PlainValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PlainValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(PlainValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Insert replaces: the last of repeated keys wins.
            object.insert(key, map.next_value_seed(PlainValue)?);
        }
        Ok(Value::Object(object))
    }
}
