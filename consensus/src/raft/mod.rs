//! Replication with openraft (issue P5): the hook points between the Raft engine
//! and Stele's ledger, KV store and history. `docs/consensus.md` is the design.
//!
//! The modules:
//!
//! - [`sequencer`] — [`RaftSequencer`]: the Raft backend of the core's
//!   [`Sequencer`](crate::sequencer::Sequencer) seam; starts openraft and
//!   wires the log's hooks to the replica core.
//! - [`config`] — [`ClusterSetup`], [`RaftTiming`], [`RaftLogPolicy`] and the
//!   bounds of Raft messages.
//! - [`types`] — [`SteleRaft`], the `RaftTypeConfig`: one Raft entry's normal
//!   payload is one executed batch ([`ExecutedBatch`]).
//! - [`meta`] — [`RaftMeta`]: the vote, the committed log id, the purge point, the
//!   Raft-only entries (blank and membership) and a pending truncation, in one
//!   small file replaced atomically (write, fsync, rename, fsync folder).
//! - [`log_store`] — [`LedgerLogStore`]: `RaftLogStorage` over the ledger (reads
//!   through the ledger's batch locations, appends through [`GroupCommit`],
//!   truncation through the writer thread), its writer half (`log_writer.rs`)
//!   and its reader [`LedgerLogReader`] (`log_reader.rs`).
//! - [`state_machine`] — [`ReplicaStateMachine`]: apply = confirm; snapshots
//!   built and installed as transfer files.
//! - [`transfer`] — the snapshot transfer: a KV snapshot and the ledger up to
//!   its seqno; a kept snapshot is its head (the state) only, and
//!   [`transfer_data`] sends it with the ledger's own bytes; `install` checks
//!   and installs a received one.
//! - [`fetch`] — the background fetch of the seqnos a resumed ledger skipped:
//!   served to peers from the ledger, fetched from them, checked against the
//!   signed checkpoints, written in front of the gap.
//! - `compaction` — when a snapshot is built (geometric intervals: a build
//!   writes the whole state).
//! - [`follower`] — [`FollowerGate`]: the follower's check before openraft sees
//!   an AppendEntries.
//! - [`network`] — the Ed25519-signed peer transport over HTTPS, both halves:
//!   the client openraft calls peers with ([`network::PeerNetwork`]) and the
//!   peer routes a node serves ([`network::router`] over
//!   [`network::PeerService`], which [`RaftSequencer`] implements); message
//!   authentication, TLS pinning and test partitions in modules of their own.
//!
//! Invariants kept:
//!
//! - Raft log index `i` is the `i`-th entry of the merged sequence "ledger
//!   batches, with the Raft-only entries of the meta file inserted at their
//!   recorded positions"; a batch's log id is `(BatchEntry::view, i)`
//!   (standard Raft leader ids: a committed leader id is the term alone).
//! - A Raft-only entry is made durable before any later batch is queued, so after
//!   a crash the meta file never lacks an entry that precedes a durable batch;
//!   entries recorded past the durable end of the ledger are dropped on open.
//! - A truncation is first recorded in the meta file, then applied to the ledger,
//!   then cleared, so a crash midway is finished on open.
//!
//! [`GroupCommit`]: stele_ledger::GroupCommit

pub(crate) mod compaction;
pub mod config;
pub mod fetch;
pub mod follower;
mod install;
pub mod log_store;
pub mod meta;
pub mod network;
pub mod sequencer;
pub mod state_machine;
pub mod transfer;
pub mod transfer_data;
pub mod types;

pub use config::{ClusterSetup, RaftLogPolicy, RaftTiming};
pub use follower::FollowerGate;
pub use log_store::{LedgerLogReader, LedgerLogStore};
pub use meta::RaftMeta;
pub use sequencer::RaftSequencer;
pub use state_machine::ReplicaStateMachine;
pub use types::{BatchApplied, ExecutedBatch, SteleNode, SteleRaft};

/// The leader this node knows of, and its address from the membership.
pub(crate) fn known_leader(metrics: &types::SteleMetrics) -> (Option<u64>, Option<String>) {
    let address = metrics.current_leader.and_then(|leader| {
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| node.addr.clone())
    });
    (metrics.current_leader, address)
}
