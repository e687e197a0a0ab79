//! The in-memory transport: openraft's `RaftNetworkFactory` over a registry of
//! running engines, with seeded faults (lost requests and responses, delays, cut
//! links). A node absent from the registry (crashed) is unreachable.
//!
//! Errors are mapped as the real transport (`raft/network.rs`) maps them: no
//! route (cut link, node down, lost message) is `RPCError::Unreachable`, so
//! openraft backs off; a refusal by the receiving engine (what the HTTP route
//! answers with a non-200 status) is `RPCError::Network`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use stele_consensus::openraft::error::{NetworkError, RPCError, RaftError, Unreachable};
use stele_consensus::openraft::network::{Backoff, RPCOption, RaftNetworkFactory};
use stele_consensus::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse,
};
use stele_consensus::openraft_legacy::network_v1::{Adapter, InstallSnapshotError, RaftNetwork};
use stele_consensus::raft::fetch::LedgerSource;
use stele_consensus::raft::transfer_data::TransferData;
use stele_consensus::raft::types::{
    InstallSnapshotRequest, InstallSnapshotResponse, LedgerFetch, LedgerFetched,
};
use stele_consensus::raft::SteleNode;
use stele_consensus::raft::SteleRaft;
use stele_consensus::sequencer::BoxFuture;
use stele_consensus::{ConsensusError, Engine};

/// openraft's wait before retrying an unreachable peer. The real transport keeps
/// openraft's default (500 ms); shorter here so a short run sees more rounds.
const BACKOFF_MS: u64 = 50;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The network's current faults, set by the scenario.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Cut links, as (lower id, higher id): traffic is dropped both ways.
    pub cut: BTreeSet<(u64, u64)>,
    /// Probability that a request is lost.
    pub drop_request: f64,
    /// Probability that a delivered request's response is lost.
    pub drop_response: f64,
    /// Longest delay of a message, each way, in milliseconds.
    pub delay_max_ms: u64,
}

/// What happens to one RPC, drawn from its link's RNG.
struct Fate {
    drop_request: bool,
    drop_response: bool,
    request_delay: Duration,
    response_delay: Duration,
}

/// Message counters, for the per-seed summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub lost: AtomicU64,
    pub cut: AtomicU64,
    pub down: AtomicU64,
    pub refused: AtomicU64,
    /// Snapshot transfers openraft attempted (never expected: no log purge).
    pub snapshots: AtomicU64,
    /// Ledger fetches answered with batches (a resumed node filling its gap).
    pub fetched: AtomicU64,
    /// Refusals saying the receiver's Raft engine panicked (openraft's
    /// `Fatal::Panicked`, e.g. one of its debug assertions): never expected.
    pub panicked: AtomicU64,
}

/// The shared network: the registry of running engines, the faults and one RNG
/// per directed link.
pub struct Net {
    seed: u64,
    engines: Mutex<BTreeMap<u64, Arc<Engine>>>,
    faults: Mutex<Faults>,
    links: Mutex<BTreeMap<(u64, u64), ChaCha8Rng>>,
    /// The first distinct refusals by receiving engines (for failure reports).
    refusals: Mutex<BTreeSet<String>>,
    pub stats: Stats,
}

/// Distinct refusals kept for a failure report.
const REFUSALS_KEPT: usize = 8;

