//! [`RaftSequencer`]: the Raft backend of the [`Sequencer`] seam — openraft
//! over the ledger-backed log store, the follower's check in front of it
//! ([`FollowerGate`]) and the peer keys that follow the membership.
//!
//! The core proposes an executed batch with a conditional write (refused unless
//! this node still leads the batch's view) and learns its
//! commit from the state machine (`state_machine.rs`, which applies =
//! confirms), its truncation from the log store's truncate hook, and the
//! group commit's progress from its durable hook.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture as _;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::impls::ProgressResponder;
use openraft::metrics::WaitError;
use openraft::network::{NetSnapshot, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::{ChangeMembers, Raft, ReadPolicy, ServerState, SnapshotPolicy, TryAsRef};
use stele_ledger::{Ledger, StorageHealth};

use super::config::{
    ClusterSetup, APPEND_ENTRIES_MAX, LEARNER_LAG_MAX_ENTRIES, NEW_VIEW_WAIT_MS,
    SINGLE_ELECTION_WAIT_MS, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_TIMEOUT_MS,
};
use super::network::{Partition, PeerAuth, PeerService};
use super::state_machine::{ReplicaStateMachine, Transfers};
use super::transfer::TRANSFER_DIR;
use super::transfer_data::TransferData;
use super::types::{
    InstallSnapshotRequest, InstallSnapshotResponse, LedgerFetch, LedgerFetched,
    SteleCommittedLeaderId, SteleRaftHandle,
};
use super::{FollowerGate, LedgerLogReader, LedgerLogStore, SteleRaft};
use crate::batch::ExecutedBatch;
use crate::members::{Members, SteleNode};
use crate::replica::Replica;
use crate::sequencer::{BoxFuture, Leadership, OnDurable, OrderStatus, ProposalDone, Sequencer};
use crate::{ConsensusError, SubmitError};

/// What openraft sends peer messages with: a factory of clients whose
/// snapshots are transfers (the state machine's snapshot data).
pub trait SteleNetworkFactory:
    RaftNetworkFactory<SteleRaft, Network: NetSnapshot<SteleRaft, SnapshotData = TransferData>>
{
}

impl<N> SteleNetworkFactory for N where
    N: RaftNetworkFactory<SteleRaft, Network: NetSnapshot<SteleRaft, SnapshotData = TransferData>>
{
}

/// One node's Raft engine and what talks to it.
pub struct RaftSequencer {
    raft: SteleRaftHandle,
    reader: LedgerLogReader,
    gate: FollowerGate,
    auth: Arc<PeerAuth>,
    partition: Partition,
    node_id: u64,
    runtime: tokio::runtime::Handle,
    learner_catch_up_timeout_ms: u64,
    storage: Arc<StorageHealth>,
    replica: Arc<Replica>,
}

impl RaftSequencer {
    /// Opens the Raft log over `ledger` (whose state `replica` was rebuilt
    /// from), wires the log's hooks to the replica core, starts openraft and
    /// the membership and compaction tasks. Inside a multi-threaded runtime.
    pub(crate) async fn start<N: SteleNetworkFactory>(
        ledger: Ledger,
        cluster: ClusterSetup,
        network: N,
        replica: &Arc<Replica>,
        on_durable: OnDurable,
        config: &crate::EngineConfig,
        source: Option<Arc<dyn super::fetch::LedgerSource>>,
    ) -> Result<Self, ConsensusError> {
        let committed_chunks_live = config.committed_chunks_live;
        let kv_snapshots = config.snapshot_dir.clone();
        let transfer_dir = ledger.dir().join(TRANSFER_DIR);
        let genesis = ledger.genesis().clone();
        let mut log_store = LedgerLogStore::open(ledger)?;
        log_store.log_writer().spawn_upkeep(committed_chunks_live)?;
        let storage = log_store.log_writer().storage_health();
        let log_writer = log_store.log_writer();
        let reader = log_store.reader();
        let transfers = Transfers {
            dir: transfer_dir,
            reader: reader.clone(),
            log: log_store.log_writer(),
            resume: cluster.log.resume_transfers,
            kv_snapshots,
        };
        let hook_replica = Arc::clone(replica);
        log_store.set_on_truncate(Box::new(move |batch| hook_replica.truncated(batch)));
        log_store.set_on_durable(on_durable);
        let raft = start_raft(&cluster, network, log_store, replica, transfers).await?;
        tokio::spawn(follow_membership_keys(
            raft.clone(),
            Arc::clone(&cluster.auth),
        ));
        tokio::spawn(super::compaction::trigger_snapshots(
            raft.clone(),
            cluster.log.snapshot_entries,
            Arc::clone(replica),
        ));
        if let Some(source) = source.filter(|_| cluster.log.fetch_skipped) {
            tokio::spawn(super::fetch::fetch_skipped(super::fetch::Fetcher {
                source,
                raft: raft.clone(),
                log: log_writer.clone(),
                reader: reader.clone(),
                replica: Arc::clone(replica),
                genesis,
                node_id: cluster.node_id,
            }));
        }
        Ok(RaftSequencer {
            gate: FollowerGate::new(Arc::clone(replica), raft.clone()),
            raft,
            reader,
            auth: cluster.auth,
            partition: cluster.partition,
            node_id: cluster.node_id,
            runtime: tokio::runtime::Handle::current(),
            learner_catch_up_timeout_ms: cluster.timing.learner_catch_up_timeout_ms,
            storage,
            replica: Arc::clone(replica),
        })
    }

    /// The ledger writer's health (a full disk, no file handles).
    pub(crate) fn storage_health(&self) -> Arc<StorageHealth> {
        Arc::clone(&self.storage)
    }

    /// `NotLeader` (naming the leader, if known) unless this node leads.
    /// Checked before a membership change: openraft refuses one on a
    /// follower that has not yet learned the commit of the last change with
    /// "already undergoing a configuration change" (a 503) instead of
    /// forwarding it (a 307).
    fn ensure_leader(&self) -> Result<(), ConsensusError> {
        let leadership = self.leadership();
        if leadership.leader == Some(self.node_id) {
            return Ok(());
        }
        Err(leadership.not_leader().into())
    }
}

/// The peer routes' side of the Raft backend ([`super::network::router`]).
impl PeerService for RaftSequencer {
    fn auth(&self) -> &PeerAuth {
        &self.auth
    }

    fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Checked by the follower's gate, then handed to openraft.
    fn append(
        &self,
        rpc: AppendEntriesRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<SteleRaft>, ConsensusError>> {
        Box::pin(self.gate.append_entries(rpc))
    }

    fn vote(
        &self,
        rpc: VoteRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<VoteResponse<SteleRaft>, ConsensusError>> {
        Box::pin(self.gate.vote(rpc))
    }

    fn snapshot(
        &self,
        rpc: InstallSnapshotRequest,
    ) -> BoxFuture<'_, Result<InstallSnapshotResponse, ConsensusError>> {
        Box::pin(self.gate.install_snapshot(rpc))
    }

    /// Read back from the ledger off the async threads.
    fn fetch(&self, rpc: LedgerFetch) -> BoxFuture<'_, Result<LedgerFetched, ConsensusError>> {
        let reader = self.reader.clone();
        let committed = self.replica.committed_seqno();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || super::fetch::serve(&reader, committed, rpc))
                .await
                .map_err(|error| ConsensusError::Stopped(format!("a ledger fetch: {error}")))?
        })
    }
}

