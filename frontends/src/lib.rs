//! `stele-frontends`: executing one transaction.
//!
//! The modules:
//!
//! - [`command`] — [`Command`], the one enum of everything a client can submit (it is
//!   stored in the ledger and re-executed by replicas); [`KeySet`], the keys a command
//!   declares before it runs; [`Execution`], [`Outcome`] and [`AbortReason`].
//! - [`transaction`] — the generic JSON transaction language (`get`, `put`, `delete`,
//!   `check`), [`Transaction`] and [`Op`].
//! - [`logging`] — the logging app (CCF's canonical sample): record and read messages.
//! - [`smallbank`] — the SmallBank OLTP benchmark app, in integer cents.
//! - [`redis`] — the Redis data model (strings and hashes in two KV maps) and
//!   [`RedisCommand`], one MULTI block executed by the RESP listener's commands.
//! - [`scoped`] — the transaction wrapper that refuses keys outside the declared set.
//! - [`error`] — [`FrontendError`].
//!
//! Invariants kept:
//!
//! - Execution is a pure function of the command and the state it reads: no clock,
//!   no randomness, no hash-map iteration order. Responses are `serde_json::Value`
//!   built in a fixed order.
//! - A command reads and writes only keys of its declared [`KeySet`], which is
//!   derived from its arguments alone; the dispatcher schedules on it.
//! - An aborted command writes nothing (its write set is empty) and its abort reason
//!   is a deterministic, typed value.
//! - Every limit below is checked at validation, before any execution; bad input is
//!   a typed [`FrontendError`], never a panic.

pub mod command;
pub mod error;
pub mod logging;
pub mod redis;
pub mod scoped;
pub mod smallbank;
pub mod transaction;

pub use command::{AbortReason, Command, Execution, KeySet, Outcome};
pub use error::FrontendError;
pub use logging::LoggingCommand;
pub use redis::RedisCommand;
pub use smallbank::SmallBankCommand;
pub use transaction::{Op, Transaction};

/// Largest command accepted as JSON, in bytes: checked before parsing.
pub const COMMAND_BYTES_MAX: usize = 1 << 20;

/// Most operations in one generic transaction.
pub const OPS_PER_TX_MAX: usize = 64;

/// Longest map name, in bytes.
pub const MAP_NAME_BYTES_MAX: usize = 128;

/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 1024;

/// Longest value (and logging message), in bytes.
pub const VALUE_BYTES_MAX: usize = 16 * 1024;

/// Longest claims text, in bytes.
pub const CLAIMS_BYTES_MAX: usize = 4096;

/// Most accounts one SmallBank `create_accounts` command creates (its key set holds
/// two keys per account, so this bounds the key set too).
pub const ACCOUNTS_PER_SETUP_MAX: u32 = 1000;

// Client limits must sit inside the store's hard limits, or a valid command could
// produce a write set the store refuses.
const _: () = assert!(MAP_NAME_BYTES_MAX <= stele_kv::MAP_NAME_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX <= stele_kv::KEY_BYTES_MAX);
const _: () = assert!(VALUE_BYTES_MAX <= stele_kv::VALUE_BYTES_MAX);
