//! [`FollowerGate`]: what a node does with a peer's Raft RPC before openraft sees
//! it. The follower's check lives here, not in the log storage's `append`
//! (which must never block): every new batch of an AppendEntries is
//! re-executed on this node's speculative state and compared with the
//! primary's; on a mismatch the RPC is refused (no acknowledgement), the
//! divergence is recorded, and this node stops listening to that leader's term
//! and calls an election (with backoff).
//!
//! A refused leader is also a *suspect* for a while: its vote requests are
//! refused, so a primary whose batches nobody can reproduce (and whose log is
//! therefore the longest) is not simply re-elected.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver as _;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::EntryPayload;
use openraft_legacy::network_v1::ChunkedSnapshotReceiver as _;

use super::transfer::TRANSFER_BYTES_MAX;
use super::types::{
    InstallSnapshotRequest, InstallSnapshotResponse, SteleRaft, SteleRaftHandle, SteleVote,
};
use crate::replica::Replica;
use crate::sync::lock;
use crate::ConsensusError;

/// How long a refused leader's vote requests are refused.
pub const SUSPECT_MS: u64 = 10_000;

/// First wait between elections this node calls after refusing batches; it
/// doubles on each further divergence, up to [`ELECTION_BACKOFF_MAX_MS`].
pub const ELECTION_BACKOFF_MIN_MS: u64 = 500;

/// Longest wait between elections called after divergences.
pub const ELECTION_BACKOFF_MAX_MS: u64 = 30_000;

#[derive(Default)]
struct Refusals {
    /// The leader vote whose batches this node refused: its heartbeats are
    /// refused too, so the election timer runs out.
    deposed: Option<SteleVote>,
    suspects: HashMap<u64, Instant>,
    last_election: Option<Instant>,
    backoff_ms: u64,
}

/// Checks peer RPCs, then hands them to openraft.
pub struct FollowerGate {
    replica: Arc<Replica>,
    raft: SteleRaftHandle,
    refusals: Mutex<Refusals>,
}

impl FollowerGate {
    pub(crate) fn new(replica: Arc<Replica>, raft: SteleRaftHandle) -> Self {
        FollowerGate {
            replica,
            raft,
            refusals: Mutex::new(Refusals::default()),
        }
    }

    /// Refuses the RPCs of a leader whose batches this node refused: its
    /// heartbeats too, so the election timer runs out.
    fn refuse_deposed(&self, vote: SteleVote) -> Result<(), ConsensusError> {
        if lock(&self.refusals).deposed == Some(vote) {
            return Err(ConsensusError::Divergence {
                seqno: 0,
                reason: format!(
                    "this node refused batches of the leader vote {vote}; it waits for another"
                ),
            });
        }
        Ok(())
    }

