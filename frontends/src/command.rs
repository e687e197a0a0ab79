//! [`Command`], [`KeySet`], and what executing a command yields.

use serde::{Deserialize, Serialize};
use stele_kv::{ReadView, WriteSet};

use crate::logging::LoggingCommand;
use crate::redis::RedisCommand;
use crate::scoped::{ScopedTx, Stop};
use crate::smallbank::SmallBankCommand;
use crate::transaction::Transaction;
use crate::{FrontendError, COMMAND_BYTES_MAX};

/// Everything a client can submit. Serialized as an externally tagged object, e.g.
/// `{"transaction":{"ops":[...]}}`, `{"logging":{"op":"read","id":7}}`,
/// `{"small_bank":{"op":"balance","account":3}}`,
/// `{"redis":{"ops":[{"op":"get","key":"k"}]}}`; stored in the ledger (as CBOR) and
/// re-executed from there by replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// A generic key-value transaction.
    Transaction(Transaction),
    /// A logging app command.
    Logging(LoggingCommand),
    /// A SmallBank app command.
    SmallBank(SmallBankCommand),
    /// A Redis transaction (one MULTI block or one command), from the RESP listener.
    Redis(RedisCommand),
}

/// The keys a command may touch, as sorted, deduplicated (map, key) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<(String, String)>,
}

impl KeySet {
    /// Sorts and deduplicates `keys`.
    pub fn new(mut keys: Vec<(String, String)>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        KeySet { keys }
    }

    /// True if `key` in `map` is declared.
    pub fn contains(&self, map: &str, key: &str) -> bool {
        self.keys
            .binary_search_by(|(m, k)| (m.as_str(), k.as_str()).cmp(&(map, key)))
            .is_ok()
    }

    /// The declared keys, in (map, key) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys
            .iter()
            .map(|(map, key)| (map.as_str(), key.as_str()))
    }

    /// Number of declared keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a transaction aborted. Deterministic: replicas re-executing the command on the
/// same state produce the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case", deny_unknown_fields)]
pub enum AbortReason {
    /// A `check` operation did not hold.
    CheckFailed {
        /// Index of the failed `check` in `ops`.
        op_index: usize,
        /// Its map.
        map: String,
        /// Its key.
        key: String,
    },
    /// The key to read is absent (logging `read`).
    NotFound {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// A value read for the response is not UTF-8 (values are strings in the
    /// language, but the store holds bytes).
    ValueNotUtf8 {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// A SmallBank account does not exist.
    UnknownAccount {
        /// The account.
        account: u64,
    },
    /// A SmallBank account to create exists already.
    AccountExists {
        /// The account.
        account: u64,
    },
    /// A SmallBank balance would go below zero.
    InsufficientFunds {
        /// The account.
        account: u64,
    },
    /// A SmallBank amount that must not be negative is.
    NegativeAmount {
        /// The amount.
        amount_cents: i64,
    },
    /// A balance computation overflowed `i64` cents.
    Overflow,
    /// A stored balance is not a decimal integer (something else wrote the key).
    CorruptBalance {
        /// The map.
        map: String,
        /// The key.
        key: String,
    },
    /// A key WATCHed by a Redis transaction changed since WATCH (EXEC answers a nil
    /// array).
    WatchedKeyChanged {
        /// Its KV key name ([`crate::redis::key_name`]), the first changed in watch
        /// order.
        key: String,
    },
    /// The command failed validation (possible only for a command that did not come
    /// through [`Command::from_json`], e.g. one replayed from a faulty primary).
    InvalidCommand {
        /// The validation error, as text.
        message: String,
    },
}

/// A command's result: a response, or an abort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Completed (did not abort) with this response; whether it is committed
    /// is the engine's to say. Serialized under its first name, `committed`.
    #[serde(rename = "committed")]
    Completed(serde_json::Value),
    /// Aborted; wrote nothing.
    Aborted(AbortReason),
}

/// What executing one command against a view yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The response or abort reason.
    pub outcome: Outcome,
    /// Its writes (empty if aborted).
    pub write_set: WriteSet,
    /// `write_set.digest()`.
    pub write_set_digest: [u8; 32],
}

impl Execution {
    fn new(outcome: Outcome, write_set: WriteSet) -> Self {
        debug_assert!(matches!(outcome, Outcome::Completed(_)) || write_set.is_empty());
        let write_set_digest = write_set.digest();
        Execution {
            outcome,
            write_set,
            write_set_digest,
        }
    }
}

impl Command {
    /// Parses and validates a command from JSON. Size is checked before parsing.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FrontendError> {
        if bytes.len() > COMMAND_BYTES_MAX {
            return Err(FrontendError::CommandTooLarge {
                bytes: bytes.len(),
                max: COMMAND_BYTES_MAX,
            });
        }
        let command: Command =
            serde_json::from_slice(bytes).map_err(|error| FrontendError::from_json(&error))?;
        command.validate()?;
        Ok(command)
    }

    /// Checks every limit and argument; no state is needed.
    pub fn validate(&self) -> Result<(), FrontendError> {
        match self {
            Command::Transaction(transaction) => transaction.validate(),
            Command::Logging(command) => command.validate(),
            Command::SmallBank(command) => command.validate(),
            Command::Redis(command) => command.validate(),
        }
    }

    /// The keys this command may touch, from its arguments alone. Empty for an
    /// invalid command: it aborts without touching any key, and deriving its keys
    /// first could be unbounded (a `create_accounts` with a count of 2^32 - 1).
    pub fn key_set(&self) -> KeySet {
        if self.validate().is_err() {
            return KeySet::default();
        }
        match self {
            Command::Transaction(transaction) => transaction.key_set(),
            Command::Logging(command) => command.key_set(),
            Command::SmallBank(command) => command.key_set(),
            Command::Redis(command) => command.key_set(),
        }
    }

    /// Executes against `view`. An invalid command aborts with
    /// [`AbortReason::InvalidCommand`] (deterministically, so a faulty primary's bad
    /// command still gets the same result everywhere). `Err` means an internal
    /// invariant failed (an app touched an undeclared key).
    pub fn execute<V: ReadView + ?Sized>(&self, view: &V) -> Result<Execution, FrontendError> {
        self.execute_declared(view, &self.key_set())
    }

    /// [`Command::execute`] with the key set already computed (the dispatcher needs it
    /// for scheduling, so it is not derived twice). `key_set` must be
    /// `self.key_set()`.
    pub fn execute_declared<V: ReadView + ?Sized>(
        &self,
        view: &V,
        key_set: &KeySet,
    ) -> Result<Execution, FrontendError> {
        debug_assert_eq!(
            key_set,
            &self.key_set(),
            "the key set must be the declared one"
        );
        if let Err(error) = self.validate() {
            let reason = AbortReason::InvalidCommand {
                message: error.to_string(),
            };
            return Ok(Execution::new(Outcome::Aborted(reason), WriteSet::new()));
        }
        let mut tx = ScopedTx::new(view, key_set);
        let result = match self {
            Command::Transaction(transaction) => transaction.execute(&mut tx),
            Command::Logging(command) => command.execute(&mut tx),
            Command::SmallBank(command) => command.execute(&mut tx),
            Command::Redis(command) => command.execute(&mut tx),
        };
        match result {
            Ok(response) => Ok(Execution::new(
                Outcome::Completed(response),
                tx.into_write_set(),
            )),
            Err(Stop::Abort(reason)) => {
                Ok(Execution::new(Outcome::Aborted(reason), WriteSet::new()))
            }
            Err(Stop::Fault(error)) => Err(error),
        }
    }
}
