//! BFT mode (issue P11, `docs/bft.md`): the [`Sequencer`] backend that orders
//! batches with Malachite's Tendermint core (`stele-bft`) among n = 3f + 1
//! validators with voting powers.
//!
//! - [`BftSequencer`]: the seam's BFT side and the peer routes' handler
//!   (`POST /bft/messages`, `POST /bft/sync`).
//! - `host` — the thread that owns the core, its write-ahead log and the
//!   ledger's writes, and carries out the core's actions in order.
//! - `check` — the validity hook: re-execute a proposed batch before
//!   prevoting for it.
//! - [`certificate`] — the certificate note (the decided checkpoint, signed by
//!   > 2/3 of the power) and a decision read back from the ledger.
//! - `outbox` — messages to peers, one ordered sender per peer.
//!
//! Invariants kept:
//! - The ledger holds decided batches only, each followed by its certificate
//!   note; a batch is reported committed once that is durable here.
//! - No vote leaves this node before the write-ahead log holding it is synced
//!   (a restarted node never signs a conflicting vote).
//! - A node prevotes only for a batch it re-executed on its committed state to
//!   the same write sets and root.
//! - Height h is the h-th batch of the ledger (no resumption in BFT mode).

#[cfg(feature = "byzantine")]
pub mod byzantine;
pub mod certificate;
mod check;
mod host;
mod outbox;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use stele_bft::{
    BftConfig, BftNode, Decision, Height, LinearTimeouts, Message, Validator, ValidatorId,
    ValidatorSet, Wal,
};
use stele_ledger::{Ledger, StorageHealth};

use crate::batch::ExecutedBatch;
use crate::members::{Members, SteleNode};
use crate::raft::network::{Partition, PeerAuth, PeerNetwork, PeerService};
use crate::raft::types::{
    BftMessages, BftSyncAnswer, BftSyncRequest, BftTaken, InstallSnapshotRequest,
    InstallSnapshotResponse, LedgerFetch, LedgerFetched, SteleRaft,
};
use crate::replica::Replica;
use crate::sequencer::{BoxFuture, Leadership, OrderStatus, ProposalDone, Sequencer};
use crate::sync::lock;
use crate::{ConsensusError, SubmitError};

/// The least batch wait in BFT mode, in microseconds: one batch is decided
/// per height (two voting phases, each synced), so the executor cuts the next
/// batch when the last one commits (the intake's idle-log rule) or after this
/// long, instead of queueing many small batches behind one height.
pub const BFT_BATCH_WAIT_US_MIN: u64 = 50_000;

/// Events queued for the host thread before peers' messages are refused.
pub const HOST_EVENTS_MAX: usize = 4096;
/// Bytes of peers' messages queued for the host thread before more are
/// refused (a Byzantine peer must not fill this node's memory).
pub const HOST_QUEUE_BYTES_MAX: usize = 256 << 20;
/// Messages accepted in one `POST /bft/messages`.
pub const MESSAGES_PER_REQUEST_MAX: usize = 4096;

/// BFT mode's part of a node's setup.
pub struct BftSetup {
    /// Every validator's voting power, by node id (the members' keys are
    /// their validator keys).
    pub powers: BTreeMap<u64, u64>,
    /// This node's key: its peer key and its validator key.
    pub signing_key: SigningKey,
    /// Round timeouts.
    pub timeouts: LinearTimeouts,
    /// The write-ahead log file.
    pub wal_path: PathBuf,
    /// Tests only: how this validator misbehaves.
    #[cfg(feature = "byzantine")]
    pub fault: Option<byzantine::ByzantineFault>,
}

/// What the host thread is told.
pub(crate) enum HostEvent {
    /// A peer's messages.
    Messages {
        from: u64,
        messages: Vec<Message>,
        /// Their encoded size, counted in `BftShared::queued_bytes`.
        bytes: usize,
    },
    /// This node's executor proposes a batch.
    Proposed {
        batch: ExecutedBatch,
        done: ProposalDone,
    },
    /// A write was refused here: this node does not propose.
    Demand,
    /// A decided height fetched from a peer.
    Synced(Decision),
    /// Peer `from` has not decided `height`.
    NothingNewer { from: u64, height: Height },
    /// Stop.
    Stop,
}

