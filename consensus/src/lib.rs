//! `stele-consensus`: ordering, execution, history and durability, as one engine.
//!
//! ```text
//! submit --Submission--> batcher --batch--> dispatcher (kv) --results--> history
//!   (leaves, root, signed checkpoint) --BatchEntry+SignatureEntry--> ledger group
//!   commit --durable--> commit rule --> replies
//! ```
//!
//! The modules:
//!
//! - [`identity`] — re-export of `stele_history::identity` ([`ServiceIdentity`]),
//!   kept for the `stele_consensus::identity` path.
//! - [`history`] — re-export of `stele_history::state` ([`HistoryState`]), kept
//!   for the `stele_consensus::history` path.
//! - [`engine`] — [`Engine`]: the batcher and executor thread, pipelined with the
//!   ledger writer; the commit rule; committed reads.
//! - [`replay`] — rebuilding the KV store and the history from the ledger on start.
//! - `durable_file` — a small file replaced whole, durably, mode 0600 (the Raft
//!   meta file, the high-water file).
//! - [`high_water`] — [`high_water::HighWater`]: the largest committed tree,
//!   recorded before it is visible; a node refuses a ledger cut below it.
//! - [`raft`] — replication with openraft (P5): the type config and the Raft log
//!   storage over the ledger.
//! - [`snapshot`] — KV snapshots bound to the signed checkpoint at their seqno.
//! - `intake` — the bounded submission queue, and when the executor cuts a
//!   batch (when this node's log is idle: group commit at the batch level;
//!   then lingering, at most one sync's time, for as many as the last batch).
//! - `paced` — snapshot files synced and deleted in small steps, so they never
//!   hold the ledger's fsyncs behind a burst of IO; snapshot threads at nice 19.
//! - `waiters` — the submitters waiting for their batch's commit, answered by
//!   the state machine as it applies the batch.
//! - [`error`] — [`ConsensusError`].
//!
//! Invariants kept:
//!
//! - A transaction is reported committed only after the fdatasync covering its
//!   ledger entry returned (single member: durable = committed; P5 adds a
//!   majority). Reads serve committed state only.
//! - Batches are executed in order, one at a time; while batch k is being made
//!   durable, batch k+1 is executed (pipelining), and batch k+1 is never reported
//!   committed before batch k.
//! - Every batch is followed in the ledger by the signed checkpoint over the tree
//!   ending with it, so a committed transaction has a receipt at once.
//! - Single-node mode is consensus with one member: the same pipeline, the same
//!   ledger, no shortcut.

mod durable_file;
pub mod engine;
pub mod error;
mod executor;
pub mod high_water;
pub mod history;
pub mod identity;
mod intake;
mod paced;
pub mod raft;
pub mod replay;
pub mod replica;
pub mod snapshot;
mod waiters;

pub use engine::{
    ClusterSetup, Engine, EngineConfig, Members, RaftLogPolicy, RaftStatus, RaftTiming, Submission,
    SubmitResult, TxState,
};
pub use error::ConsensusError;
pub use history::HistoryState;
pub use identity::ServiceIdentity;
/// The Raft engine, re-exported for its types (RPCs, membership).
pub use openraft;
pub use replica::{EngineCounters, Fault};

/// Most executed transactions not yet committed: the primary refuses new
/// batches as busy beyond it (followers down or slow), which also bounds the
/// KV store's undo log and what a new leader may have to roll back.
pub const UNCOMMITTED_TX_MAX: u64 = 200_000;

/// Most submissions waiting for the batcher; more are refused as busy.
pub const SUBMIT_QUEUE_MAX: usize = 10_000;

/// Default most commands in one batch.
pub const BATCH_ENTRIES_DEFAULT: usize = 1000;

/// Default longest wait for a batch to fill while the log syncs the previous
/// one, in microseconds.
pub const BATCH_WAIT_US_DEFAULT: u64 = 1000;