impl Sequencer for RaftSequencer {
    fn leadership(&self) -> Leadership {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let (leader, address) = super::known_leader(&metrics);
        Leadership {
            leader,
            view: metrics.current_term,
            address,
        }
    }

    /// Proposed on condition that this node still leads the batch's view
    /// (openraft refuses it with `ForwardToLeader` otherwise), so a batch is
    /// never logged under another term.
    fn propose(&self, batch: ExecutedBatch, done: ProposalDone) -> Result<(), ConsensusError> {
        let view = batch.batch.view;
        let (responder, receiver) = ProgressResponder::complete_only();
        self.runtime
            .block_on(
                self.raft
                    .write(batch)
                    .with_leader(SteleCommittedLeaderId::new(view))
                    .responder(responder)
                    .into_future(),
            )
            .map_err(|fatal| {
                ConsensusError::Stopped(format!("the Raft engine stopped: {fatal}"))
            })?;
        self.runtime.spawn(async move {
            done(match receiver.await {
                // Applied: the state machine has answered the waiters.
                Ok(Ok(_)) => Ok(()),
                // Refused before it was logged, or logged and then cut while
                // this node followed another leader: not committed here; the
                // executor settles from the log.
                Ok(Err(
                    ClientWriteError::ForwardToLeader(forward)
                    | ClientWriteError::LogEntryDiscarded(forward),
                )) => Err(not_leader(&forward)),
                Ok(Err(error)) => Err(SubmitError::Stopped(format!("raft: {error}"))),
                Err(_) => Err(SubmitError::Stopped(
                    "the Raft engine dropped the proposal".to_owned(),
                )),
            });
        });
        Ok(())
    }