/// What the host publishes for the seam's readers.
pub(crate) struct BftShared {
    pub(crate) node_id: u64,
    addresses: BTreeMap<u64, String>,
    leadership: Mutex<Leadership>,
    status: Mutex<OrderStatus>,
    pub(crate) fatal: Mutex<Option<String>>,
    /// The last height committed here.
    pub(crate) decided_height: Mutex<u64>,
    /// Bytes of peers' messages queued for the host.
    pub(crate) queued_bytes: AtomicUsize,
}

impl BftShared {
    /// Publishes the node's view, proposer and role.
    pub(crate) fn publish(&self, node: &BftNode, stopped: bool) {
        let parked = node.parked();
        let view = if parked {
            node.view_base()
        } else {
            node.view()
        };
        let proposer = node.proposer().0;
        let address = self.addresses.get(&proposer).cloned();
        *lock(&self.leadership) = Leadership {
            leader: Some(proposer),
            view,
            address: address.clone(),
        };
        let role = match (stopped, proposer == self.node_id) {
            (true, _) => "Shutdown",
            (false, true) => "Proposer",
            (false, false) => "Validator",
        };
        *lock(&self.status) = OrderStatus {
            role: role.to_owned(),
            term: view,
            leader: Some(proposer),
            leader_address: address,
        };
    }
}

/// The BFT backend: a handle on the host thread.
pub struct BftSequencer {
    shared: Arc<BftShared>,
    inbox: SyncSender<HostEvent>,
    host: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopped: AtomicBool,
    auth: Arc<PeerAuth>,
    partition: Partition,
    ledger: Arc<Mutex<Ledger>>,
    origin: String,
    members: BTreeMap<u64, SteleNode>,
    validators: ValidatorSet,
    storage: Arc<StorageHealth>,
}

/// Everything [`BftSequencer::start`] needs.
pub(crate) struct BftStart {
    pub(crate) ledger: Ledger,
    pub(crate) node_id: u64,
    pub(crate) members: BTreeMap<u64, SteleNode>,
    pub(crate) auth: Arc<PeerAuth>,
    pub(crate) partition: Partition,
    pub(crate) setup: BftSetup,
    pub(crate) replica: Arc<Replica>,
    pub(crate) durable: crate::sequencer::OnDurable,
}

