//! [`RedisOp`]: the arguments of one Redis command, as the RESP listener parsed
//! them, and their validation.
//!
//! Serialized internally tagged by `"op"` with the Redis command name in lowercase
//! (`{"op":"hset","key":...,"pairs":[[field,value]]}`); every key, field and value
//! is a byte string (CBOR major type 2 in the ledger; in JSON, an array of numbers
//! or a string).

use serde::{Deserialize, Serialize};

use super::{REDIS_KEY_BYTES_MAX, REDIS_VALUE_BYTES_MAX};
use crate::FrontendError;

/// SET's NX / XX option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetCondition {
    /// No condition.
    #[default]
    Always,
    /// NX: only if the key does not exist (as any type).
    IfAbsent,
    /// XX: only if the key exists (as any type).
    IfPresent,
}

/// One Redis command. INCR, DECR and DECRBY are [`RedisOp::IncrBy`] with `by` 1, -1
/// and the negated argument (the listener answers DECRBY of `i64::MIN` itself,
/// as Redis does, with `ERR decrement would overflow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum RedisOp {
    /// `GET key`.
    Get {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// `SET key value [NX|XX] [GET]`.
    Set {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// NX / XX.
        #[serde(default)]
        condition: SetCondition,
        /// GET: answer the old value (or nil) instead of OK / nil.
        #[serde(default)]
        get: bool,
    },
    /// `SETNX key value`.
    SetNx {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// `GETSET key value`.
    GetSet {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// `GETDEL key`.
    GetDel {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// `MGET key [key ...]`.
    MGet {
        /// The keys.
        #[serde(with = "byte_lists")]
        keys: Vec<Vec<u8>>,
    },
    /// `MSET key value [key value ...]`.
    MSet {
        /// (key, value) pairs.
        #[serde(with = "byte_pairs")]
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `MSETNX key value [key value ...]`.
    MSetNx {
        /// (key, value) pairs.
        #[serde(with = "byte_pairs")]
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `DEL key [key ...]`.
    Del {
        /// The keys.
        #[serde(with = "byte_lists")]
        keys: Vec<Vec<u8>>,
    },
    /// `EXISTS key [key ...]`.
    Exists {
        /// The keys.
        #[serde(with = "byte_lists")]
        keys: Vec<Vec<u8>>,
    },
    /// `TYPE key`.
    Type {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// `STRLEN key`.
    StrLen {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// `APPEND key value`.
    Append {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// What to append.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// INCR, DECR, INCRBY, DECRBY.
    IncrBy {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The increment.
        by: i64,
    },
    /// `HSET key field value [field value ...]` (HMSET too: the listener answers OK
    /// instead of the count).
    HSet {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// (field, value) pairs.
        #[serde(with = "byte_pairs")]
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `HGET key field`.
    HGet {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The field.
        #[serde(with = "serde_bytes")]
        field: Vec<u8>,
    },
    /// `HDEL key field [field ...]`.
    HDel {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The fields.
        #[serde(with = "byte_lists")]
        fields: Vec<Vec<u8>>,
    },
    /// `HGETALL key` (fields in byte-wise order).
    HGetAll {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// `HEXISTS key field`.
    HExists {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The field.
        #[serde(with = "serde_bytes")]
        field: Vec<u8>,
    },
    /// `HLEN key`.
    HLen {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// `HMGET key field [field ...]`.
    HMGet {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The fields.
        #[serde(with = "byte_lists")]
        fields: Vec<Vec<u8>>,
    },
    /// `HINCRBY key field increment`.
    HIncrBy {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The field.
        #[serde(with = "serde_bytes")]
        field: Vec<u8>,
        /// The increment.
        by: i64,
    },
}

impl RedisOp {
    /// True if the op may write (it needs a transaction; the others can run against
    /// committed state with [`super::execute_read`]).
    pub fn is_write(&self) -> bool {
        match self {
            RedisOp::Set { .. }
            | RedisOp::SetNx { .. }
            | RedisOp::GetSet { .. }
            | RedisOp::GetDel { .. }
            | RedisOp::MSet { .. }
            | RedisOp::MSetNx { .. }
            | RedisOp::Del { .. }
            | RedisOp::Append { .. }
            | RedisOp::IncrBy { .. }
            | RedisOp::HSet { .. }
            | RedisOp::HDel { .. }
            | RedisOp::HIncrBy { .. } => true,
            RedisOp::Get { .. }
            | RedisOp::MGet { .. }
            | RedisOp::Exists { .. }
            | RedisOp::Type { .. }
            | RedisOp::StrLen { .. }
            | RedisOp::HGet { .. }
            | RedisOp::HGetAll { .. }
            | RedisOp::HExists { .. }
            | RedisOp::HLen { .. }
            | RedisOp::HMGet { .. } => false,
        }
    }

    /// The Redis command's name, uppercase (INCRBY for all four counters).
    pub fn name(&self) -> &'static str {
        match self {
            RedisOp::Get { .. } => "GET",
            RedisOp::Set { .. } => "SET",
            RedisOp::SetNx { .. } => "SETNX",
            RedisOp::GetSet { .. } => "GETSET",
            RedisOp::GetDel { .. } => "GETDEL",
            RedisOp::MGet { .. } => "MGET",
            RedisOp::MSet { .. } => "MSET",
            RedisOp::MSetNx { .. } => "MSETNX",
            RedisOp::Del { .. } => "DEL",
            RedisOp::Exists { .. } => "EXISTS",
            RedisOp::Type { .. } => "TYPE",
            RedisOp::StrLen { .. } => "STRLEN",
            RedisOp::Append { .. } => "APPEND",
            RedisOp::IncrBy { .. } => "INCRBY",
            RedisOp::HSet { .. } => "HSET",
            RedisOp::HGet { .. } => "HGET",
            RedisOp::HDel { .. } => "HDEL",
            RedisOp::HGetAll { .. } => "HGETALL",
            RedisOp::HExists { .. } => "HEXISTS",
            RedisOp::HLen { .. } => "HLEN",
            RedisOp::HMGet { .. } => "HMGET",
            RedisOp::HIncrBy { .. } => "HINCRBY",
        }
    }

    /// How many Redis keys the op names, repeats included (cheap: no allocation).
    pub fn key_count(&self) -> usize {
        match self {
            RedisOp::MGet { keys } | RedisOp::Del { keys } | RedisOp::Exists { keys } => keys.len(),
            RedisOp::MSet { pairs } | RedisOp::MSetNx { pairs } => pairs.len(),
            _ => 1,
        }
    }

    /// The Redis keys the op names, in argument order, repeats included.
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            RedisOp::MGet { keys } | RedisOp::Del { keys } | RedisOp::Exists { keys } => {
                keys.iter().map(Vec::as_slice).collect()
            }
            RedisOp::MSet { pairs } | RedisOp::MSetNx { pairs } => {
                pairs.iter().map(|(key, _)| key.as_slice()).collect()
            }
            RedisOp::Get { key }
            | RedisOp::Set { key, .. }
            | RedisOp::SetNx { key, .. }
            | RedisOp::GetSet { key, .. }
            | RedisOp::GetDel { key }
            | RedisOp::Type { key }
            | RedisOp::StrLen { key }
            | RedisOp::Append { key, .. }
            | RedisOp::IncrBy { key, .. }
            | RedisOp::HSet { key, .. }
            | RedisOp::HGet { key, .. }
            | RedisOp::HDel { key, .. }
            | RedisOp::HGetAll { key }
            | RedisOp::HExists { key, .. }
            | RedisOp::HLen { key }
            | RedisOp::HMGet { key, .. }
            | RedisOp::HIncrBy { key, .. } => vec![key.as_slice()],
        }
    }

    /// Checks every argument's size and that lists are not empty (Redis refuses
    /// those with a wrong-arity error before they reach a transaction), and adds the
    /// op's argument bytes to `argument_bytes`. `at` names the op, e.g. `ops[3]`.
    pub(crate) fn validate(
        &self,
        at: &str,
        argument_bytes: &mut usize,
    ) -> Result<(), FrontendError> {
        let mut check = |what: &dyn Fn() -> String, bytes: &[u8], max: usize| {
            *argument_bytes = argument_bytes.saturating_add(bytes.len());
            check_size(what, bytes, max)
        };
        let key_max = REDIS_KEY_BYTES_MAX;
        let value_max = REDIS_VALUE_BYTES_MAX;
        match self {
            RedisOp::Get { key }
            | RedisOp::GetDel { key }
            | RedisOp::Type { key }
            | RedisOp::StrLen { key }
            | RedisOp::IncrBy { key, .. }
            | RedisOp::HGetAll { key }
            | RedisOp::HLen { key } => check(&|| format!("{at}.key"), key, key_max),
            RedisOp::Set { key, value, .. }
            | RedisOp::SetNx { key, value }
            | RedisOp::GetSet { key, value }
            | RedisOp::Append { key, value } => {
                check(&|| format!("{at}.key"), key, key_max)?;
                check(&|| format!("{at}.value"), value, value_max)
            }
            RedisOp::MGet { keys } | RedisOp::Del { keys } | RedisOp::Exists { keys } => {
                not_empty(|| format!("{at}.keys"), keys.len())?;
                for (index, key) in keys.iter().enumerate() {
                    check(&|| format!("{at}.keys[{index}]"), key, key_max)?;
                }
                Ok(())
            }
            RedisOp::MSet { pairs } | RedisOp::MSetNx { pairs } => {
                not_empty(|| format!("{at}.pairs"), pairs.len())?;
                for (index, (key, value)) in pairs.iter().enumerate() {
                    check(&|| format!("{at}.pairs[{index}].key"), key, key_max)?;
                    check(&|| format!("{at}.pairs[{index}].value"), value, value_max)?;
                }
                Ok(())
            }
            RedisOp::HSet { key, pairs } => {
                check(&|| format!("{at}.key"), key, key_max)?;
                not_empty(|| format!("{at}.pairs"), pairs.len())?;
                for (index, (field, value)) in pairs.iter().enumerate() {
                    check(&|| format!("{at}.pairs[{index}].field"), field, key_max)?;
                    check(&|| format!("{at}.pairs[{index}].value"), value, value_max)?;
                }
                Ok(())
            }
            RedisOp::HGet { key, field }
            | RedisOp::HExists { key, field }
            | RedisOp::HIncrBy { key, field, .. } => {
                check(&|| format!("{at}.key"), key, key_max)?;
                check(&|| format!("{at}.field"), field, key_max)
            }
            RedisOp::HDel { key, fields } | RedisOp::HMGet { key, fields } => {
                check(&|| format!("{at}.key"), key, key_max)?;
                not_empty(|| format!("{at}.fields"), fields.len())?;
                for (index, field) in fields.iter().enumerate() {
                    check(&|| format!("{at}.fields[{index}]"), field, key_max)?;
                }
                Ok(())
            }
        }
    }
}

fn check_size(what: &dyn Fn() -> String, bytes: &[u8], max: usize) -> Result<(), FrontendError> {
    if bytes.len() > max {
        return Err(FrontendError::FieldTooLong {
            field: what(),
            bytes: bytes.len(),
            max,
        });
    }
    Ok(())
}

fn not_empty(what: impl FnOnce() -> String, len: usize) -> Result<(), FrontendError> {
    if len == 0 {
        return Err(FrontendError::EmptyArguments { field: what() });
    }
    Ok(())
}

/// `Vec<Vec<u8>>` as a sequence of byte strings (serde_bytes covers one `Vec<u8>`,
/// not a list of them).
mod byte_lists {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(list.iter().map(|item| Bytes::new(item)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<ByteBuf>::deserialize(deserializer)?;
        Ok(list.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// `Vec<(Vec<u8>, Vec<u8>)>` as a sequence of two-element sequences of byte strings.
mod byte_pairs {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    pub fn serialize<S: Serializer>(
        pairs: &[(Vec<u8>, Vec<u8>)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            pairs
                .iter()
                .map(|(first, second)| (Bytes::new(first), Bytes::new(second))),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Pairs, D::Error> {
        let pairs = Vec::<(ByteBuf, ByteBuf)>::deserialize(deserializer)?;
        Ok(pairs
            .into_iter()
            .map(|(first, second)| (first.into_vec(), second.into_vec()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_use_the_redis_names_in_json() {
        let op = RedisOp::HIncrBy {
            key: b"k".to_vec(),
            field: b"f".to_vec(),
            by: -2,
        };
        let json = serde_json::to_value(&op).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({"op": "hincrby", "key": [107], "field": [102], "by": -2})
        );
        assert_eq!(serde_json::from_value::<RedisOp>(json).ok(), Some(op));
        // Strings are accepted for bytes too, and SET's options default.
        let set: RedisOp =
            serde_json::from_str(r#"{"op":"set","key":"k","value":"v"}"#).expect("parses");
        assert_eq!(
            set,
            RedisOp::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                condition: SetCondition::Always,
                get: false,
            }
        );
        assert!(serde_json::from_str::<RedisOp>(r#"{"op":"get","key":"k","x":1}"#).is_err());
        assert!(serde_json::from_str::<RedisOp>(r#"{"op":"flushall"}"#).is_err());
    }

    #[test]
    fn writes_and_reads_are_told_apart() {
        let key = b"k".to_vec();
        assert!(RedisOp::Del {
            keys: vec![key.clone()]
        }
        .is_write());
        assert!(RedisOp::HDel {
            key: key.clone(),
            fields: vec![key.clone()]
        }
        .is_write());
        assert!(RedisOp::GetDel { key: key.clone() }.is_write());
        assert!(!RedisOp::Exists {
            keys: vec![key.clone()]
        }
        .is_write());
        assert!(!RedisOp::HMGet {
            key: key.clone(),
            fields: vec![key.clone()]
        }
        .is_write());
        assert!(!RedisOp::StrLen { key }.is_write());
    }

    #[test]
    fn keys_are_listed_with_repeats() {
        let op = RedisOp::MSet {
            pairs: vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"a".to_vec(), b"2".to_vec()),
            ],
        };
        assert_eq!(op.keys(), vec![&b"a"[..], b"a"]);
        assert_eq!(op.key_count(), 2);
        let op = RedisOp::HMGet {
            key: b"h".to_vec(),
            fields: vec![b"f".to_vec(), b"g".to_vec()],
        };
        assert_eq!(op.keys(), vec![&b"h"[..]]);
        assert_eq!(op.key_count(), 1);
    }
}
