//! The generic transaction language: a list of `get`, `put`, `delete` and `check`
//! operations run in order, all or nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stele_kv::ReadView;

use crate::command::{AbortReason, KeySet};
use crate::scoped::{ScopedTx, Stop};
use crate::{
    FrontendError, CLAIMS_BYTES_MAX, KEY_BYTES_MAX, MAP_NAME_BYTES_MAX, OPS_PER_TX_MAX,
    VALUE_BYTES_MAX,
};

/// `{"ops":[...], "claims":"<optional text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// The operations, run in order.
    pub ops: Vec<Op>,
    /// Application claims, bound to the transaction but not interpreted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

/// One operation, tagged by `"op"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Reads a key; its value (or null) appears in the response.
    Get {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// Writes a key.
    Put {
        /// The map.
        map: String,
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Deletes a key.
    Delete {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// Precondition: the key's current value equals `value`, or it is absent when
    /// `value` is null. If not, the whole transaction aborts.
    Check {
        /// The map.
        map: String,
        /// The key.
        key: String,
        /// The expected value, or null for "absent".
        value: Option<String>,
    },
}

impl Op {
    /// The (map, key) the operation addresses.
    pub fn target(&self) -> (&str, &str) {
        match self {
            Op::Get { map, key }
            | Op::Put { map, key, .. }
            | Op::Delete { map, key }
            | Op::Check { map, key, .. } => (map, key),
        }
    }

    fn value(&self) -> Option<&str> {
        match self {
            Op::Put { value, .. } => Some(value),
            Op::Check { value, .. } => value.as_deref(),
            Op::Get { .. } | Op::Delete { .. } => None,
        }
    }
}

impl Transaction {
    /// Parses and validates the bare language, `{"ops":[...]}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FrontendError> {
        if bytes.len() > crate::COMMAND_BYTES_MAX {
            return Err(FrontendError::CommandTooLarge {
                bytes: bytes.len(),
                max: crate::COMMAND_BYTES_MAX,
            });
        }
        let transaction: Transaction =
            serde_json::from_slice(bytes).map_err(|error| FrontendError::from_json(&error))?;
        transaction.validate()?;
        Ok(transaction)
    }

    /// Checks the operation count and every string length.
    pub fn validate(&self) -> Result<(), FrontendError> {
        if self.ops.len() > OPS_PER_TX_MAX {
            return Err(FrontendError::TooManyOps {
                ops: self.ops.len(),
                max: OPS_PER_TX_MAX,
            });
        }
        for (index, op) in self.ops.iter().enumerate() {
            let (map, key) = op.target();
            FrontendError::check_length(|| format!("ops[{index}].map"), map, MAP_NAME_BYTES_MAX)?;
            FrontendError::check_length(|| format!("ops[{index}].key"), key, KEY_BYTES_MAX)?;
            if let Some(value) = op.value() {
                FrontendError::check_length(
                    || format!("ops[{index}].value"),
                    value,
                    VALUE_BYTES_MAX,
                )?;
            }
        }
        if let Some(claims) = &self.claims {
            FrontendError::check_length(|| "claims".to_owned(), claims, CLAIMS_BYTES_MAX)?;
        }
        Ok(())
    }

    /// Every key any operation addresses.
    pub fn key_set(&self) -> KeySet {
        KeySet::new(
            self.ops
                .iter()
                .map(|op| {
                    let (map, key) = op.target();
                    (map.to_owned(), key.to_owned())
                })
                .collect(),
        )
    }

    /// Runs the operations in order. Response: `{"results":[{"map","key","value"}]}`
    /// with one entry per `get`, in order.
    pub(crate) fn execute<V: ReadView + ?Sized>(
        &self,
        tx: &mut ScopedTx<'_, V>,
    ) -> Result<Value, Stop> {
        let mut results = Vec::new();
        for (op_index, op) in self.ops.iter().enumerate() {
            match op {
                Op::Get { map, key } => {
                    let value = match tx.get(map, key)? {
                        None => Value::Null,
                        Some(bytes) => Value::String(utf8(bytes, map, key)?),
                    };
                    results.push(json!({ "map": map, "key": key, "value": value }));
                }
                Op::Put { map, key, value } => tx.put(map, key, value.as_bytes().to_vec())?,
                Op::Delete { map, key } => tx.delete(map, key)?,
                Op::Check { map, key, value } => {
                    let current = tx.get(map, key)?;
                    if current != value.as_deref().map(str::as_bytes) {
                        return Err(Stop::Abort(AbortReason::CheckFailed {
                            op_index,
                            map: map.clone(),
                            key: key.clone(),
                        }));
                    }
                }
            }
        }
        Ok(json!({ "results": results }))
    }
}

/// A stored value as a response string.
pub(crate) fn utf8(bytes: &[u8], map: &str, key: &str) -> Result<String, AbortReason> {
    String::from_utf8(bytes.to_vec()).map_err(|_| AbortReason::ValueNotUtf8 {
        map: map.to_owned(),
        key: key.to_owned(),
    })
}