impl BftSequencer {
    /// Opens the write-ahead log, recovers the node at the height after the
    /// ledger's last batch and starts the host thread. Must run inside a
    /// tokio runtime (the peer senders run on it).
    pub(crate) fn start(start: BftStart) -> Result<Self, ConsensusError> {
        let BftStart {
            ledger,
            node_id,
            members,
            auth,
            partition,
            setup,
            replica,
            durable,
        } = start;
        let validators = validator_set(&members, &setup.powers)?;
        let origin = replica.identity.origin().to_owned();
        // Height h is the h-th batch; the next height's view is the one the
        // last was decided in.
        let decided = ledger.batches().len() as u64;
        let view_base = match ledger.batches().last() {
            Some(last) => {
                let (_, signature) = ledger.read_batch(last.first_seqno)?;
                certificate::decided_view(&signature.checkpoint).ok_or_else(|| {
                    ConsensusError::Bft(format!(
                        "the ledger's last batch (seqno {}) has no BFT certificate: not a BFT ledger",
                        last.last_seqno
                    ))
                })?
            }
            None => 0,
        };
        if !ledger.resumptions().is_empty() {
            return Err(ConsensusError::Bft(
                "a resumed ledger cannot run in BFT mode".to_owned(),
            ));
        }
        let height = Height(decided + 1);
        let (mut wal, entries) = Wal::open(&setup.wal_path).map_err(host_error)?;
        if let Some(torn) = wal.torn_tail() {
            tracing::warn!(?torn, "cut a torn tail off the BFT write-ahead log");
        }
        let config = BftConfig {
            id: ValidatorId(node_id),
            signing_key: setup.signing_key.clone(),
            validators: validators.clone(),
            timeouts: setup.timeouts,
            park_between_heights: true,
        };
        let check = Box::new(check::ReplicaCheck {
            replica: Arc::clone(&replica),
            #[cfg(feature = "byzantine")]
            vote_all: setup.fault == Some(byzantine::ByzantineFault::VoteAll),
        });
        let logged = wal.height() == height && !entries.is_empty();
        let (node, initial) = if logged {
            tracing::info!(%height, entries = entries.len(), "resuming the height from the write-ahead log");
            BftNode::recover(config, check, height, view_base, &entries).map_err(host_error)?
        } else {
            wal.reset(height).map_err(host_error)?;
            (
                BftNode::new(config, check, height, view_base).map_err(host_error)?,
                Vec::new(),
            )
        };
        let addresses = members
            .iter()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let shared = Arc::new(BftShared {
            node_id,
            addresses,
            leadership: Mutex::new(Leadership {
                leader: None,
                view: view_base,
                address: None,
            }),
            status: Mutex::new(OrderStatus {
                role: "Validator".to_owned(),
                term: view_base,
                leader: None,
                leader_address: None,
            }),
            fatal: Mutex::new(None),
            decided_height: Mutex::new(decided),
            queued_bytes: AtomicUsize::new(0),
        });
        shared.publish(&node, false);
        let runtime = tokio::runtime::Handle::current();
        let network = PeerNetwork::new(Arc::clone(&auth), partition.clone())?;
        let outbox = outbox::Outbox::start(&runtime, &network, node_id, &members);
        let (inbox, receiver) = sync_channel(HOST_EVENTS_MAX);
        let ledger = Arc::new(Mutex::new(ledger));
        let request_sync = sync_requester(runtime, network, members.clone(), inbox.clone());
        let host = host::Host {
            node,
            wal,
            ledger: Arc::clone(&ledger),
            replica,
            outbox,
            shared: Arc::clone(&shared),
            origin: origin.clone(),
            inbox: receiver,
            durable,
            request_sync,
            validators: validators.clone(),
            timers: Vec::new(),
            proposals: VecDeque::new(),
            wanted: None,
            demand_since: None,
            last_sync: None,
            ahead: BTreeMap::new(),
            sync_requests: 0,
            peers: members
                .keys()
                .copied()
                .filter(|id| *id != node_id)
                .collect(),
            caught_up: Vec::new(),
            #[cfg(feature = "byzantine")]
            fault: setup.fault,
            #[cfg(feature = "byzantine")]
            signing_key: setup.signing_key.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("stele-bft".to_owned())
            .spawn(move || host.run(initial))
            .map_err(|error| ConsensusError::Stopped(format!("spawning the BFT host: {error}")))?;
        Ok(BftSequencer {
            shared,
            inbox,
            host: Mutex::new(Some(thread)),
            stopped: AtomicBool::new(false),
            auth,
            partition,
            ledger,
            origin,
            members,
            validators,
            storage: Arc::new(StorageHealth::default()),
        })
    }

    /// The ledger writer's health (BFT mode writes synchronously: a failure
    /// stops the ordering instead).
    pub(crate) fn storage_health(&self) -> Arc<StorageHealth> {
        Arc::clone(&self.storage)
    }

    /// The validators (ids, keys, powers).
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }
}

/// The validator set of `members` with `powers` (1 where none is given).
fn validator_set(
    members: &BTreeMap<u64, SteleNode>,
    powers: &BTreeMap<u64, u64>,
) -> Result<ValidatorSet, ConsensusError> {
    if let Some(stranger) = powers.keys().find(|id| !members.contains_key(id)) {
        return Err(ConsensusError::Config(format!(
            "a voting power for node {stranger}, which is not a member"
        )));
    }
    let validators = members
        .iter()
        .map(|(id, node)| {
            let key = node.verifying_key().ok_or_else(|| {
                ConsensusError::Config(format!("member {id}'s public key is not an Ed25519 key"))
            })?;
            Ok(Validator {
                id: ValidatorId(*id),
                public_key: key,
                power: powers.get(id).copied().unwrap_or(1),
            })
        })
        .collect::<Result<Vec<_>, ConsensusError>>()?;
    ValidatorSet::new(validators).map_err(|error| ConsensusError::Config(error.to_string()))
}