    fn logged_after(&self, seqno: u64) -> Result<Vec<ExecutedBatch>, ConsensusError> {
        self.reader.batches_after(seqno)
    }

    fn logged_batch(&self, seqno: u64) -> Result<Option<ExecutedBatch>, ConsensusError> {
        self.reader.batch_holding(seqno)
    }

    fn status(&self) -> OrderStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let role = match metrics.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Learner",
            ServerState::Shutdown => "Shutdown",
        };
        let (leader, leader_address) = super::known_leader(&metrics);
        OrderStatus {
            role: role.to_owned(),
            term: metrics.current_term,
            leader,
            leader_address,
        }
    }

    /// The voters and the learners of the current membership.
    fn members(&self) -> Members {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let (voters, learners) = membership
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .partition(|(id, _)| voters.contains(id));
        Members { voters, learners }
    }

    /// Adds node `id` as a voter: first as a learner, waiting until it has
    /// acknowledged the leader's log up to the call (re-executing and checking
    /// every batch), then promoted by a membership change. A learner that has
    /// not within `learner_catch_up_timeout_ms` (unreachable, too slow) is
    /// removed again, and the call fails with [`ConsensusError::Timeout`]: a
    /// voter that cannot follow would cost the cluster its quorum. Only the
    /// leader can.
    fn add_member(&self, id: u64, node: SteleNode) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            if node.verifying_key().is_none() {
                return Err(ConsensusError::Config(format!(
                    "the public key of node {id} is not an Ed25519 key in hex"
                )));
            }
            if self.members().voters.contains_key(&id) {
                return Err(ConsensusError::Config(format!(
                    "node {id} is already a voter"
                )));
            }
            self.ensure_leader()?;
            // Returns once the membership with the learner is committed.
            self.raft
                .add_learner(id, node, false)
                .await
                .map_err(from_raft_error)?;
            // On a task of its own, so that a client going away (dropping this
            // call) does not leave the learner half added.
            let raft = self.raft.clone();
            let timeout_ms = self.learner_catch_up_timeout_ms;
            tokio::spawn(async move {
                wait_for_learner(&raft, id, timeout_ms).await?;
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                raft.change_membership(change, false)
                    .await
                    .map_err(from_raft_error)?;
                Ok(())
            })
            .await
            .map_err(|error| ConsensusError::Stopped(format!("adding node {id}: {error}")))?
        })
    }

    /// Removes voter `id` from the membership (it stops receiving the log and
    /// its peer key is dropped). Only the leader can; removing the leader makes
    /// it step down once the change is committed.
    fn remove_member(&self, id: u64) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            let voters = self.members().voters;
            if !voters.contains_key(&id) {
                return Err(ConsensusError::Config(format!("node {id} is not a voter")));
            }
            if voters.len() == 1 {
                return Err(ConsensusError::Config(
                    "the last voter cannot be removed".to_owned(),
                ));
            }
            self.ensure_leader()?;
            let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
            self.raft
                .change_membership(change, false)
                .await
                .map_err(from_raft_error)?;
            Ok(())
        })
    }

    /// Waits until this node has applied everything the leader had committed
    /// when the call started (openraft's read index), so that a read after it is
    /// linearizable. Only the leader can answer.
    fn ensure_linearizable(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            self.raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map(|_| ())
                .map_err(from_raft_error)
        })
    }

    /// A storage error that is not clearable stops openraft: only a restart,
    /// which recovers from the ledger, repairs it.
    fn fatal(&self) -> Option<String> {
        match &self.raft.metrics().borrow_watched().running_state {
            // `Stopped` is a shutdown asked for.
            Ok(()) | Err(openraft::error::Fatal::Stopped) => None,
            Err(fatal) => Some(format!("the Raft engine stopped: {fatal}")),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(error) = self.raft.shutdown().await {
                tracing::error!(%error, "stopping the Raft engine");
            }
        })
    }
}

