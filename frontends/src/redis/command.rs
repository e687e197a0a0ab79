//! [`RedisCommand`]: the ops of one MULTI block (or one bare command) and the keys
//! WATCHed before it, executed as one Stele transaction; and [`execute_read`] for
//! one read against committed state.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stele_kv::ReadView;

use super::exec::Executor;
use super::reply::response_of;
use super::{
    key_name, RedisOp, Reply, HASHES_MAP, REDIS_KEYS_PER_TX_MAX, REDIS_KEY_BYTES_MAX,
    REDIS_OPS_PER_TX_MAX, STRINGS_MAP,
};
use crate::command::{AbortReason, KeySet};
use crate::scoped::{ScopedTx, Stop};
use crate::{FrontendError, COMMAND_BYTES_MAX};

/// One Redis transaction: `ops` run in order, each answering one [`Reply`]; the
/// committed response is `{"replies":[...]}`. Before the first op, every watch is
/// compared with the key's current digest and the command aborts with
/// [`AbortReason::WatchedKeyChanged`] (EXEC answers a nil array) at the first that
/// differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCommand {
    /// The ops, in order.
    pub ops: Vec<RedisOp>,
    /// The WATCHed keys and what WATCH saw.
    #[serde(default)]
    pub watches: Vec<Watch>,
}

/// One WATCHed key and its [`super::watch_digest`] when WATCH ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its digest then, `None` if it was absent.
    #[serde(default, with = "serde_bytes")]
    pub digest: Option<[u8; 32]>,
}

impl RedisCommand {
    /// Checks every limit: at most [`REDIS_OPS_PER_TX_MAX`] ops, at most
    /// [`REDIS_KEYS_PER_TX_MAX`] keys named (ops and watches, repeats included), every
    /// key, field and value within its bound, no empty list, and at most
    /// [`COMMAND_BYTES_MAX`] argument bytes in all. Counts are checked before the
    /// arguments are read.
    pub fn validate(&self) -> Result<(), FrontendError> {
        validate_parts(&self.ops, &self.watches)
    }

    /// Both (map, key) pairs of every key the ops and the watches name: an op must
    /// see both maps to check the type, and may overwrite either.
    pub fn key_set(&self) -> KeySet {
        key_set_of(&self.ops, &self.watches)
    }

    /// Checks the watches, then runs every op. A runtime error is that op's reply;
    /// only a changed watch aborts.
    pub(crate) fn execute<V: ReadView + ?Sized>(
        &self,
        tx: &mut ScopedTx<'_, V>,
    ) -> Result<Value, Stop> {
        let mut executor = Executor::new(tx);
        for watch in &self.watches {
            let name = key_name(&watch.key);
            if executor.digest(&name)? != watch.digest {
                return Err(Stop::Abort(AbortReason::WatchedKeyChanged { key: name }));
            }
        }
        let mut replies = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            replies.push(executor.run(op)?);
        }
        debug_assert_eq!(replies.len(), self.ops.len(), "one reply per op");
        Ok(response_of(&replies))
    }
}

/// [`RedisCommand::validate`] of borrowed parts.
fn validate_parts(ops: &[RedisOp], watches: &[Watch]) -> Result<(), FrontendError> {
    if ops.len() > REDIS_OPS_PER_TX_MAX {
        return Err(FrontendError::TooManyOps {
            ops: ops.len(),
            max: REDIS_OPS_PER_TX_MAX,
        });
    }
    let keys = ops
        .iter()
        .map(RedisOp::key_count)
        .fold(watches.len(), usize::saturating_add);
    if keys > REDIS_KEYS_PER_TX_MAX {
        return Err(FrontendError::TooManyKeys {
            keys,
            max: REDIS_KEYS_PER_TX_MAX,
        });
    }
    let mut argument_bytes = 0;
    for (index, op) in ops.iter().enumerate() {
        op.validate(&format!("ops[{index}]"), &mut argument_bytes)?;
    }
    for (index, watch) in watches.iter().enumerate() {
        if watch.key.len() > REDIS_KEY_BYTES_MAX {
            return Err(FrontendError::FieldTooLong {
                field: format!("watches[{index}].key"),
                bytes: watch.key.len(),
                max: REDIS_KEY_BYTES_MAX,
            });
        }
        argument_bytes = argument_bytes.saturating_add(watch.key.len());
    }
    if argument_bytes > COMMAND_BYTES_MAX {
        return Err(FrontendError::ArgumentsTooLarge {
            bytes: argument_bytes,
            max: COMMAND_BYTES_MAX,
        });
    }
    Ok(())
}

/// [`RedisCommand::key_set`] of borrowed parts.
fn key_set_of(ops: &[RedisOp], watches: &[Watch]) -> KeySet {
    let keys = ops
        .iter()
        .flat_map(RedisOp::keys)
        .chain(watches.iter().map(|watch| watch.key.as_slice()));
    KeySet::new(keys.flat_map(both_maps).collect())
}

/// The two (map, KV key) pairs of one Redis key.
fn both_maps(key: &[u8]) -> [(String, String); 2] {
    let name = key_name(key);
    [
        (STRINGS_MAP.to_owned(), name.clone()),
        (HASHES_MAP.to_owned(), name),
    ]
}

/// Runs a read-only op against `view` (the node's committed state) with the same
/// code as inside a transaction; nothing is written. A write op, or an op that
/// fails validation, answers an error instead (a write needs ordering; an invalid
/// op would do unbounded work).
pub fn execute_read(op: &RedisOp, view: &(impl ReadView + ?Sized)) -> Reply {
    if op.is_write() {
        return Reply::Error(format!(
            "ERR {} writes: it must be submitted as a transaction",
            op.name()
        ));
    }
    let ops = std::slice::from_ref(op);
    if let Err(error) = validate_parts(ops, &[]) {
        return Reply::Error(format!("ERR {error}"));
    }
    let key_set = key_set_of(ops, &[]);
    let mut tx = ScopedTx::new(view, &key_set);
    let reply = Executor::new(&mut tx).run(op);
    debug_assert!(tx.into_write_set().is_empty(), "a read op wrote");
    match reply {
        Ok(reply) => reply,
        // Only an undeclared key stops an op, and the key set is the op's own.
        Err(Stop::Fault(error)) => Reply::Error(format!("ERR {error}")),
        Err(Stop::Abort(reason)) => Reply::Error(format!("ERR aborted: {reason:?}")),
    }
}