/// The function the host asks peers for decisions with: one request on the
/// runtime, whose answer is queued back to the host.
fn sync_requester(
    runtime: tokio::runtime::Handle,
    network: PeerNetwork,
    members: BTreeMap<u64, SteleNode>,
    inbox: SyncSender<HostEvent>,
) -> Box<dyn Fn(u64, Height) + Send> {
    Box::new(move |from, height| {
        let Some(node) = members.get(&from) else {
            return;
        };
        let client = network.peer_client(from, node);
        let inbox = inbox.clone();
        runtime.spawn(async move {
            let request = BftSyncRequest { height: height.0 };
            match client.bft_sync(&request).await {
                Ok(BftSyncAnswer {
                    decision: Some(bytes),
                }) => match Decision::decode(&bytes) {
                    Ok(decision) if decision.height == height => {
                        let _ = inbox.try_send(HostEvent::Synced(decision));
                    }
                    Ok(_) => tracing::debug!(peer = from, "a sync answer for another height"),
                    Err(error) => {
                        tracing::debug!(peer = from, %error, "a sync answer that does not decode")
                    }
                },
                Ok(BftSyncAnswer { decision: None }) => {
                    let _ = inbox.try_send(HostEvent::NothingNewer { from, height });
                }
                Err(error) => tracing::debug!(%error, "a sync request failed"),
            }
        });
    })
}

fn host_error(error: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Bft(error.to_string())
}

impl Sequencer for BftSequencer {
    fn leadership(&self) -> Leadership {
        lock(&self.shared.leadership).clone()
    }

    fn propose(&self, batch: ExecutedBatch, done: ProposalDone) -> Result<(), ConsensusError> {
        self.inbox
            .send(HostEvent::Proposed { batch, done })
            .map_err(|_| ConsensusError::Stopped("the BFT host has stopped".to_owned()))
    }

    fn demand(&self) {
        let _ = self.inbox.try_send(HostEvent::Demand);
    }

    fn logged_after(&self, _seqno: u64) -> Result<Vec<ExecutedBatch>, ConsensusError> {
        // Only decided batches are logged, and they are applied as they are
        // logged: nothing past the commit point to settle against.
        Ok(Vec::new())
    }

    fn logged_batch(&self, seqno: u64) -> Result<Option<ExecutedBatch>, ConsensusError> {
        let ledger = lock(&self.ledger);
        if seqno == 0 || seqno > ledger.last_seqno() {
            return Ok(None);
        }
        let (batch, signature) = ledger.read_batch(seqno)?;
        Ok(Some(ExecutedBatch::with_checkpoint(
            batch,
            signature.checkpoint,
        )))
    }

    fn status(&self) -> OrderStatus {
        lock(&self.shared.status).clone()
    }

    fn members(&self) -> Members {
        Members {
            voters: self.members.clone(),
            learners: BTreeMap::new(),
        }
    }

    fn add_member(&self, _id: u64, _node: SteleNode) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async { Err(membership_fixed()) })
    }

    fn remove_member(&self, _id: u64) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async { Err(membership_fixed()) })
    }

    fn ensure_linearizable(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        // The proposer serves its committed state: every batch it commits it
        // also proposed or checked, and a later one cannot commit without it.
        let leadership = self.leadership();
        Box::pin(async move {
            if leadership.leader == Some(self.shared.node_id) {
                Ok(())
            } else {
                Err(ConsensusError::Submit(leadership.not_leader()))
            }
        })
    }

    fn fatal(&self) -> Option<String> {
        lock(&self.shared.fatal).clone()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.stopped.swap(true, Ordering::AcqRel) {
                return;
            }
            let _ = self.inbox.send(HostEvent::Stop);
            let thread = lock(&self.host).take();
            if let Some(thread) = thread {
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!("the BFT host thread panicked");
                }
            }
        })
    }
}

