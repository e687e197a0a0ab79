//! The Redis data model: Redis strings and hashes stored in two KV maps, and
//! [`RedisCommand`], one MULTI/EXEC block (or one bare command) executed as one
//! Stele transaction through `Command::Redis`.
//!
//! The modules:
//!
//! - [`command`] — [`RedisCommand`] (ops + WATCHed digests): validation, key set,
//!   execution; [`execute_read`] for reads against committed state.
//! - [`ops`] — [`RedisOp`], one Redis command's arguments, and [`SetCondition`].
//! - `exec` — how each op reads and writes the two maps, and [`watch_digest`].
//! - [`keys`] — [`key_name`] / [`key_bytes`]: Redis key bytes <-> KV key strings.
//! - [`hash`] — the stored form of one hash (format byte [`hash::HASH_FORMAT`]).
//! - [`integer`] — Redis's exact integer parsing (`string2ll`) and printing.
//! - [`reply`] — [`Reply`] and its JSON form; [`replies_from_response`].
//!
//! Invariants kept:
//!
//! - A Redis key `k` is stored under `key_name(k)` in [`STRINGS_MAP`] (raw bytes) or
//!   in [`HASHES_MAP`] (an encoded, non-empty hash), never in both when only Redis
//!   ops wrote it. Every op declares both (map, key) pairs of every key it names, so
//!   it can check the type and overwrite the other map.
//! - Execution is a pure function of the command and the state: hashes are sorted
//!   byte-wise (`BTreeMap`), no hash-map iteration order, no clock.
//! - A runtime error (WRONGTYPE, not an integer, overflow, too large) is the
//!   [`Reply::Error`] of its op, which then writes nothing; the other ops still run
//!   (Redis MULTI semantics). Only a changed WATCHed key aborts the command.
//! - Every argument is bounded at validation ([`RedisCommand::validate`]) and every
//!   write at execution ([`REDIS_VALUE_BYTES_MAX`], [`REDIS_HASH_BYTES_MAX`],
//!   [`REDIS_WRITE_BYTES_MAX`]), so a valid command's write set always fits the store.

pub mod command;
mod exec;
pub mod hash;
pub mod integer;
pub mod keys;
pub mod ops;
pub mod reply;

pub use command::{execute_read, RedisCommand, Watch};
pub use exec::watch_digest;
pub use keys::{key_bytes, key_name};
pub use ops::{RedisOp, SetCondition};
pub use reply::{replies_from_response, Reply};

/// The KV map of Redis strings: `key_name(key)` -> the value's bytes.
pub const STRINGS_MAP: &str = "redis";

/// The KV map of Redis hashes: `key_name(key)` -> the encoded hash ([`hash`]).
pub const HASHES_MAP: &str = "redis.hash";

/// Longest Redis key, in bytes (also the longest hash field name).
pub const REDIS_KEY_BYTES_MAX: usize = 1024;

/// Longest string value or hash field value, in bytes.
pub const REDIS_VALUE_BYTES_MAX: usize = 512 * 1024;

/// Largest encoded hash: one KV value.
pub const REDIS_HASH_BYTES_MAX: usize = stele_kv::VALUE_BYTES_MAX;

/// Most ops in one command (one MULTI block).
pub const REDIS_OPS_PER_TX_MAX: usize = 1024;

/// Most Redis keys one command names, counting every occurrence in its ops and its
/// watches (a key named twice counts twice: the bound is checked before any sorting
/// or deduplication). Its key set holds at most twice this many (map, key) pairs.
pub const REDIS_KEYS_PER_TX_MAX: usize = 1024;

/// Most value bytes one command's write set may hold (the sum over the KV keys it
/// writes of their final value's size). Arguments are bounded by
/// [`crate::COMMAND_BYTES_MAX`], but an HSET rewrites its whole hash, so without this
/// bound 1024 one-field HSETs on 1024 large hashes would write 1 GiB. An op that
/// would cross it answers [`ERROR_WRITES_TOO_LARGE`] and writes nothing.
pub const REDIS_WRITE_BYTES_MAX: usize = 4 << 20;

/// What a WATCH digest hashes before a string value ([`watch_digest`]).
pub const WATCH_TAG_STRING: u8 = b's';
/// What a WATCH digest hashes before a hash value ([`watch_digest`]).
pub const WATCH_TAG_HASH: u8 = b'h';

/// Redis's answer to an op on a key of the other type.
pub const ERROR_WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
/// INCRBY on a string that is not a canonical `i64`.
pub const ERROR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// INCRBY or HINCRBY past `i64`.
pub const ERROR_OVERFLOW: &str = "ERR increment or decrement would overflow";
/// HINCRBY on a field that is not a canonical `i64`.
pub const ERROR_HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
/// APPEND past [`REDIS_VALUE_BYTES_MAX`] (Redis names its own bound,
/// `proto-max-bulk-len`, the same way).
pub const ERROR_STRING_TOO_LARGE: &str =
    "ERR string exceeds maximum allowed size (REDIS_VALUE_BYTES_MAX, 524288 bytes)";
/// HSET or HINCRBY growing a hash past [`REDIS_HASH_BYTES_MAX`] (no Redis
/// counterpart: Redis hashes have no size bound).
pub const ERROR_HASH_TOO_LARGE: &str =
    "ERR hash exceeds maximum allowed size (REDIS_HASH_BYTES_MAX, 1048576 bytes)";
/// A command whose writes would cross [`REDIS_WRITE_BYTES_MAX`].
pub const ERROR_WRITES_TOO_LARGE: &str =
    "ERR transaction writes exceed maximum allowed size (REDIS_WRITE_BYTES_MAX, 4194304 bytes)";
/// A value in [`HASHES_MAP`] that is not an encoded hash (only the generic
/// transaction language can write one).
pub const ERROR_CORRUPT_HASH: &str = "ERR stored hash is not in the Stele hash format";

// An escaped key name (prefix + two hex digits a byte) must fit a KV key, and an
// encoded hash a KV value.
const _: () =
    assert!(keys::ESCAPED_KEY_PREFIX.len() + 2 * REDIS_KEY_BYTES_MAX <= stele_kv::KEY_BYTES_MAX);
const _: () = assert!(REDIS_HASH_BYTES_MAX <= stele_kv::VALUE_BYTES_MAX);
// One field of the largest size fits an empty hash, so an HSET of a valid field
// and value on a new key always succeeds.
const _: () = assert!(1 + 8 + REDIS_KEY_BYTES_MAX + REDIS_VALUE_BYTES_MAX <= REDIS_HASH_BYTES_MAX);
const _: () = assert!(REDIS_VALUE_BYTES_MAX <= stele_kv::VALUE_BYTES_MAX);

#[cfg(test)]
mod tests;

#[cfg(test)]
mod constant_tests {
    use super::*;

    #[test]
    fn error_texts_name_the_real_bounds() {
        assert!(ERROR_STRING_TOO_LARGE.contains(&format!("{REDIS_VALUE_BYTES_MAX} bytes")));
        assert!(ERROR_HASH_TOO_LARGE.contains(&format!("{REDIS_HASH_BYTES_MAX} bytes")));
        assert!(ERROR_WRITES_TOO_LARGE.contains(&format!("{REDIS_WRITE_BYTES_MAX} bytes")));
    }
}