/// openraft's redirect as the submitter's refusal, naming the leader if known.
fn not_leader(forward: &ForwardToLeader<SteleRaft>) -> SubmitError {
    SubmitError::NotLeader {
        leader: forward.leader_id,
        address: forward.leader_node.as_ref().map(|node| node.addr.clone()),
    }
}

/// An openraft API error: `NotLeader` (with the leader, if known) or `Raft`.
fn from_raft_error<E>(error: RaftError<SteleRaft, E>) -> ConsensusError
where
    E: std::error::Error + TryAsRef<ForwardToLeader<SteleRaft>>,
{
    match error.forward_to_leader() {
        Some(forward) => not_leader(forward).into(),
        None => ConsensusError::Raft(error.to_string()),
    }
}

/// Waits until learner `id` has acknowledged (matched, in the leader's
/// replication metrics) the leader's log as it is now; removes it again
/// if it has not within the timeout.
async fn wait_for_learner(
    raft: &SteleRaftHandle,
    id: u64,
    timeout_ms: u64,
) -> Result<(), ConsensusError> {
    let target = raft.metrics().borrow_watched().last_log_index.unwrap_or(0);
    let timeout = Duration::from_millis(timeout_ms);
    let acknowledged = raft
        .wait(Some(timeout))
        .metrics(
            |metrics| {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&id).copied().flatten());
                matched.is_some_and(|log_id| log_id.index >= target)
            },
            "the learner acknowledges the log",
        )
        .await;
    match acknowledged {
        Ok(_) => Ok(()),
        Err(WaitError::ShuttingDown) => Err(ConsensusError::Stopped(
            "the Raft engine stopped".to_owned(),
        )),
        Err(WaitError::Timeout(..)) => {
            let matched = raft
                .metrics()
                .borrow_watched()
                .replication
                .as_ref()
                .and_then(|replication| replication.get(&id).copied().flatten())
                .map_or_else(
                    || "nothing".to_owned(),
                    |log_id| format!("up to {}", log_id.index),
                );
            tracing::warn!(node = id, %matched, target, "a new member did not catch up: removing it");
            let change = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
            raft.change_membership(change, false)
                .await
                .map_err(from_raft_error)?;
            Err(ConsensusError::Timeout(format!(
                "node {id} did not acknowledge the log up to index {target} within {} ms \
                 (it acknowledged {matched}): it was removed again; check that it runs \
                 with join = true and that its address is reachable",
                timeout_ms
            )))
        }
    }
}

