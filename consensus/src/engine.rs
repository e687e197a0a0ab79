//! [`Engine`]: one node of a Stele service — its Raft engine (openraft over the
//! ledger), its speculative state ([`Replica`]), the primary's executor thread,
//! the follower's check ([`FollowerGate`]) and the committed reads.
//!
//! A single node is a cluster of one: the same pipeline, the same log, no
//! shortcut. `docs/consensus.md` is the design.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openraft::error::{ForwardToLeader, RaftError};
use openraft::metrics::WaitError;
use openraft::network::RaftNetworkFactory;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{ChangeMembers, Raft, ServerState, SnapshotPolicy, TryAsRef};
use stele_dispatcher::Dispatcher;
use stele_frontends::{Command, Outcome};
use stele_history::{Digest, Receipt, TransactionId};
use stele_kv::Store;
use stele_ledger::Ledger;

use crate::executor::Executor;
use crate::history::{HistoryReadError, HistoryState};
use crate::identity::ServiceIdentity;
use crate::intake::Intake;
use crate::raft::network::{Partition, PeerAuth, PeerNetwork};
use crate::raft::state_machine::{ReplicaStateMachine, Transfers};
use crate::raft::transfer::TRANSFER_DIR;
use crate::raft::{FollowerGate, LedgerLogStore, SteleNode, SteleRaft};
use crate::replica::{lock, EngineCounters, Fault, Replica};
use crate::{replay, ConsensusError, BATCH_ENTRIES_DEFAULT, BATCH_WAIT_US_DEFAULT};

/// How the engine batches and executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most commands in one batch.
    pub batch_entries_max: usize,
    /// Longest wait for a batch to fill while this node's log is still making
    /// the previous one durable, in microseconds (an idle log takes a batch at
    /// once; see `intake.rs`).
    pub batch_wait_us: u64,
    /// Frontend workers of the dispatcher.
    pub workers: usize,
    /// A deliberate execution fault (tests of divergence only).
    pub fault: Fault,
    /// Where KV snapshots go (`None`: no snapshots).
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// Committed transactions between snapshots (0: no snapshots).
    pub snapshot_interval_tx: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_entries_max: BATCH_ENTRIES_DEFAULT,
            batch_wait_us: BATCH_WAIT_US_DEFAULT,
            workers: 1,
            fault: Fault::None,
            snapshot_dir: None,
            snapshot_interval_tx: 0,
        }
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Never assigned.
    Unknown,
    /// Executed, not yet committed.
    Pending,
    /// Committed.
    Committed,
    /// The seqno belongs to another view.
    Invalid,
}

/// What a submitter is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitResult {
    /// The id assigned.
    pub transaction_id: TransactionId,
    /// True once committed (always, for a submission that asked to wait).
    pub committed: bool,
    /// The response or abort reason.
    pub outcome: Outcome,
}

/// A reply callback: runs on an engine thread, so it must be quick.
pub type Reply = Box<dyn FnOnce(Result<SubmitResult, ConsensusError>) + Send>;

/// One command to order.
pub struct Submission {
    /// The command (already validated by the caller; an invalid one aborts).
    pub command: Command,
    /// Reply only once committed (else as soon as executed).
    pub wait: bool,
    /// Where the result goes.
    pub reply: Reply,
}

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
}

