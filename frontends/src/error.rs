//! The one error type of this crate.

/// Why a command was rejected. All variants but [`FrontendError::UndeclaredKey`] are
/// rejected input (the client's fault, reported before execution);
/// `UndeclaredKey` is an internal invariant failure (a bug in an app).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontendError {
    /// The JSON did not parse into a command; serde's message names the field.
    #[error("malformed command: {message}")]
    Malformed {
        /// serde's description, e.g. "missing field `value` at line 1 column 40".
        message: String,
    },
    /// The command's JSON is larger than [`crate::COMMAND_BYTES_MAX`].
    #[error("command is {bytes} bytes, more than the maximum {max}")]
    CommandTooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// More operations than [`crate::OPS_PER_TX_MAX`].
    #[error("{ops} operations, more than the maximum {max}")]
    TooManyOps {
        /// How many there were.
        ops: usize,
        /// The bound.
        max: usize,
    },
    /// A Redis command names more keys than [`crate::redis::REDIS_KEYS_PER_TX_MAX`]
    /// (ops and watches, repeats included).
    #[error("{keys} Redis keys named, more than the maximum {max}")]
    TooManyKeys {
        /// How many there were.
        keys: usize,
        /// The bound.
        max: usize,
    },
    /// A Redis command's keys, fields and values add up to more than
    /// [`crate::COMMAND_BYTES_MAX`].
    #[error("arguments are {bytes} bytes in all, more than the maximum {max}")]
    ArgumentsTooLarge {
        /// Their total size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// A list that needs at least one element is empty (an MSET without pairs, a
    /// DEL without keys: Redis refuses them for their arity).
    #[error("field `{field}` is empty: at least one is needed")]
    EmptyArguments {
        /// Which list, e.g. `ops[0].pairs`.
        field: String,
    },
    /// A string field longer than its limit.
    #[error("field `{field}` is {bytes} bytes, more than the maximum {max}")]
    FieldTooLong {
        /// Where it is, e.g. `ops[2].key`, `claims` or `ops[0].pairs[1].value`.
        field: String,
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// An argument outside its allowed range.
    #[error("field `{field}`: {reason}")]
    InvalidArgument {
        /// Which argument.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An app touched a key it did not declare: a bug, not bad input.
    #[error("internal error: access to undeclared key {map}/{key}")]
    UndeclaredKey {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
}

impl FrontendError {
    /// Wraps a serde_json error, keeping its message (which names the field).
    pub fn from_json(error: &serde_json::Error) -> Self {
        FrontendError::Malformed {
            message: error.to_string(),
        }
    }

    /// Checks one string field against its limit.
    pub(crate) fn check_length(
        field: impl FnOnce() -> String,
        value: &str,
        max: usize,
    ) -> Result<(), Self> {
        if value.len() > max {
            return Err(FrontendError::FieldTooLong {
                field: field(),
                bytes: value.len(),
                max,
            });
        }
        Ok(())
    }
}
