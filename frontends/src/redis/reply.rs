//! [`Reply`]: what one Redis op answers, and its JSON form in a committed command's
//! response, `{"replies":[...]}`.
//!
//! | reply | JSON |
//! |---|---|
//! | `Status("OK")` | `{"status":"OK"}` |
//! | `Error("ERR ...")` | `{"error":"ERR ..."}` |
//! | `Int(3)` | `{"int":3}` |
//! | `Bulk(b"text")` (UTF-8) | `{"bulk":"text"}` |
//! | `Bulk(b"\xff\x00")` (not UTF-8) | `{"bulk_hex":"ff00"}` |
//! | `Nil` | `null` |
//! | `Array([...])` | `{"array":[...]}` |
//! | `NilArray` | `{"array":null}` |
//!
//! Bulk bytes that are UTF-8 are always written as `bulk`, so each reply has one JSON
//! form, and `Reply::from_json(&reply.to_json()) == Some(reply)`.

use serde_json::{json, Map, Value};

use super::keys::{from_hex, to_hex};

/// Deepest nesting [`Reply::from_json`] accepts. The ops answer at most an array of
/// bulks (depth 2); the bound keeps a hostile value from recursing without end.
pub const REPLY_DEPTH_MAX: usize = 8;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A simple string, e.g. `OK` or a TYPE answer.
    Status(String),
    /// An error, its text starting with its code (`ERR`, `WRONGTYPE`).
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// The null bulk string.
    Nil,
    /// An array of replies.
    Array(Vec<Reply>),
    /// The null array (EXEC after a WATCH failed).
    NilArray,
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Status("OK".to_owned())
    }

    /// The JSON form (table in the module documentation).
    pub fn to_json(&self) -> Value {
        match self {
            Reply::Status(text) => json!({ "status": text }),
            Reply::Error(text) => json!({ "error": text }),
            Reply::Int(value) => json!({ "int": value }),
            Reply::Bulk(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => json!({ "bulk": text }),
                Err(_) => json!({ "bulk_hex": to_hex(bytes) }),
            },
            Reply::Nil => Value::Null,
            Reply::Array(items) => {
                json!({ "array": items.iter().map(Reply::to_json).collect::<Vec<_>>() })
            }
            Reply::NilArray => json!({ "array": null }),
        }
    }

    /// Parses the JSON form back; `None` for anything else (an object with another
    /// or a second key, `bulk_hex` that is not lowercase hex, nesting deeper than
    /// [`REPLY_DEPTH_MAX`]).
    pub fn from_json(value: &Value) -> Option<Reply> {
        Self::from_json_at(value, 1)
    }

    fn from_json_at(value: &Value, depth: usize) -> Option<Reply> {
        if depth > REPLY_DEPTH_MAX {
            return None;
        }
        let object = match value {
            Value::Null => return Some(Reply::Nil),
            Value::Object(object) => object,
            _ => return None,
        };
        let (tag, inner) = only_entry(object)?;
        match (tag, inner) {
            ("status", Value::String(text)) => Some(Reply::Status(text.clone())),
            ("error", Value::String(text)) => Some(Reply::Error(text.clone())),
            ("int", Value::Number(number)) => number.as_i64().map(Reply::Int),
            ("bulk", Value::String(text)) => Some(Reply::Bulk(text.as_bytes().to_vec())),
            ("bulk_hex", Value::String(hex)) => from_hex(hex).map(Reply::Bulk),
            ("array", Value::Null) => Some(Reply::NilArray),
            ("array", Value::Array(items)) => items
                .iter()
                .map(|item| Self::from_json_at(item, depth + 1))
                .collect::<Option<Vec<_>>>()
                .map(Reply::Array),
            _ => None,
        }
    }
}

fn only_entry(object: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut entries = object.iter();
    let (tag, inner) = entries.next()?;
    if entries.next().is_some() {
        return None;
    }
    Some((tag.as_str(), inner))
}

/// The replies in a committed Redis command's response, `{"replies":[...]}`; `None`
/// if the response has another shape.
pub fn replies_from_response(response: &Value) -> Option<Vec<Reply>> {
    let object = response.as_object()?;
    let (tag, replies) = only_entry(object)?;
    if tag != "replies" {
        return None;
    }
    replies.as_array()?.iter().map(Reply::from_json).collect()
}

/// The response of a committed Redis command.
pub(crate) fn response_of(replies: &[Reply]) -> Value {
    json!({ "replies": replies.iter().map(Reply::to_json).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn every_kind() -> Vec<Reply> {
        vec![
            Reply::ok(),
            Reply::Status(String::new()),
            Reply::Error(
                "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
            ),
            Reply::Int(i64::MIN),
            Reply::Int(i64::MAX),
            Reply::Int(0),
            Reply::Bulk(b"text".to_vec()),
            Reply::Bulk(Vec::new()),
            Reply::Bulk(vec![0xff, 0x00, b'a']),
            Reply::Bulk("é\u{0}".as_bytes().to_vec()),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(Vec::new()),
            Reply::Array(vec![
                Reply::Nil,
                Reply::Bulk(vec![0x80]),
                Reply::Array(vec![Reply::NilArray]),
            ]),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for reply in every_kind() {
            assert_eq!(
                Reply::from_json(&reply.to_json()),
                Some(reply.clone()),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn the_json_shapes_are_the_documented_ones() {
        assert_eq!(Reply::ok().to_json(), json!({"status": "OK"}));
        assert_eq!(Reply::Int(-3).to_json(), json!({"int": -3}));
        assert_eq!(Reply::Bulk(b"v".to_vec()).to_json(), json!({"bulk": "v"}));
        assert_eq!(
            Reply::Bulk(vec![0xff, 0x0a]).to_json(),
            json!({"bulk_hex": "ff0a"})
        );
        assert_eq!(Reply::Nil.to_json(), Value::Null);
        assert_eq!(Reply::NilArray.to_json(), json!({"array": null}));
        assert_eq!(
            Reply::Array(vec![Reply::Nil, Reply::Int(1)]).to_json(),
            json!({"array": [null, {"int": 1}]})
        );
    }

    #[test]
    fn other_shapes_are_refused() {
        for value in [
            json!("OK"),
            json!(1),
            json!([]),
            json!({}),
            json!({"status": "OK", "int": 1}),
            json!({"status": 1}),
            json!({"int": 1.5}),
            json!({"int": u64::MAX}),
            json!({"bulk_hex": "FF"}),
            json!({"bulk_hex": "f"}),
            json!({"array": [{"nope": 1}]}),
            json!({"array": "x"}),
        ] {
            assert_eq!(Reply::from_json(&value), None, "{value}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut value = json!({"int": 1});
        for _ in 0..REPLY_DEPTH_MAX - 1 {
            value = json!({ "array": [value] });
        }
        assert!(Reply::from_json(&value).is_some());
        let deeper = json!({ "array": [value] });
        assert_eq!(Reply::from_json(&deeper), None);
    }

    #[test]
    fn responses_give_their_replies() {
        let replies = every_kind();
        let response = response_of(&replies);
        assert_eq!(replies_from_response(&response), Some(replies));
        assert_eq!(replies_from_response(&json!({"results": []})), None);
        assert_eq!(replies_from_response(&json!({"replies": [{"x": 1}]})), None);
        assert_eq!(
            replies_from_response(&json!({"replies": [], "more": 1})),
            None
        );
    }

    proptest! {
        #[test]
        fn any_bulk_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let reply = Reply::Array(vec![Reply::Bulk(bytes)]);
            prop_assert_eq!(Reply::from_json(&reply.to_json()), Some(reply));
        }
    }
}