/// The refusal of peers' messages while the host's queue is full.
fn busy() -> ConsensusError {
    ConsensusError::Submit(SubmitError::Overloaded {
        uncommitted: HOST_EVENTS_MAX as u64,
    })
}

fn membership_fixed() -> ConsensusError {
    ConsensusError::Config("BFT mode has a fixed validator set: members cannot change".to_owned())
}

fn raft_route() -> ConsensusError {
    ConsensusError::Config("this node runs BFT mode, not Raft".to_owned())
}

impl PeerService for BftSequencer {
    fn auth(&self) -> &PeerAuth {
        &self.auth
    }

    fn partition(&self) -> &Partition {
        &self.partition
    }

    fn append(
        &self,
        _rpc: openraft::raft::AppendEntriesRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<openraft::raft::AppendEntriesResponse<SteleRaft>, ConsensusError>>
    {
        Box::pin(async { Err(raft_route()) })
    }

    fn vote(
        &self,
        _rpc: openraft::raft::VoteRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<openraft::raft::VoteResponse<SteleRaft>, ConsensusError>> {
        Box::pin(async { Err(raft_route()) })
    }

    fn snapshot(
        &self,
        _rpc: InstallSnapshotRequest,
    ) -> BoxFuture<'_, Result<InstallSnapshotResponse, ConsensusError>> {
        Box::pin(async { Err(raft_route()) })
    }

    fn fetch(&self, _rpc: LedgerFetch) -> BoxFuture<'_, Result<LedgerFetched, ConsensusError>> {
        Box::pin(async { Err(raft_route()) })
    }

    fn bft_messages(
        &self,
        from: u64,
        rpc: BftMessages,
    ) -> BoxFuture<'_, Result<BftTaken, ConsensusError>> {
        Box::pin(async move {
            if rpc.messages.len() > MESSAGES_PER_REQUEST_MAX {
                return Err(ConsensusError::Bft(format!(
                    "more than {MESSAGES_PER_REQUEST_MAX} messages in one request"
                )));
            }
            let bytes: usize = rpc.messages.iter().map(|message| message.len()).sum();
            let queued = &self.shared.queued_bytes;
            if queued.fetch_add(bytes, Ordering::AcqRel) + bytes > HOST_QUEUE_BYTES_MAX {
                queued.fetch_sub(bytes, Ordering::AcqRel);
                return Err(busy());
            }
            // A message that does not decode is dropped, never an error that
            // costs the others.
            let messages: Vec<Message> = rpc
                .messages
                .iter()
                .filter_map(|bytes| Message::decode(bytes).ok())
                .collect();
            let taken = messages.len() as u64;
            let event = HostEvent::Messages {
                from,
                messages,
                bytes,
            };
            match self.inbox.try_send(event) {
                Ok(()) => Ok(BftTaken { taken }),
                Err(refused) => {
                    queued.fetch_sub(bytes, Ordering::AcqRel);
                    match refused {
                        TrySendError::Full(_) => Err(busy()),
                        TrySendError::Disconnected(_) => Err(ConsensusError::Stopped(
                            "the BFT host has stopped".to_owned(),
                        )),
                    }
                }
            }
        })
    }

    fn bft_sync(
        &self,
        rpc: BftSyncRequest,
    ) -> BoxFuture<'_, Result<BftSyncAnswer, ConsensusError>> {
        Box::pin(async move {
            let ledger = lock(&self.ledger);
            let Some(location) = rpc
                .height
                .checked_sub(1)
                .and_then(|index| ledger.batches().get(usize::try_from(index).ok()?))
                .copied()
            else {
                return Ok(BftSyncAnswer { decision: None });
            };
            let (batch, signature) = ledger.read_batch(location.first_seqno)?;
            drop(ledger);
            let decision = certificate::decision_from_ledger(&self.origin, &batch, &signature)?;
            Ok(BftSyncAnswer {
                decision: Some(serde_bytes::ByteBuf::from(decision.encode())),
            })
        })
    }
}
