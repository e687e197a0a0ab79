//! [`Engine`]: one node of a Stele service — the replica core (its
//! speculative state, [`Replica`]; the intake and the primary's executor
//! thread; the snapshot thread) wired to an ordering protocol behind the
//! [`Sequencer`] seam: today Raft ([`RaftSequencer`]: openraft over the
//! ledger, with the follower's check in front).
//!
//! A single node is a cluster of one: the same pipeline, the same log, no
//! shortcut. `docs/consensus.md` is the design. The committed reads are in
//! `reads.rs`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use stele_dispatcher::Dispatcher;
use stele_ledger::Ledger;

use crate::config::EngineConfig;
use crate::executor::Executor;
use crate::identity::ServiceIdentity;
use crate::intake::Intake;
use crate::members::{Members, SteleNode};
use crate::raft::network::{Partition, PeerAuth, PeerNetwork, PeerService};
use crate::raft::{ClusterSetup, RaftSequencer};
use crate::replica::{EngineCounters, Replica};
use crate::sequencer::Sequencer;
use crate::submission::{Submission, SubmitError};
use crate::sync::lock;
use crate::ConsensusError;

/// This node's role in the protocol, what it knows of the leader, and its
/// refusals, for `/node/state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
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

/// The replica core before a backend orders for it: what [`rebuild`] gives.
struct Core {
    replica: Arc<Replica>,
    intake: Arc<Intake>,
    /// The seqno of the KV snapshot the state was restored from.
    restored_from: Option<u64>,
    snapshotter: Option<JoinHandle<()>>,
}

impl Core {
    /// What a backend calls when its log made a batch durable: the intake
    /// cuts batches by it.
    fn durable(&self) -> crate::sequencer::OnDurable {
        let intake = Arc::clone(&self.intake);
        Arc::new(move |seqno| intake.durable(seqno))
    }
}

/// The replica core rebuilt from `ledger` up to `committed` (from a KV
/// snapshot if one fits), its committed tree checked against the recorded
/// high water (a ledger cut below it is refused before anything is served),
/// its snapshot thread and its intake.
fn rebuild(
    ledger: &Ledger,
    identity: ServiceIdentity,
    config: &EngineConfig,
    committed: u64,
    replicated: bool,
) -> Result<Core, ConsensusError> {
    let dispatcher = Dispatcher::new(config.workers)?;
    let (store, history, restored_from) =
        crate::replay::recover(ledger, &identity, config.snapshot_dir.as_deref(), committed)?;
    let high_water = crate::high_water::HighWater::open(ledger.dir(), &history, replicated)?;
    let replica = Arc::new(Replica::new(
        store,
        history,
        identity,
        dispatcher,
        config.fault,
        config.snapshot_interval_tx,
        config.history_leaves_kept,
    ));
    *lock(&replica.high_water) = Some(high_water);
    let snapshotter = crate::snapshotter::spawn_snapshotter(&replica, config)?;
    Ok(Core {
        replica,
        intake: Arc::new(Intake::new()),
        restored_from,
        snapshotter,
    })
}

/// The running node. [`Engine::shutdown`] finishes the queued submissions and
/// stops the ordering protocol.
pub struct Engine {
    pub(crate) replica: Arc<Replica>,
    /// The ordering protocol, as the core sees it.
    pub(crate) sequencer: Arc<dyn Sequencer>,
    /// The same protocol as the peer routes' handler (its RPCs and keys).
    peers: Arc<dyn PeerService>,
    node_id: u64,
    intake: Arc<Intake>,
    executor: Option<JoinHandle<()>>,
    in_flight: Arc<AtomicUsize>,
    restored_from: Option<u64>,
    snapshotter: Option<JoinHandle<()>>,
    storage: Arc<stele_ledger::StorageHealth>,
    /// Leaves of old tiles recently read back from the ledger.
    pub(crate) tiles_read: crate::reads::TileCache,
}