impl Net {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Net {
            seed,
            engines: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults::default()),
            links: Mutex::new(BTreeMap::new()),
            refusals: Mutex::new(BTreeSet::new()),
            stats: Stats::default(),
        })
    }

    /// The factory node `from` gives openraft.
    pub fn factory(self: &Arc<Self>, from: u64) -> SimNetwork {
        SimNetwork {
            net: Arc::clone(self),
            from,
        }
    }

    /// Makes `engine` reachable as node `id`.
    pub fn register(&self, id: u64, engine: Arc<Engine>) {
        lock(&self.engines).insert(id, engine);
    }

    /// Makes node `id` unreachable and hands its engine back.
    pub fn unregister(&self, id: u64) -> Option<Arc<Engine>> {
        lock(&self.engines).remove(&id)
    }

    /// The running engine of node `id`, if it runs.
    pub fn engine(&self, id: u64) -> Option<Arc<Engine>> {
        lock(&self.engines).get(&id).cloned()
    }

    /// Every running engine.
    pub fn engines(&self) -> BTreeMap<u64, Arc<Engine>> {
        lock(&self.engines).clone()
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.faults));
    }

    /// The first distinct refusals receiving engines answered.
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.refusals).iter().cloned().collect()
    }

    fn is_cut(&self, a: u64, b: u64) -> bool {
        lock(&self.faults).cut.contains(&(a.min(b), a.max(b)))
    }

    /// Draws the fate of one message from `from` to `to`. Each directed link has
    /// its own RNG seeded from the run's seed, so the sequence of draws on a link
    /// is fixed by the seed; which message gets which draw depends on timing.
    fn fate(&self, from: u64, to: u64) -> Fate {
        let faults = self.faults();
        let mut links = lock(&self.links);
        let rng = links.entry((from, to)).or_insert_with(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(from * 1000 + to);
            rng
        });
        let delay = |rng: &mut ChaCha8Rng| {
            Duration::from_millis(if faults.delay_max_ms == 0 {
                0
            } else {
                rng.gen_range(0..=faults.delay_max_ms)
            })
        };
        Fate {
            drop_request: rng.gen_bool(faults.drop_request),
            drop_response: rng.gen_bool(faults.drop_response),
            request_delay: delay(rng),
            response_delay: delay(rng),
        }
    }
}

/// openraft's network factory of one node.
#[derive(Clone)]
pub struct SimNetwork {
    net: Arc<Net>,
    from: u64,
}

/// The v1 client through openraft-legacy's adapter, as in production
/// (`PeerNetwork`): one AppendEntries in flight per peer, snapshots in chunks.
impl RaftNetworkFactory<SteleRaft> for SimNetwork {
    type Network = Adapter<SteleRaft, SimClient, TransferData>;

    async fn new_client(&mut self, target: u64, _node: &SteleNode) -> Self::Network {
        Adapter::new(SimClient {
            net: Arc::clone(&self.net),
            from: self.from,
            target,
        })
    }
}

/// openraft's client of one peer.
pub struct SimClient {
    net: Arc<Net>,
    from: u64,
    target: u64,
}

/// A failed call, before it becomes openraft's `RPCError` (as in the real
/// transport).
enum CallError {
    /// No route: cut link, node down, lost message.
    Unreachable(String),
    /// The receiving engine refused.
    Network(String),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(
        self,
        kind: &str,
        from: u64,
        target: u64,
    ) -> RPCError<SteleRaft, E> {
        let context = |m| format!("{kind} {from}->{target}: {m}");
        match self {
            CallError::Unreachable(m) => {
                RPCError::Unreachable(Unreachable::from_string(context(m)))
            }
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(context(m))),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CallError> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes)
        .map_err(|e| CallError::Network(format!("cannot encode: {e}")))?;
    Ok(bytes)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    ciborium::from_reader(bytes).map_err(|e| CallError::Network(format!("cannot decode: {e}")))
}