    /// AppendEntries: check every new batch, then let openraft append.
    pub async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<SteleRaft>,
    ) -> Result<AppendEntriesResponse<SteleRaft>, ConsensusError> {
        self.refuse_deposed(rpc.vote)?;
        let current = self.raft.metrics().borrow_watched().vote;
        let stale = rpc.vote.partial_cmp(&current) == Some(Ordering::Less);
        let has_batches = rpc
            .entries
            .iter()
            .any(|entry| matches!(entry.payload, EntryPayload::Normal(_)));
        let rpc = if stale || !has_batches {
            // openraft refuses a stale vote itself; heartbeats carry no batch.
            rpc
        } else {
            let replica = Arc::clone(&self.replica);
            let (rpc, checked) = tokio::task::spawn_blocking(move || {
                let checked = check_entries(&replica, &rpc);
                (rpc, checked)
            })
            .await
            .map_err(|error| ConsensusError::Raft(format!("the check task failed: {error}")))?;
            if let Err(error) = checked {
                self.diverged(rpc.vote, &error);
                return Err(error);
            }
            rpc
        };
        self.raft
            .append_entries(rpc)
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))
    }

    /// InstallSnapshot (one chunk): refused from a deposed leader, past
    /// [`TRANSFER_BYTES_MAX`], or (checked on every chunk, so before the last
    /// one hands the transfer to openraft) inconsistent with the sender's vote
    /// or with this node's committed log, which openraft 0.10 would answer by
    /// panicking its core. The installed transfer is checked as it is
    /// installed (`install.rs`), not here.
    pub async fn install_snapshot(
        &self,
        rpc: InstallSnapshotRequest,
    ) -> Result<InstallSnapshotResponse, ConsensusError> {
        self.refuse_deposed(rpc.vote)?;
        let end = rpc.offset.saturating_add(rpc.data.len() as u64);
        if end > TRANSFER_BYTES_MAX {
            return Err(ConsensusError::Raft(format!(
                "a snapshot transfer past {TRANSFER_BYTES_MAX} bytes"
            )));
        }
        let committed = self.raft.metrics().borrow_watched().local_committed;
        check_snapshot(&rpc.vote, rpc.meta.last_log_id, committed)?;
        self.raft
            .install_snapshot(rpc)
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))
    }

    /// RequestVote: refused for a suspect, else openraft decides.
    pub async fn vote(
        &self,
        rpc: VoteRequest<SteleRaft>,
    ) -> Result<VoteResponse<SteleRaft>, ConsensusError> {
        {
            let candidate = rpc.vote.leader_id.voted_for;
            let suspect = lock(&self.refusals)
                .suspects
                .get(&candidate)
                .is_some_and(|since| since.elapsed() < Duration::from_millis(SUSPECT_MS));
            if suspect {
                return Err(ConsensusError::Divergence {
                    seqno: 0,
                    reason: format!(
                        "node {candidate} proposed batches this node could not reproduce; \
                         its vote requests are refused for {SUSPECT_MS} ms"
                    ),
                });
            }
        }
        self.raft
            .vote(rpc)
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))
    }

    /// Records a refused batch, deposes its leader, and calls an election unless
    /// one was called within the backoff.
    fn diverged(&self, vote: SteleVote, error: &ConsensusError) {
        self.replica
            .record_divergence(format!("from the leader of {vote}: {error}"));
        let mut refusals = lock(&self.refusals);
        refusals.deposed = Some(vote);
        refusals
            .suspects
            .insert(vote.leader_id.voted_for, Instant::now());
        let backoff = Duration::from_millis(refusals.backoff_ms.max(ELECTION_BACKOFF_MIN_MS));
        let due = refusals
            .last_election
            .is_none_or(|last| last.elapsed() >= backoff);
        if due {
            refusals.last_election = Some(Instant::now());
            refusals.backoff_ms = (backoff.as_millis() as u64 * 2).min(ELECTION_BACKOFF_MAX_MS);
            let raft = self.raft.clone();
            tokio::spawn(async move {
                if let Err(error) = raft.trigger().elect(false).await {
                    tracing::warn!(%error, "cannot call an election");
                }
            });
        }
    }
}

/// Refuses a snapshot that no protocol-following leader of `vote` can send
/// to a node that has committed `committed` (openraft 0.10 panics its core
/// on one, `Raft::install_full_snapshot`): one whose last log id is beyond
/// the vote's term, or above `committed` but not at a greater index. (A
/// snapshot at or below `committed` is ignored by openraft.)
fn check_snapshot(
    vote: &SteleVote,
    last: Option<crate::raft::types::SteleLogId>,
    committed: Option<crate::raft::types::SteleLogId>,
) -> Result<(), ConsensusError> {
    let Some(last) = last else {
        return Err(ConsensusError::Raft(
            "a snapshot transfer without a last log id".to_owned(),
        ));
    };
    if last.leader_id.term > vote.leader_id.term {
        return Err(ConsensusError::Raft(format!(
            "a snapshot up to {last} sent by the leader of {vote}: beyond its term"
        )));
    }
    if let Some(committed) = committed {
        if last > committed && last.index <= committed.index {
            return Err(ConsensusError::Raft(format!(
                "a snapshot up to {last} contradicts this node's committed log (up to {committed})"
            )));
        }
    }
    Ok(())
}

/// Re-executes every batch of `rpc` this node does not hold yet.
fn check_entries(
    replica: &Replica,
    rpc: &AppendEntriesRequest<SteleRaft>,
) -> Result<(), ConsensusError> {
    let dispatcher = lock(&replica.execution);
    for entry in &rpc.entries {
        let EntryPayload::Normal(batch) = &entry.payload else {
            continue;
        };
        let term = entry.log_id.leader_id.term;
        if batch.batch.view != term {
            return Err(ConsensusError::Divergence {
                seqno: batch.batch.first_seqno,
                reason: format!(
                    "the batch was executed in view {} but logged in term {term}",
                    batch.batch.view
                ),
            });
        }
        let before = batch.batch.first_seqno.saturating_sub(1);
        let size = replica.read_history().size();
        if size < before {
            // This node's log ends earlier: openraft answers a conflict and the
            // leader backs off to what this node has.
            tracing::debug!(size, before, "batches after a gap: left to openraft");
            return Ok(());
        }
        replica.check_proposed(&dispatcher, batch)?;
    }
    Ok(())
}