impl Drop for Engine {
    /// An engine dropped without [`Engine::shutdown`] still lets its executor
    /// thread drain the queue and end.
    fn drop(&mut self) {
        self.intake.close();
    }
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
        let source: Arc<dyn crate::raft::fetch::LedgerSource> = Arc::new(network.clone());
        Self::start_over(ledger, identity, config, cluster, network, Some(source)).await
    }

    /// [`Engine::start`] over another transport behind openraft's network trait
    /// (the deterministic simulation's in-memory network, which calls
    /// [`Engine::peer_service`] directly); `cluster.auth` and
    /// `cluster.partition` then only serve [`Engine::peer_auth`] and
    /// [`Engine::partition`].
    /// A resumed ledger's skipped seqnos are fetched from `source` (the
    /// simulation's twin of the peer transport's `POST /raft/fetch`).
    pub async fn start_with_network<N: crate::raft::sequencer::SteleNetworkFactory>(
        ledger: Ledger,
        identity: ServiceIdentity,
        config: EngineConfig,
        cluster: ClusterSetup,
        network: N,
        source: Arc<dyn crate::raft::fetch::LedgerSource>,
    ) -> Result<Self, ConsensusError> {
        Self::start_over(ledger, identity, config, cluster, network, Some(source)).await
    }

    /// Starts over `network`, fetching skipped seqnos from `source`.
    async fn start_over<N: crate::raft::sequencer::SteleNetworkFactory>(
        mut ledger: Ledger,
        identity: ServiceIdentity,
        config: EngineConfig,
        cluster: ClusterSetup,
        network: N,
        source: Option<Arc<dyn crate::raft::fetch::LedgerSource>>,
    ) -> Result<Self, ConsensusError> {
        config.validate()?;
        if !cluster.members.contains_key(&cluster.node_id) {
            return Err(ConsensusError::Config(format!(
                "node {} is not among the members",
                cluster.node_id
            )));
        }
        // What the log says is committed (Raft's meta), then the state rebuilt
        // from the ledger up to it (from a KV snapshot if one fits).
        let committed = crate::raft::log_store::committed_seqno(&mut ledger)?;
        let replicated = cluster.members.len() > 1;
        let core = rebuild(&ledger, identity, &config, committed, replicated)?;
        let node_id = cluster.node_id;
        let raft = RaftSequencer::start(
            ledger,
            cluster,
            network,
            &core.replica,
            core.durable(),
            &config,
            source,
        )
        .await?;
        let storage = raft.storage_health();
        Self::run(core, Arc::new(raft), storage, config, node_id)
    }

    /// Starts a BFT-mode node (`docs/bft.md`): the state is rebuilt from the
    /// ledger (which holds decided batches only, each certified), then the
    /// BFT host takes over ordering.
    pub async fn start_bft(
        mut ledger: Ledger,
        identity: ServiceIdentity,
        mut config: EngineConfig,
        cluster: ClusterSetup,
        bft: crate::bft::BftSetup,
    ) -> Result<Self, ConsensusError> {
        config.validate()?;
        config.batch_wait_us = config.batch_wait_us.max(crate::bft::BFT_BATCH_WAIT_US_MIN);
        if !cluster.members.contains_key(&cluster.node_id) {
            return Err(ConsensusError::Config(format!(
                "node {} is not among the validators",
                cluster.node_id
            )));
        }
        if identity.validators().is_none() {
            return Err(ConsensusError::Config(
                "BFT mode needs an identity certified by the validators".to_owned(),
            ));
        }
        // Every batch in a BFT ledger was decided before it was written.
        let committed = ledger.last_seqno();
        if ledger.committed_seqno() < committed {
            ledger.sync()?;
            ledger.commit(committed)?;
        }
        let core = rebuild(&ledger, identity, &config, committed, true)?;
        let node_id = cluster.node_id;
        let bft = crate::bft::BftSequencer::start(crate::bft::BftStart {
            ledger,
            node_id,
            members: cluster.members,
            auth: cluster.auth,
            partition: cluster.partition,
            setup: bft,
            replica: Arc::clone(&core.replica),
            durable: core.durable(),
        })?;
        let storage = bft.storage_health();
        Self::run(core, Arc::new(bft), storage, config, node_id)
    }

    /// Starts the executor over `core` and a started `backend`.
    fn run<B: Sequencer + PeerService>(
        core: Core,
        backend: Arc<B>,
        storage: Arc<stele_ledger::StorageHealth>,
        config: EngineConfig,
        node_id: u64,
    ) -> Result<Self, ConsensusError> {
        let Core {
            replica,
            intake,
            restored_from,
            snapshotter,
        } = core;
        let sequencer: Arc<dyn Sequencer> = backend.clone();
        let peers: Arc<dyn PeerService> = backend;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut executor = Executor {
            replica: Arc::clone(&replica),
            intake: Arc::clone(&intake),
            sequencer: Arc::clone(&sequencer),
            config,
            node_id,
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
            replica,
            sequencer,
            peers,
            node_id,
            intake,
            executor: Some(executor),
            in_flight,
            restored_from,
            snapshotter,
            storage,
            tiles_read: crate::reads::TileCache::default(),
        })
    }

    /// Queues a submission; refuses at once if the queue is full or the engine
    /// has stopped.
    pub fn submit(&self, submission: Submission) -> Result<(), SubmitError> {
        if let Some(reason) = self.replica.failure() {
            return Err(SubmitError::Stopped(reason));
        }
        if let Some(condition) = self.storage.condition() {
            return Err(SubmitError::Storage(condition));
        }
        self.intake.submit(submission)
    }

    /// Waits until this node has applied everything the leader had committed
    /// when the call started (Raft's read index), so that a read after it is
    /// linearizable. Only the leader can answer.
    pub async fn ensure_linearizable(&self) -> Result<(), ConsensusError> {
        self.sequencer.ensure_linearizable().await
    }

    /// The voters and the learners of the current membership.
    pub fn members(&self) -> Members {
        self.sequencer.members()
    }

    /// Adds node `id` as a voter: first as a learner, waiting until it has
    /// acknowledged the leader's log up to the call (re-executing and checking
    /// every batch), then promoted by a membership change. A learner that has
    /// not within the catch-up timeout (unreachable, too slow) is removed
    /// again, and the call fails with [`ConsensusError::Timeout`]: a voter that
    /// cannot follow would cost the cluster its quorum. Only the leader can.
    pub async fn add_member(&self, id: u64, node: SteleNode) -> Result<(), ConsensusError> {
        self.sequencer.add_member(id, node).await
    }

    /// Removes voter `id` from the membership (it stops receiving the log and
    /// its peer key is dropped). Only the leader can; removing the leader makes
    /// it step down once the change is committed.
    pub async fn remove_member(&self, id: u64) -> Result<(), ConsensusError> {
        self.sequencer.remove_member(id).await
    }

    /// The current view (Raft term).
    pub fn view(&self) -> u64 {
        self.sequencer.leadership().view
    }

    /// Role, term, leader, divergences.
    pub fn status(&self) -> NodeStatus {
        let order = self.sequencer.status();
        let counters = &self.replica.counters;
        NodeStatus {
            node_id: self.node_id,
            role: order.role,
            term: order.term,
            leader: order.leader,
            leader_address: order.leader_address,
            divergences: counters.divergences.load(Ordering::Relaxed),
            snapshots_installed: counters.snapshots_installed.load(Ordering::Relaxed),
            last_divergence: self.replica.last_divergence(),
        }
    }

    /// The seqno of the snapshot the state was restored from at start, if any.
    pub fn restored_from_snapshot(&self) -> Option<u64> {
        self.restored_from
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
    /// install...) or the ordering protocol stopped on a storage error that is
    /// not clearable. Only a restart, which recovers from the ledger, repairs it.
    pub fn fatal(&self) -> Option<String> {
        self.replica.failure().or_else(|| self.sequencer.fatal())
    }

    /// What answers the peer routes ([`crate::raft::network::router`]): the
    /// Raft backend's keys, partition and RPC handlers.
    pub fn peer_service(&self) -> Arc<dyn PeerService> {
        Arc::clone(&self.peers)
    }

    /// This node's peer authentication.
    pub fn peer_auth(&self) -> &PeerAuth {
        self.peers.auth()
    }

    /// The peers whose traffic this node drops (test partitions).
    pub fn partition(&self) -> &Partition {
        self.peers.partition()
    }

    /// Stops taking submissions, proposes the queued ones and waits for their
    /// answers (bounded), stops the ordering protocol and the threads; the ledger
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
        self.sequencer.shutdown().await;
        // Let a snapshot being written finish, then stop its thread.
        lock(&self.replica.snapshots).take();
        if let Some(snapshotter) = self.snapshotter.take() {
            if snapshotter.join().is_err() {
                tracing::error!("the snapshot thread panicked");
            }
        }
    }
}