/// Keeps the peer keys in step with the Raft membership: a member added by the
/// leader can then talk to this node, a removed one no longer can.
async fn follow_membership_keys(raft: SteleRaftHandle, auth: Arc<PeerAuth>) {
    let mut metrics = raft.metrics();
    let mut seen = None;
    loop {
        let keys = {
            let current = metrics.borrow_and_update();
            let membership = &current.membership_config;
            if seen == Some(*membership.log_id()) || membership.membership().nodes().count() == 0 {
                None
            } else {
                seen = Some(*membership.log_id());
                Some(
                    membership
                        .membership()
                        .nodes()
                        .filter_map(|(id, node)| match node.verifying_key() {
                            Some(key) => Some((*id, key)),
                            None => {
                                tracing::error!(node = id, "a member's public key is invalid");
                                None
                            }
                        })
                        .collect::<BTreeMap<_, _>>(),
                )
            }
        };
        if let Some(keys) = keys {
            tracing::info!(members = ?keys.keys().collect::<Vec<_>>(), "peer keys follow the membership");
            auth.set_members(keys);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Builds openraft's config, starts the Raft engine over `log_store` and the
/// replica's state machine, and initialises a new cluster.
async fn start_raft<N: SteleNetworkFactory>(
    cluster: &ClusterSetup,
    network: N,
    mut log_store: LedgerLogStore,
    replica: &Arc<Replica>,
    transfers: Transfers,
) -> Result<SteleRaftHandle, ConsensusError> {
    let raft_error = |error: &dyn std::fmt::Display| ConsensusError::Raft(error.to_string());
    let config = openraft::Config {
        cluster_name: "stele".to_owned(),
        heartbeat_interval: cluster.timing.heartbeat_ms,
        election_timeout_min: cluster.timing.election_timeout_min_ms,
        election_timeout_max: cluster.timing.election_timeout_max_ms,
        max_payload_entries: APPEND_ENTRIES_MAX,
        // Snapshots are triggered by `compaction::trigger_snapshots`.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: cluster.log.entries_kept,
        // `add_learner` returns (and the learner is made a voter) once it is
        // this close to the leader; openraft's default is 5,000 entries.
        replication_lag_threshold: LEARNER_LAG_MAX_ENTRIES,
        install_snapshot_timeout: SNAPSHOT_CHUNK_TIMEOUT_MS,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        // A restarted leader stands for a new term (see
        // `LedgerLogStore::resign_saved_leadership`): it never resumes its old
        // view, whose ids it may have handed out before a crash and lost.
        enable_leader_restore: Some(false),
        // Replicate entries once they are submitted to the log store, not at
        // the end of the core's loop iteration: followers re-execute and fsync
        // a batch while the leader's own group commit runs.
        broadcast_submitted_on_append: Some(true),
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|error| raft_error(&error))?;
    let resigned_term = log_store.resign_saved_leadership(cluster.node_id);
    let mut state_machine = ReplicaStateMachine::new(Arc::clone(replica), transfers);
    state_machine.resume_from_replica();
    let raft = Raft::new(
        cluster.node_id,
        Arc::new(config),
        network,
        log_store,
        state_machine,
    )
    .await
    .map_err(|error| raft_error(&error))?;
    let initializing = !cluster.join
        && !raft
            .is_initialized()
            .await
            .map_err(|error| raft_error(&error))?;
    if initializing {
        // Every member initialises with the same membership: the same entry at
        // log index 0 everywhere, so it is safe on all of them.
        raft.initialize(cluster.members.clone())
            .await
            .map_err(|error| raft_error(&error))?;
    }
    let single = cluster.members.len() == 1 && !cluster.join;
    // A new cluster of one elects itself as it initialises.
    new_view_at_start(&raft, resigned_term, single && !initializing).await?;
    if single {
        let wait = || raft.wait(Some(Duration::from_millis(SINGLE_ELECTION_WAIT_MS)));
        let metrics = wait()
            .state(ServerState::Leader, "a cluster of one elects itself")
            .await
            .map_err(|error| raft_error(&error))?;
        // Everything in a single member's log is committed once it leads (its
        // own fdatasync is the majority): serve only after applying it, so a
        // restart shows every transaction committed before it at once.
        wait()
            .applied_index_at_least(metrics.last_log_index, "the log is applied")
            .await
            .map_err(|error| raft_error(&error))?;
    }
    Ok(raft)
}

/// Every start is a new view (as in CCF): a node that led before it stopped
/// (`resigned_term`, see [`LedgerLogStore::resign_saved_leadership`]) stands
/// for election at once, and this waits until its term has moved past the old
/// one, so the executor never proposes in a view it may have used before a
/// crash. A restarted cluster of one (`elect_anyway`) also elects itself at
/// once rather than after an election timeout.
async fn new_view_at_start(
    raft: &SteleRaftHandle,
    resigned_term: Option<u64>,
    elect_anyway: bool,
) -> Result<(), ConsensusError> {
    if resigned_term.is_none() && !elect_anyway {
        return Ok(());
    }
    raft.trigger()
        .elect(false)
        .await
        .map_err(|error| ConsensusError::Raft(error.to_string()))?;
    if let Some(term) = resigned_term {
        raft.wait(Some(Duration::from_millis(NEW_VIEW_WAIT_MS)))
            .metrics(
                |metrics| metrics.current_term > term,
                "a new view after the restart",
            )
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))?;
        tracing::info!(previous_view = term, "restarted in a new view");
    }
    Ok(())
}
