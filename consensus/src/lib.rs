//! `stele-consensus`: ordering, execution, history and durability, as one engine.
//!
//! ```text
//!              submit                                 peers (AppendEntries, votes)
//!                |                                          |
//!   intake --batch--> executor --execute--> Replica     follower check (Replica::check_proposed:
//!   (queue, cut)      (primary)  (dispatcher, history,   re-execute, compare write sets and
//!                        |        signed checkpoint)     root) --> acknowledge
//!                        | propose(ExecutedBatch)               ^
//!                        v                                      |
//!   ====================== Sequencer (the seam) =======================
//!      Raft backend: openraft over the ledger (log store = group commit,
//!      one fdatasync per batch group); state machine: apply = confirm
//!                        |
//!        committed --> Replica::apply_committed --> waiters answered, reads see it
//!        truncated --> Replica::truncated (rollback)
//! ```
//!
//! The replica core knows nothing of Raft; the protocol knows nothing of
//! execution. The modules:
//!
//! - [`sequencer`] — [`Sequencer`]: what the core needs from an ordering
//!   protocol, and what a protocol calls on the core.
//! - [`engine`] — [`Engine`]: the core wired to a backend; submit, membership,
//!   status, shutdown. `reads.rs`: the committed reads.
//! - [`replica`] — [`Replica`]: the speculative state and the four things done
//!   to it (execute, check, roll back, confirm).
//! - `executor` — the primary's executor thread; `intake` — the bounded
//!   submission queue and when a batch is cut (group commit at the batch
//!   level); `waiters` — submitters waiting for their batch's commit.
//! - [`submission`] — [`Submission`], [`SubmitResult`], [`TxState`], and the
//!   retryable [`SubmitError`]; [`error`] — [`ConsensusError`].
//! - [`batch`] — [`ExecutedBatch`], the unit of ordering; [`members`] —
//!   [`SteleNode`] and [`Members`]; [`config`] — [`EngineConfig`].
//! - [`identity`] — re-export of `stele_history::identity` ([`ServiceIdentity`]),
//!   kept for the `stele_consensus::identity` path.
//! - [`history`] — re-export of `stele_history::state` ([`HistoryState`]), kept
//!   for the `stele_consensus::history` path.
//! - [`replay`] — rebuilding the KV store and the history from the ledger on
//!   start (from the newest KV snapshot that fits, then the ledger suffix).
//! - [`snapshot`] — KV snapshots bound to the signed checkpoint at their
//!   seqno; `snapshotter` — the thread that writes them; `paced` — their
//!   files synced and deleted in small steps, at nice 19.
//! - [`high_water`] — [`high_water::HighWater`]: the largest committed tree,
//!   recorded before it is visible; a node refuses a ledger cut below it.
//! - `durable_file` — a small file replaced whole, durably, mode 0600.
//! - `sync` — the lock helpers.
//! - [`raft`] — the Raft backend: openraft, the log storage over the ledger,
//!   the follower gate, snapshot transfer and the peer transport.
//!
//! Invariants kept:
//!
//! - A transaction is reported committed only after a majority's fdatasync
//!   covering its ledger entry returned (a single member: its own). Reads
//!   serve committed state only.
//! - Batches are executed in order, one at a time; while batch k is being made
//!   durable, batch k+1 is executed (pipelining), and batch k+1 is never reported
//!   committed before batch k.
//! - A node acknowledges a batch only after re-executing it to the same write
//!   sets and root (the follower check).
//! - The speculative KV store and the history end at the same seqno; the
//!   commit point only moves forward (both `debug_assert!`ed).
//! - Every batch is followed in the ledger by the signed checkpoint over the tree
//!   ending with it, so a committed transaction has a receipt at once.
//! - Single-node mode is consensus with one member: the same pipeline, the same
//!   ledger, no shortcut.

pub mod batch;
pub mod bft;
pub mod config;
#[cfg(test)]
mod core_tests;
mod durable_file;
pub mod engine;
pub mod error;
mod executor;
pub mod high_water;
pub mod history;
pub mod identity;
mod intake;
pub mod members;
mod paced;
pub mod raft;
mod reads;
pub mod replay;
pub mod replica;
pub mod sequencer;
pub mod snapshot;
mod snapshotter;
pub mod submission;
mod sync;
mod waiters;

pub use batch::ExecutedBatch;
pub use bft::BftSetup;
pub use config::EngineConfig;
pub use engine::{Engine, NodeStatus};
pub use error::ConsensusError;
pub use history::HistoryState;
pub use identity::ServiceIdentity;
pub use members::{Members, SteleNode};
/// The Raft engine, re-exported for its types (RPCs, membership).
pub use openraft;
/// openraft's v1 network and chunked snapshots (the peer transport's), re-exported.
pub use openraft_legacy;
pub use raft::{ClusterSetup, RaftLogPolicy, RaftTiming};
pub use replica::{EngineCounters, Fault};
pub use sequencer::Sequencer;
pub use submission::{Submission, SubmitError, SubmitResult, TxState};

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