impl SimClient {
    /// Sends `request` through the faulty network to the target's `handler`.
    ///
    /// Messages cross as CBOR bytes, as on the wire. The delivery runs in its own
    /// task: if openraft gives up on the call (its timeout), the request may still
    /// arrive and be processed, as with a real server.
    async fn call<Req, Resp, F, Fut>(&self, request: &Req, handler: F) -> Result<Resp, CallError>
    where
        Req: Serialize + DeserializeOwned + Send + 'static,
        Resp: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(Arc<Engine>, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Resp, ConsensusError>> + Send + 'static,
    {
        let (net, from, to) = (&self.net, self.from, self.target);
        if net.is_cut(from, to) {
            net.stats.cut.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::Unreachable("link cut".to_owned()));
        }
        let fate = net.fate(from, to);
        let body = encode(request)?;
        if fate.drop_request {
            net.stats.lost.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(fate.request_delay).await;
            return Err(CallError::Unreachable("request lost".to_owned()));
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let delivery_net = Arc::clone(net);
        tokio::spawn(async move {
            tokio::time::sleep(fate.request_delay).await;
            let answer = match delivery_net.engine(to) {
                None => Err(CallError::Unreachable("node down".to_owned())),
                Some(engine) => match decode::<Req>(&body) {
                    Err(error) => Err(error),
                    Ok(request) => match handler(engine, request).await {
                        Ok(response) => encode(&response),
                        Err(refusal) => Err(CallError::Network(refusal.to_string())),
                    },
                },
            };
            let _ = sender.send(answer);
        });
        let answer = receiver
            .await
            .map_err(|_| CallError::Unreachable("the delivery task stopped".to_owned()))?;
        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(error) => {
                match &error {
                    CallError::Unreachable(_) => net.stats.down.fetch_add(1, Ordering::Relaxed),
                    CallError::Network(refusal) => {
                        if refusal.contains("panicked") {
                            net.stats.panicked.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut refusals = lock(&net.refusals);
                        if refusals.len() < REFUSALS_KEPT {
                            refusals.insert(format!("{from}->{to}: {refusal}"));
                        }
                        net.stats.refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
                return Err(error);
            }
        };
        tokio::time::sleep(fate.response_delay).await;
        // A link cut while the request was on its way drops the response.
        if fate.drop_response || net.is_cut(from, to) {
            net.stats.lost.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::Unreachable("response lost".to_owned()));
        }
        net.stats.delivered.fetch_add(1, Ordering::Relaxed);
        decode(&bytes)
    }
}

/// The background fetch of a resumed ledger (`POST /raft/fetch` in
/// production), through the same faulty network.
impl LedgerSource for SimNetwork {
    fn fetch(
        &self,
        peer: u64,
        _node: &SteleNode,
        request: LedgerFetch,
    ) -> BoxFuture<'_, Result<LedgerFetched, String>> {
        let client = SimClient {
            net: Arc::clone(&self.net),
            from: self.from,
            target: peer,
        };
        Box::pin(async move {
            let handler =
                |engine: Arc<Engine>, rpc| async move { engine.peer_service().fetch(rpc).await };
            let answer: LedgerFetched =
                client
                    .call(&request, handler)
                    .await
                    .map_err(|error| match error {
                        CallError::Unreachable(m) | CallError::Network(m) => {
                            format!("fetch {}->{peer}: {m}", client.from)
                        }
                    })?;
            if !answer.batches.is_empty() {
                client.net.stats.fetched.fetch_add(1, Ordering::Relaxed);
            }
            Ok(answer)
        })
    }
}

type RpcResult<T, E = RaftError<SteleRaft>> = Result<T, RPCError<SteleRaft, E>>;

impl RaftNetwork<SteleRaft> for SimClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SteleRaft>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<SteleRaft>> {
        let handler =
            |engine: Arc<Engine>, rpc| async move { engine.peer_service().append(rpc).await };
        let result = self.call(&rpc, handler).await;
        result.map_err(|e| e.into_rpc("append", self.from, self.target))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<SteleRaft>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<SteleRaft>> {
        let handler =
            |engine: Arc<Engine>, rpc| async move { engine.peer_service().vote(rpc).await };
        let result = self.call(&rpc, handler).await;
        result.map_err(|e| e.into_rpc("vote", self.from, self.target))
    }

    /// One snapshot chunk (a node the leader's purged log cannot serve).
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse, RaftError<SteleRaft, InstallSnapshotError>> {
        self.net.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        let handler =
            |engine: Arc<Engine>, rpc| async move { engine.peer_service().snapshot(rpc).await };
        let result = self.call(&rpc, handler).await;
        if result.is_err() {
            // As the real client: openraft-legacy's sender retries a failed
            // chunk after 1 ms, without end.
            tokio::time::sleep(Duration::from_millis(BACKOFF_MS)).await;
        }
        result.map_err(|e| e.into_rpc("snapshot", self.from, self.target))
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(BACKOFF_MS)))
    }
}
