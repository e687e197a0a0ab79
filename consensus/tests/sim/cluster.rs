//! The simulated cluster: three engines on their own ledgers in a tempdir, wired
//! through [`Net`]; crash (unregister, then shut down) and restart (reopen the
//! same ledger and snapshot folder).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stele_consensus::raft::network::{Partition, PeerAuth};
use stele_consensus::raft::SteleNode;
use stele_consensus::{
    ClusterSetup, Engine, EngineConfig, Fault, RaftLogPolicy, RaftTiming, ServiceIdentity,
};
use stele_history::{SigningKey, VerifyingKey};
use stele_ledger::{Ledger, LedgerConfig};
use tokio::task::JoinHandle;

use super::network::Net;
use super::schedule::{Plan, NODES};

const ORIGIN: &str = "test.stele.example/sim";

/// Longest wait for the other holders of a crashed engine to let go of it.
const RELEASE_WAIT: Duration = Duration::from_secs(20);

pub fn identity() -> ServiceIdentity {
    ServiceIdentity::new(ORIGIN, SigningKey::from_bytes(&[5; 32]), [6; 32]).unwrap()
}

/// The service key receipts and ledgers verify against.
pub fn service_key() -> VerifyingKey {
    identity().signer().verifier().key().to_owned()
}

fn node_key(node: u64) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(node).unwrap() + 100; 32])
}

/// What a node reported when it was stopped (crash or final shutdown).
#[derive(Debug, Clone)]
pub struct Stopped {
    pub node: u64,
    pub failure: Option<String>,
    pub divergences: u64,
    pub last_divergence: Option<String>,
}

pub struct Cluster {
    pub net: Arc<Net>,
    config: EngineConfig,
    log: RaftLogPolicy,
    dir: tempfile::TempDir,
    /// Shutdowns of crashed nodes under way.
    stopping: BTreeMap<u64, JoinHandle<()>>,
    /// What every stopped engine reported.
    pub stopped: Arc<Mutex<Vec<Stopped>>>,
    pub events: Vec<String>,
    started: Instant,
    faulty: Option<(u64, Fault)>,
}

impl Cluster {
    /// Creates the ledgers and starts every node; `faulty` gives one node a
    /// deliberate execution fault (the harness's own test).
    pub async fn start(
        seed: u64,
        plan: &Plan,
        faulty: Option<(u64, Fault)>,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let config = EngineConfig {
            batch_entries_max: plan.batch_entries_max,
            batch_wait_us: 500,
            snapshot_interval_tx: plan.snapshot_interval_tx,
            ..EngineConfig::default()
        };
        let mut cluster = Cluster {
            net: Net::new(seed),
            config,
            log: RaftLogPolicy {
                snapshot_entries: plan.raft_snapshot_entries,
                entries_kept: 2,
                resume_transfers: plan.resume_transfers,
                // A resumed node fetches what it skipped over the same
                // faulty network (`SimNetwork` is its `LedgerSource`).
                fetch_skipped: true,
            },
            dir,
            stopping: BTreeMap::new(),
            stopped: Arc::new(Mutex::new(Vec::new())),
            events: Vec::new(),
            started: Instant::now(),
            faulty,
        };
        for node in 1..=NODES {
            let ledger_dir = cluster.ledger_dir(node);
            Ledger::create(&ledger_dir, LedgerConfig::default(), &identity().genesis())
                .map_err(|e| format!("creating the ledger of node {node}: {e}"))?;
            cluster.launch(node).await?;
        }
        Ok(cluster)
    }

    pub fn ledger_dir(&self, node: u64) -> PathBuf {
        self.dir.path().join(format!("node{node}")).join("ledger")
    }

    fn snapshot_dir(&self, node: u64) -> PathBuf {
        self.dir
            .path()
            .join(format!("node{node}"))
            .join("snapshots")
    }

    pub fn log(&mut self, event: String) {
        let at = self.started.elapsed().as_millis();
        self.events.push(format!("{at:>6} ms  {event}"));
    }

