//! A JSON value the fuzzer can build from bytes, bounded in depth and size.

use arbitrary::Arbitrary;
use serde_json::Value;

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
