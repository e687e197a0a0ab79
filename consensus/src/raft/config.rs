//! The Raft backend's configuration: who this node is among whom
//! ([`ClusterSetup`]), its timing ([`RaftTiming`]) and log compaction
//! ([`RaftLogPolicy`]), and the bounds of its messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::network::{Partition, PeerAuth};
use crate::members::SteleNode;

/// Raft timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// Between the leader's heartbeats.
    pub heartbeat_ms: u64,
    /// Shortest election timeout.
    pub election_timeout_min_ms: u64,
    /// Longest election timeout.
    pub election_timeout_max_ms: u64,
    /// Longest wait for a node being added to acknowledge the leader's log
    /// (see [`Engine::add_member`]).
    pub learner_catch_up_timeout_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            learner_catch_up_timeout_ms: LEARNER_CATCH_UP_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// When the Raft log is compacted into a snapshot (the compaction is logical:
/// the ledger keeps every batch; a snapshot only lets a node far behind catch
/// up from a KV snapshot plus the ledger instead of re-executing the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftLogPolicy {
    /// Applied entries before the first snapshot, and the least between two;
    /// later snapshots wait for half the entries the last one covered (see
    /// `raft/compaction.rs`). 0: never, and no node is ever sent one.
    pub snapshot_entries: u64,
    /// Entries kept readable behind a snapshot: a node at most this far
    /// behind still catches up from the log.
    pub entries_kept: u64,
    /// Send resume transfers (`STELXFR2`): the KV state and the tree's
    /// frontier, not the ledger before the snapshot, so a joining node serves
    /// in O(state); its ledger then resumes at the snapshot (and lacks the
    /// batches before it until it fetched them, `fetch_skipped`). The
    /// default. Off: full transfers with the ledger (`STELXFR1`). A node whose
    /// own log starts at a snapshot always sends resume ones.
    pub resume_transfers: bool,
    /// A node whose ledger skips seqnos (it joined from a resume transfer)
    /// fetches their batches from its peers in the background (`fetch.rs`),
    /// so that it ends with the whole ledger. Off: it keeps only the suffix
    /// from where it joined.
    pub fetch_skipped: bool,
}

impl Default for RaftLogPolicy {
    fn default() -> Self {
        RaftLogPolicy {
            snapshot_entries: 10_000,
            entries_kept: 1_000,
            resume_transfers: true,
            fetch_skipped: true,
        }
    }
}

/// How many entries behind the leader a learner may be for openraft's own
/// blocking `add_learner` (unused: [`Engine::add_member`] waits for the
/// learner's acknowledgement instead).
pub const LEARNER_LAG_MAX_ENTRIES: u64 = 64;

/// Default longest wait for a node being added to acknowledge the leader's log
/// up to the call, in milliseconds: catching up re-executes every batch (a
/// snapshot transfer for a long log), so this allows for a large ledger.
pub const LEARNER_CATCH_UP_TIMEOUT_MS_DEFAULT: u64 = 600_000;

/// Bytes of snapshot data per InstallSnapshot message (well under the peer
/// message limit).
pub const SNAPSHOT_CHUNK_BYTES: u64 = 8 << 20;

/// Longest wait for one snapshot chunk to be sent and stored, in milliseconds.
pub const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 10_000;

/// Who this node is among whom.
pub struct ClusterSetup {
    /// This node's id.
    pub node_id: u64,
    /// Every voter (this node included) and its HTTPS address.
    pub members: BTreeMap<u64, SteleNode>,
    /// This node's peer key and the members' pinned public keys.
    pub auth: Arc<PeerAuth>,
    /// Peers whose traffic is dropped (test partitions).
    pub partition: Partition,
    /// Raft timing.
    pub timing: RaftTiming,
    /// Log compaction into snapshots.
    pub log: RaftLogPolicy,
    /// A node joining an existing cluster: it never initialises a membership
    /// of its own, and waits to be added by the leader (`members` then lists
    /// the existing members, for their addresses and keys, and itself).
    pub join: bool,
}

/// Most entries (batches) in one AppendEntries: bounds a peer message.
pub const APPEND_ENTRIES_MAX: u64 = 16;

/// Longest wait at start for a single-member cluster to elect itself.
pub(crate) const SINGLE_ELECTION_WAIT_MS: u64 = 10_000;

/// Longest wait at start for a node that led before it stopped to move to a
/// new term (it stands for election at once: only the vote's save waits).
pub(crate) const NEW_VIEW_WAIT_MS: u64 = 10_000;