    /// Opens node `node`'s ledger and starts its engine on the network.
    async fn launch(&mut self, node: u64) -> Result<(), String> {
        let (ledger, _recovery) = Ledger::open(&self.ledger_dir(node), LedgerConfig::default())
            .map_err(|e| format!("opening the ledger of node {node}: {e}"))?;
        let members: BTreeMap<u64, SteleNode> = (1..=NODES)
            .map(|id| {
                (
                    id,
                    SteleNode::new(format!("sim:{id}"), &node_key(id).verifying_key()),
                )
            })
            .collect();
        let keys = (1..=NODES)
            .map(|id| (id, node_key(id).verifying_key()))
            .collect();
        // A faulty node's timers are slow, so the others lead: a corrupt
        // follower must be a follower to show its fault.
        let slow = matches!(self.faulty, Some((faulty, _)) if faulty == node);
        let setup = ClusterSetup {
            node_id: node,
            members,
            auth: Arc::new(PeerAuth::new(node, node_key(node), keys)),
            partition: Partition::default(),
            timing: RaftTiming {
                heartbeat_ms: 50,
                election_timeout_min_ms: if slow { 900 } else { 150 },
                election_timeout_max_ms: if slow { 1200 } else { 300 },
                ..RaftTiming::default()
            },
            log: self.log,
            join: false,
        };
        let fault = match self.faulty {
            Some((faulty, fault)) if faulty == node => fault,
            _ => Fault::None,
        };
        let config = EngineConfig {
            // A resumed ledger restarts from the KV snapshot its install wrote.
            snapshot_dir: (self.config.snapshot_interval_tx > 0 || self.log.resume_transfers)
                .then(|| self.snapshot_dir(node)),
            fault,
            ..self.config.clone()
        };
        let network = self.net.factory(node);
        let source = Arc::new(network.clone());
        let engine = Engine::start_with_network(ledger, identity(), config, setup, network, source)
            .await
            .map_err(|e| format!("starting node {node}: {e}"))?;
        if let Some(seqno) = engine.restored_from_snapshot() {
            self.log(format!("node {node} restored from the snapshot at {seqno}"));
        }
        self.net.register(node, Arc::new(engine));
        Ok(())
    }

    /// The running node that says it leads, with the highest term.
    pub fn leader(&self) -> Option<u64> {
        self.net
            .engines()
            .values()
            .map(|engine| engine.status())
            .filter(|status| status.role == "Leader")
            .max_by_key(|status| status.term)
            .map(|status| status.node_id)
    }

    pub fn is_down(&self, node: u64) -> bool {
        self.net.engine(node).is_none()
    }

    /// Crashes node `node`: unreachable at once, shut down in the background
    /// (its last outgoing messages may still arrive, as a real process's would).
    pub fn crash(&mut self, node: u64) {
        let Some(engine) = self.net.unregister(node) else {
            return;
        };
        let stopped = Arc::clone(&self.stopped);
        let task = tokio::spawn(stop(node, engine, stopped));
        self.stopping.insert(node, task);
    }

    /// Restarts node `node` from its ledger. Its shutdown must have finished
    /// first (the ledger has one writer): with `wait`, waits for it; without,
    /// returns false if it is still under way (a crashed leader whose proposals
    /// cannot commit any more takes its engine's bounded waits to stop).
    pub async fn restart(&mut self, node: u64, wait: bool) -> Result<bool, String> {
        if let Some(task) = self.stopping.remove(&node) {
            if !wait && !task.is_finished() {
                self.stopping.insert(node, task);
                return Ok(false);
            }
            task.await
                .map_err(|e| format!("the shutdown of node {node} failed: {e}"))?;
        }
        if self.is_down(node) {
            self.launch(node).await?;
        }
        Ok(true)
    }

    /// Crashed nodes.
    pub fn down(&self) -> Vec<u64> {
        (1..=NODES).filter(|&node| self.is_down(node)).collect()
    }

    /// Shuts every node down (before the ledgers are verified).
    pub async fn stop_all(&mut self) -> Result<(), String> {
        for node in 1..=NODES {
            self.crash(node);
        }
        for (node, task) in std::mem::take(&mut self.stopping) {
            task.await
                .map_err(|e| format!("the shutdown of node {node} failed: {e}"))?;
        }
        Ok(())
    }
}

/// Waits until nobody else holds `engine` (in-flight deliveries, the client),
/// records its state and shuts it down.
async fn stop(node: u64, mut engine: Arc<Engine>, stopped: Arc<Mutex<Vec<Stopped>>>) {
    let deadline = Instant::now() + RELEASE_WAIT;
    let engine = loop {
        match Arc::try_unwrap(engine) {
            Ok(engine) => break engine,
            Err(shared) => {
                assert!(
                    Instant::now() < deadline,
                    "node {node}: the engine is still held {RELEASE_WAIT:?} after its crash"
                );
                engine = shared;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let report = Stopped {
        node,
        failure: engine.failure(),
        divergences: engine.counters().divergences.load(Ordering::Relaxed),
        last_divergence: engine.status().last_divergence,
    };
    stopped.lock().unwrap().push(report);
    engine.shutdown().await;
}