impl Default for RaftLogPolicy {
    fn default() -> Self {
        RaftLogPolicy {
            snapshot_entries: 10_000,
            entries_kept: 1_000,
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
const SINGLE_ELECTION_WAIT_MS: u64 = 10_000;

/// Longest wait at start for a node that led before it stopped to move to a
/// new term (it stands for election at once: only the vote's save waits).
const NEW_VIEW_WAIT_MS: u64 = 10_000;

impl Drop for Engine {
    /// An engine dropped without [`Engine::shutdown`] still lets its executor
    /// thread drain the queue and end.
    fn drop(&mut self) {
        self.intake.close();
    }
}

/// This node's Raft role and what it knows of the leader, for `/node/state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node's id.
    pub node_id: u64,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub role: String,
    /// The current term (view).
    pub term: u64,
    /// The leader's id, if known.
    pub leader: Option<u64>,
    /// The leader's address, if known.
    pub leader_address: Option<String>,
    /// Batches this node refused (re-execution disagreed).
    pub divergences: u64,
    /// The last refusal, if any.
    pub last_divergence: Option<String>,
    /// Snapshot transfers this node installed (caught up from) since it started.
    pub snapshots_installed: u64,
}

/// The running node. [`Engine::shutdown`] finishes the queued submissions and
/// stops the Raft engine.
pub struct Engine {
    replica: Arc<Replica>,
    raft: Raft<SteleRaft>,
    gate: FollowerGate,
    auth: Arc<PeerAuth>,
    partition: Partition,
    node_id: u64,
    intake: Arc<Intake>,
    executor: Option<JoinHandle<()>>,
    in_flight: Arc<AtomicUsize>,
    restored_from: Option<u64>,
    snapshotter: Option<JoinHandle<()>>,
    learner_catch_up_timeout_ms: u64,
    storage: Arc<stele_ledger::StorageHealth>,
}

impl Engine {
    /// Rebuilds state from `ledger`, starts the Raft engine, the executor and the
    /// snapshot thread. Must run inside a multi-threaded tokio runtime.
    pub async fn start(
        ledger: Ledger,
        identity: ServiceIdentity,
        config: EngineConfig,
        cluster: ClusterSetup,
    ) -> Result<Self, ConsensusError> {
        let network = PeerNetwork::new(Arc::clone(&cluster.auth), cluster.partition.clone())?;
        Self::start_with_network(ledger, identity, config, cluster, network).await
    }

    /// [`Engine::start`] over another transport behind openraft's network trait
    /// (the deterministic simulation's in-memory network); `cluster.auth` and
    /// `cluster.partition` then only serve [`Engine::peer_auth`] and
    /// [`Engine::partition`].
    pub async fn start_with_network<N: RaftNetworkFactory<SteleRaft>>(
        mut ledger: Ledger,
        identity: ServiceIdentity,
        config: EngineConfig,
        cluster: ClusterSetup,
        network: N,
    ) -> Result<Self, ConsensusError> {
        if config.batch_entries_max == 0 || config.batch_entries_max > stele_ledger::BATCH_TXS_MAX {
            return Err(ConsensusError::Config(format!(
                "batch_entries_max must be 1..={}",
                stele_ledger::BATCH_TXS_MAX
            )));
        }
        if !cluster.members.contains_key(&cluster.node_id) {
            return Err(ConsensusError::Config(format!(
                "node {} is not among the members",
                cluster.node_id
            )));
        }
        let dispatcher = Dispatcher::new(config.workers)?;
        let committed = crate::raft::log_store::committed_seqno(&mut ledger)?;
        let (store, history, restored_from) = recover(
            &ledger,
            &identity,
            config.snapshot_dir.as_deref(),
            committed,
        )?;
        // Before anything is served: a ledger cut below what was committed is
        // refused (`high_water.rs`).
        let replicated = cluster.members.len() > 1;
        let high_water = crate::high_water::HighWater::open(ledger.dir(), &history, replicated)?;
        let replica = Arc::new(Replica::new(
            store,
            history,
            identity,
            dispatcher,
            config.fault,
            config.snapshot_interval_tx,
        ));
        *lock(&replica.high_water) = Some(high_water);
        let snapshotter = spawn_snapshotter(&replica, &config)?;
        let transfer_dir = ledger.dir().join(TRANSFER_DIR);
        let mut log_store = LedgerLogStore::open(ledger)?;
        let storage = log_store.log_writer().storage_health();
        let reader = log_store.reader();
        let transfers = Transfers {
            dir: transfer_dir,
            reader: reader.clone(),
            log: log_store.log_writer(),
        };
        let hook_replica = Arc::clone(&replica);
        log_store.set_on_truncate(Box::new(move |batch| {
            let _writer = lock(&hook_replica.writer);
            if hook_replica.holds(batch) {
                let keep = batch.batch.first_seqno.saturating_sub(1);
                if let Err(error) = hook_replica.rollback_to(keep) {
                    hook_replica.fail(format!("rolling back a truncated batch: {error}"));
                }
            }
        }));
        let intake = Arc::new(Intake::new());
        let durable_intake = Arc::clone(&intake);
        log_store.set_on_durable(Arc::new(move |seqno| durable_intake.durable(seqno)));
        let raft = start_raft(&cluster, network, log_store, &replica, transfers).await?;
        tokio::spawn(follow_membership_keys(
            raft.clone(),
            Arc::clone(&cluster.auth),
        ));
        tokio::spawn(crate::raft::compaction::trigger_snapshots(
            raft.clone(),
            cluster.log.snapshot_entries,
        ));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut executor = Executor {
            replica: Arc::clone(&replica),
            intake: Arc::clone(&intake),
            raft: raft.clone(),
            runtime: tokio::runtime::Handle::current(),
            reader,
            config,
            node_id: cluster.node_id,
            in_flight: Arc::clone(&in_flight),
            unsettled: Arc::new(AtomicBool::new(true)),
            settled_term: 0,
            storage: Arc::clone(&storage),
        };
        let executor = std::thread::Builder::new()
            .name("stele-executor".to_owned())
            .spawn(move || executor.run())
            .map_err(|error| ConsensusError::Stopped(format!("spawning the executor: {error}")))?;
        Ok(Engine {
            gate: FollowerGate::new(Arc::clone(&replica), raft.clone()),
            replica,
            raft,
            auth: cluster.auth,
            partition: cluster.partition,
            node_id: cluster.node_id,
            intake,
            executor: Some(executor),
            in_flight,
            restored_from,
            snapshotter,
            learner_catch_up_timeout_ms: cluster.timing.learner_catch_up_timeout_ms,
            storage,
        })
    }

    /// The seqno of the snapshot the state was restored from at start, if any.
    pub fn restored_from_snapshot(&self) -> Option<u64> {
        self.restored_from
    }

    /// Queues a submission; refuses at once if the queue is full or the engine
    /// has stopped.
    pub fn submit(&self, submission: Submission) -> Result<(), ConsensusError> {
        if let Some(reason) = self.replica.failure() {
            return Err(ConsensusError::Stopped(reason));
        }
        if let Some(condition) = self.storage.condition() {
            return Err(ConsensusError::Storage(condition));
        }
        self.intake.submit(submission)
    }

    /// The committed value of `key` in `map` and the id of its writer.
    pub fn kv_get(&self, map: &str, key: &str) -> Option<(Vec<u8>, TransactionId)> {
        let (value, seqno) = {
            let store = self.replica.read_store();
            let (value, seqno) = store.get_committed(map, key)?;
            (value.to_vec(), seqno)
        };
        let id = self.replica.read_history().transaction_id(seqno)?;
        Some((value, id))
    }

    /// Runs `read` against the committed state, under the store's read lock
    /// (keep it short: the executor waits for the lock to apply batches). All
    /// the keys `read` looks at are from one committed version.
    pub fn read_committed<R>(&self, read: impl FnOnce(&stele_kv::Committed<'_>) -> R) -> R {
        let store = self.replica.read_store();
        read(&store.committed_view())
    }

    /// The committed state set aside (cheap: shared shards), to walk away from
    /// the store's lock.
    pub fn freeze_committed(&self) -> stele_kv::Frozen {
        let store = self.replica.read_store();
        store
            .freeze(store.committed_version())
            .expect("the committed version is always retained")
    }

    /// Waits until this node has applied everything the leader had committed
    /// when the call started (openraft's read index), so that a read after it is
    /// linearizable. Only the leader can answer.
    pub async fn ensure_linearizable(&self) -> Result<(), ConsensusError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(from_raft_error)
    }

    /// The voters and the learners of the current membership.
    pub fn members(&self) -> Members {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
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
    pub async fn add_member(&self, id: u64, node: SteleNode) -> Result<(), ConsensusError> {
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
    }

    /// Removes voter `id` from the membership (it stops receiving the log and
    /// its peer key is dropped). Only the leader can; removing the leader makes
    /// it step down once the change is committed.
    pub async fn remove_member(&self, id: u64) -> Result<(), ConsensusError> {
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
    }

    /// `NotLeader` (naming the leader, if known) unless this node leads.
    /// Checked before a membership change: openraft refuses one on a
    /// follower that has not yet learned the commit of the last change with
    /// "already undergoing a configuration change" (a 503) instead of
    /// forwarding it (a 307).
    fn ensure_leader(&self) -> Result<(), ConsensusError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let (leader, address) = crate::raft::known_leader(&metrics);
        if leader == Some(self.node_id) {
            return Ok(());
        }
        Err(ConsensusError::NotLeader { leader, address })
    }

    /// Where transaction `id` is.
    pub fn tx_state(&self, id: TransactionId) -> TxState {
        let history = self.replica.read_history();
        let committed = self.committed_seqno();
        match history.batch_of(id.seqno) {
            Some(batch) if batch.view != id.view => TxState::Invalid,
            Some(_) if id.seqno <= committed => TxState::Committed,
            Some(_) => TxState::Pending,
            // Past this node's log. Views never decrease along a Raft log, so
            // an id of a view older than the last committed transaction's
            // can never be committed: a view lost in a crash or a deposition.
            None if history
                .batch_of(committed)
                .is_some_and(|batch| id.view < batch.view) =>
            {
                TxState::Invalid
            }
            None => TxState::Unknown,
        }
    }

    /// Seqno of the last committed transaction.
    pub fn committed_seqno(&self) -> u64 {
        self.replica.committed_seqno()
    }

    /// The last committed transaction.
    pub fn last_committed(&self) -> Option<TransactionId> {
        self.replica
            .read_history()
            .transaction_id(self.committed_seqno())
    }

    /// Seqno of the last executed transaction.
    pub fn executed_seqno(&self) -> u64 {
        self.replica.read_history().size()
    }

    /// The receipt of committed transaction `id`.
    pub fn receipt(&self, id: TransactionId) -> Result<Receipt, HistoryReadError> {
        self.replica
            .read_history()
            .receipt(id, self.committed_seqno(), &self.replica.identity)
    }

    /// The latest committed signed checkpoint.
    pub fn checkpoint(&self) -> Option<String> {
        self.replica
            .read_history()
            .latest_checkpoint(self.committed_seqno())
            .map(|batch| batch.note.clone())
    }

    /// The consistency proof between two committed tree sizes.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, HistoryReadError> {
        self.replica
            .read_history()
            .consistency(from, to, self.committed_seqno())
    }

    /// The service identity.
    pub fn identity(&self) -> &ServiceIdentity {
        &self.replica.identity
    }

    /// The current view (Raft term).
    pub fn view(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Role, term, leader, divergences.
    pub fn raft_status(&self) -> RaftStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let role = match metrics.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Learner",
            ServerState::Shutdown => "Shutdown",
        };
        let (leader, leader_address) = crate::raft::known_leader(&metrics);
        RaftStatus {
            node_id: self.node_id,
            role: role.to_owned(),
            term: metrics.current_term,
            leader,
            leader_address,
            divergences: self.replica.counters.divergences.load(Ordering::Relaxed),
            snapshots_installed: self
                .replica
                .counters
                .snapshots_installed
                .load(Ordering::Relaxed),
            last_divergence: self.replica.last_divergence(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.replica.counters
    }

    /// Why the engine stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.replica.failure()
    }

    /// The condition (full disk, no file handles) holding this node's ledger
    /// writes back, if any: it clears by itself, and writes resume.
    pub fn storage_condition(&self) -> Option<stele_ledger::StorageCondition> {
        self.storage.condition()
    }

    /// Why this node cannot go on, if it cannot: the engine failed (a
    /// committed batch that does not re-execute, a snapshot that does not
    /// install...) or the Raft engine stopped on a storage error that is not
    /// clearable. Only a restart, which recovers from the ledger, repairs it.
    pub fn fatal(&self) -> Option<String> {
        if let Some(reason) = self.replica.failure() {
            return Some(reason);
        }
        match &self.raft.metrics().borrow().running_state {
            // `Stopped` is a shutdown asked for.
            Ok(()) | Err(openraft::error::Fatal::Stopped) => None,
            Err(fatal) => Some(format!("the Raft engine stopped: {fatal}")),
        }
    }

    /// This node's peer authentication.
    pub fn peer_auth(&self) -> &PeerAuth {
        &self.auth
    }

    /// The peers whose traffic this node drops (test partitions).
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// A peer's AppendEntries: checked, then handed to openraft.
    pub async fn handle_append(
        &self,
        rpc: AppendEntriesRequest<SteleRaft>,
    ) -> Result<AppendEntriesResponse<u64>, ConsensusError> {
        self.gate.append_entries(rpc).await
    }

    /// A peer's InstallSnapshot chunk.
    pub async fn handle_snapshot(
        &self,
        rpc: InstallSnapshotRequest<SteleRaft>,
    ) -> Result<InstallSnapshotResponse<u64>, ConsensusError> {
        self.gate.install_snapshot(rpc).await
    }

    /// A peer's RequestVote.
    pub async fn handle_vote(
        &self,
        rpc: VoteRequest<u64>,
    ) -> Result<VoteResponse<u64>, ConsensusError> {
        self.gate.vote(rpc).await
    }

    /// Stops taking submissions, proposes the queued ones and waits for their
    /// answers (bounded), stops the Raft engine and the threads; the ledger
    /// writer syncs what it holds when dropped with the log store.
    pub async fn shutdown(mut self) {
        self.intake.close();
        if let Some(executor) = self.executor.take() {
            let joined = tokio::task::spawn_blocking(move || executor.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the executor thread panicked");
            }
        }
        // Bounded: a deposed leader's proposals may never be answered.
        for _ in 0..400 {
            if self.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Err(error) = self.raft.shutdown().await {
            tracing::error!(%error, "stopping the Raft engine");
        }
        // Let a snapshot being written finish, then stop its thread.
        lock(&self.replica.snapshots).take();
        if let Some(snapshotter) = self.snapshotter.take() {
            if snapshotter.join().is_err() {
                tracing::error!("the snapshot thread panicked");
            }
        }
    }
}

/// The current membership, for `/admin/members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// The voters, by id.
    pub voters: BTreeMap<u64, SteleNode>,
    /// The learners (being added), by id.
    pub learners: BTreeMap<u64, SteleNode>,
}

/// An openraft API error: `NotLeader` (with the leader, if known) or `Raft`.
fn from_raft_error<E>(error: RaftError<u64, E>) -> ConsensusError
where
    E: std::error::Error + TryAsRef<ForwardToLeader<u64, SteleNode>>,
{
    match error.forward_to_leader() {
        Some(forward) => ConsensusError::NotLeader {
            leader: forward.leader_id,
            address: forward.leader_node.clone().map(|node| node.addr),
        },
        None => ConsensusError::Raft(error.to_string()),
    }
}

/// Waits until learner `id` has acknowledged (matched, in the leader's
/// replication metrics) the leader's log as it is now; removes it again
/// if it has not within the timeout.
async fn wait_for_learner(
    raft: &Raft<SteleRaft>,
    id: u64,
    timeout_ms: u64,
) -> Result<(), ConsensusError> {
    let target = raft.metrics().borrow().last_log_index.unwrap_or(0);
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
                .borrow()
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
async fn follow_membership_keys(raft: Raft<SteleRaft>, auth: Arc<PeerAuth>) {
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
async fn start_raft<N: RaftNetworkFactory<SteleRaft>>(
    cluster: &ClusterSetup,
    network: N,
    mut log_store: LedgerLogStore,
    replica: &Arc<Replica>,
    transfers: Transfers,
) -> Result<Raft<SteleRaft>, ConsensusError> {
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
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|error| raft_error(&error))?;
    let resigned_term = log_store.resign_saved_leadership(cluster.node_id);
    let state_machine = ReplicaStateMachine::new(Arc::clone(replica), transfers);
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
    raft: &Raft<SteleRaft>,
    resigned_term: Option<u64>,
    elect_anyway: bool,
) -> Result<(), ConsensusError> {
    if resigned_term.is_none() && !elect_anyway {
        return Ok(());
    }
    raft.trigger()
        .elect()
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

fn spawn_snapshotter(
    replica: &Arc<Replica>,
    config: &EngineConfig,
) -> Result<Option<JoinHandle<()>>, ConsensusError> {
    let Some(dir) = config
        .snapshot_dir
        .clone()
        .filter(|_| config.snapshot_interval_tx > 0)
    else {
        return Ok(None);
    };
    let (sender, receiver) = sync_channel::<u64>(1);
    *lock(&replica.snapshots) = Some(sender);
    let weak = Arc::downgrade(replica);
    let thread = std::thread::Builder::new()
        .name("stele-snapshot".to_owned())
        .spawn(move || {
            crate::paced::lower_this_thread();
            while let Ok(_seqno) = receiver.recv() {
                let Some(replica) = weak.upgrade() else {
                    break;
                };
                write_snapshot(&replica, &dir);
            }
        })
        .map_err(|error| {
            ConsensusError::Stopped(format!("spawning the snapshot thread: {error}"))
        })?;
    Ok(Some(thread))
}

/// Writes a snapshot of the committed state (on the snapshot thread).
fn write_snapshot(replica: &Replica, dir: &std::path::Path) {
    // Set aside under the lock (O(1)), sorted after releasing it.
    let taken = {
        let store = replica.read_store();
        let version = store.committed_version();
        store.freeze(version)
    };
    let snapshot = match taken.map(stele_kv::Frozen::into_snapshot) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::warn!(%error, "cannot take a snapshot");
            return;
        }
    };
    let note = replica
        .read_history()
        .batch_ending_at(snapshot.version())
        .map(|batch| batch.note.clone());
    let Some(note) = note else {
        tracing::warn!(
            seqno = snapshot.version(),
            "no checkpoint ends at the snapshot's seqno"
        );
        return;
    };
    match crate::snapshot::write(dir, &snapshot, &note) {
        Ok(path) => {
            tracing::info!(seqno = snapshot.version(), path = %path.display(), "wrote a snapshot")
        }
        Err(error) => tracing::warn!(%error, "cannot write a snapshot"),
    }
}

/// The state rebuilt from the ledger, from the newest valid snapshot if there is
/// one (falling back to a full replay if the snapshot does not fit the ledger).
fn recover(
    ledger: &Ledger,
    identity: &ServiceIdentity,
    snapshot_dir: Option<&std::path::Path>,
    committed: u64,
) -> Result<(Store, HistoryState, Option<u64>), ConsensusError> {
    if let Some(loaded) = snapshot_dir.and_then(|dir| crate::snapshot::newest(dir, identity)) {
        let seqno = loaded.snapshot.version();
        let mut store = Store::new();
        let mut history = HistoryState::new();
        match replay::replay(
            ledger,
            &mut store,
            &mut history,
            identity,
            Some(loaded),
            committed,
        ) {
            Ok(()) => {
                tracing::info!(
                    seqno,
                    "state restored from a snapshot and the ledger suffix"
                );
                return Ok((store, history, Some(seqno)));
            }
            Err(error) => {
                tracing::warn!(seqno, %error, "the snapshot does not fit the ledger; replaying it all");
            }
        }
    }
    let mut store = Store::new();
    let mut history = HistoryState::new();
    replay::replay(ledger, &mut store, &mut history, identity, None, committed)?;
    Ok((store, history, None))
}
