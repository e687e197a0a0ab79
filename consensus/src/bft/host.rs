//! The host thread: one thread owns this validator's [`BftNode`], its
//! write-ahead log and the ledger's writes, and carries out the node's
//! actions in order:
//!
//! - `PersistWal`: appended; the log is synced (`fdatasync`) before the next
//!   action that is not one, so no vote leaves before it is durable;
//! - `Broadcast`: queued to every peer ([`Outbox`]);
//! - timers: kept here, fired as events when due;
//! - `GetValue`: answered with this node's next executed batch if it extends
//!   the committed state and was executed in the round's view (the executor
//!   proposes them through the [`Sequencer`](crate::sequencer::Sequencer));
//! - `Decided`: committed ([`Host::commit`]) before the next action.
//!
//! Between heights the node is parked: it starts the next height when it is
//! its proposer and has a batch, when a peer's message for it arrives, or
//! when a write refused here (the client was sent to the proposer) has waited
//! [`DEMAND_START_MS`] without the proposer starting it (it may be down).

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stele_bft::{Action, BftNode, Decision, Event, Height, Message, Round, Timeout, Wal};
use stele_ledger::Ledger;

use super::certificate::{batch_of, certificate_note};
use super::outbox::Outbox;
use super::{BftShared, HostEvent};
use crate::batch::ExecutedBatch;
use crate::replica::Replica;
use crate::sequencer::ProposalDone;
use crate::submission::SubmitError;
use crate::sync::lock;
use crate::ConsensusError;

/// How long a write refused at a parked non-proposer waits for the proposer
/// to start the next height before this node starts it (a round change if
/// the proposer is down).
pub const DEMAND_START_MS: u64 = 2_000;
/// Longest sleep of the host loop with nothing due.
const IDLE_TICK_MS: u64 = 100;
/// Least time between two sync requests for one height.
pub const SYNC_RETRY_MS: u64 = 500;
/// Peers that must answer "nothing newer" before a started node stops asking
/// (it may have missed heights while the cluster went idle).
const CAUGHT_UP_ANSWERS: usize = 2;

/// The host's state (see the module docs).
pub(crate) struct Host {
    pub(crate) node: BftNode,
    pub(crate) wal: Wal,
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    pub(crate) replica: Arc<Replica>,
    pub(crate) outbox: Outbox,
    pub(crate) shared: Arc<BftShared>,
    pub(crate) origin: String,
    pub(crate) validators: stele_bft::ValidatorSet,
    pub(crate) inbox: Receiver<HostEvent>,
    /// The intake learns that a batch is durable (its batching follows it).
    pub(crate) durable: crate::sequencer::OnDurable,
    /// Asks a peer for a decided height (runs the request on the runtime).
    pub(crate) request_sync: Box<dyn Fn(u64, Height) + Send>,
    pub(crate) timers: Vec<(Height, Timeout, Instant)>,
    /// This node's executed batches, in order, with their ends.
    pub(crate) proposals: VecDeque<(ExecutedBatch, ProposalDone)>,
    /// The (height, round) this node must propose for.
    pub(crate) wanted: Option<(Height, Round)>,
    pub(crate) demand_since: Option<Instant>,
    pub(crate) last_sync: Option<(Height, Instant)>,
    /// The highest height each peer was seen at.
    pub(crate) ahead: BTreeMap<u64, Height>,
    /// Sync requests sent (picks the peer asked).
    pub(crate) sync_requests: usize,
    /// The other validators.
    pub(crate) peers: Vec<u64>,
    /// Peers that answered they have nothing past this node's height.
    pub(crate) caught_up: Vec<u64>,
    /// Byzantine tests: how this node misbehaves.
    #[cfg(feature = "byzantine")]
    pub(crate) fault: Option<super::byzantine::ByzantineFault>,
    /// Byzantine tests: the key an equivocating node signs its twins with.
    #[cfg(feature = "byzantine")]
    pub(crate) signing_key: ed25519_dalek::SigningKey,
}

impl Host {
    /// Runs until stopped or failed; every proposal left is ended.
    pub(crate) fn run(mut self, initial: Vec<Action>) {
        let mut result = self.carry_out(initial);
        while result.is_ok() {
            let wait = self.next_wait();
            let event = match self.inbox.recv_timeout(wait) {
                Ok(HostEvent::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
            };
            result = self.step(event);
        }
        if let Err(error) = result {
            let reason = format!("BFT ordering stopped: {error}");
            tracing::error!("{reason}");
            *lock(&self.shared.fatal) = Some(reason);
        }
        self.fail_proposals(|| SubmitError::Stopped("the node is shutting down".to_owned()));
        self.shared.publish(&self.node, true);
    }

    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        let tick = Duration::from_millis(IDLE_TICK_MS);
        self.timers
            .iter()
            .map(|(_, _, due)| due.saturating_duration_since(now))
            .min()
            .map_or(tick, |due| due.min(tick))
    }

    fn step(&mut self, event: Option<HostEvent>) -> Result<(), ConsensusError> {
        match event {
            Some(HostEvent::Messages {
                from,
                messages,
                bytes,
            }) => {
                self.shared
                    .queued_bytes
                    .fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
                for message in messages {
                    self.maybe_sync(from, &message);
                    let actions = self
                        .node
                        .handle(Event::Message(stele_bft::ValidatorId(from), message));
                    self.carry_out(actions)?;
                }
            }
            Some(HostEvent::Proposed { batch, done }) => self.proposals.push_back((batch, done)),
            Some(HostEvent::Demand) => {
                if self.node.parked() && self.demand_since.is_none() {
                    self.demand_since = Some(Instant::now());
                }
            }
            Some(HostEvent::Synced(decision)) => self.synced(decision)?,
            Some(HostEvent::NothingNewer { from, height }) => self.nothing_newer(from, height),
            Some(HostEvent::Stop) | None => {}
        }
        let now = Instant::now();
        let (due, pending): (Vec<_>, Vec<_>) =
            self.timers.drain(..).partition(|(_, _, at)| *at <= now);
        self.timers = pending;
        for (height, timeout, _) in due {
            let actions = self.node.handle(Event::TimeoutElapsed(height, timeout));
            self.carry_out(actions)?;
        }
        self.sync_step();
        self.maybe_start()?;
        self.maybe_propose()?;
        self.shared.publish(&self.node, false);
        Ok(())
    }

    /// Starts the parked next height when this node proposes it and has a
    /// batch, or when a refused write has waited too long.
    fn maybe_start(&mut self) -> Result<(), ConsensusError> {
        if !self.node.parked() {
            self.demand_since = None;
            return Ok(());
        }
        let proposing = self.node.proposer().0 == self.shared.node_id && !self.proposals.is_empty();
        let demand = self
            .demand_since
            .is_some_and(|since| since.elapsed() >= Duration::from_millis(DEMAND_START_MS));
        if proposing || demand {
            self.demand_since = None;
            let actions = self.node.handle(Event::Start);
            self.carry_out(actions)?;
        }
        Ok(())
    }

    /// Answers a pending `GetValue` with the next batch, if there is one that
    /// fits; batches that can no longer fit are ended (the executor settles).
    fn maybe_propose(&mut self) -> Result<(), ConsensusError> {
        let Some((height, round)) = self.wanted else {
            return Ok(());
        };
        if height != self.node.height() || round != self.node.round() {
            self.wanted = None;
            return Ok(());
        }
        let committed = self.replica.committed_seqno();
        let view = self.node.view();
        let fits = |batch: &ExecutedBatch| {
            batch.batch.first_seqno == committed + 1 && batch.batch.view == view
        };
        match self.proposals.front() {
            None => return Ok(()),
            Some((batch, _)) if fits(batch) => {}
            Some(_) => {
                // Executed on another state or in an earlier view.
                self.fail_proposals(|| SubmitError::NotLeader {
                    leader: None,
                    address: None,
                });
                return Ok(());
            }
        }
        let (batch, _) = self.proposals.front().expect("checked above");
        #[allow(unused_mut)]
        let mut body = batch.signature.checkpoint.clone();
        #[cfg(feature = "byzantine")]
        if self.fault == Some(super::byzantine::ByzantineFault::WrongRoot) {
            body = super::byzantine::wrong_root(&body);
        }
        let value = super::certificate::value_of(&batch.batch, &body)?;
        self.wanted = None;
        let actions = self
            .node
            .handle(Event::ValueToPropose(height, round, value));
        self.carry_out(actions)
    }

    /// Carries out `actions` in order (see the module docs).
    fn carry_out(&mut self, actions: Vec<Action>) -> Result<(), ConsensusError> {
        let mut unsynced = false;
        for action in actions {
            if let Action::PersistWal(entry) = &action {
                self.wal.append(entry).map_err(bft_error)?;
                unsynced = true;
                continue;
            }
            if unsynced {
                self.wal.sync().map_err(bft_error)?;
                unsynced = false;
            }
            match action {
                Action::PersistWal(_) => unreachable!("handled above"),
                Action::Broadcast(message) => self.broadcast(message),
                Action::ScheduleTimeout {
                    height,
                    timeout,
                    after,
                } => {
                    self.timers
                        .retain(|(h, t, _)| !(*h == height && *t == timeout));
                    self.timers.push((height, timeout, Instant::now() + after));
                }
                Action::CancelTimeout { height, timeout } => self
                    .timers
                    .retain(|(h, t, _)| !(*h == height && *t == timeout)),
                Action::CancelAllTimeouts => self.timers.clear(),
                Action::GetValue { height, round } => self.wanted = Some((height, round)),
                Action::Decided {
                    height,
                    value,
                    certificate,
                    view,
                } => {
                    self.commit(height, &value, &certificate, view)?;
                    self.wal.reset(height.next()).map_err(bft_error)?;
                }
            }
        }
        if unsynced {
            self.wal.sync().map_err(bft_error)?;
        }
        Ok(())
    }

    /// Commits the batch decided at `height`: the speculative state holds it
    /// (re-executed if this node had another), its note becomes the
    /// certificate note, the ledger makes it durable, the core applies it.
    fn commit(
        &mut self,
        height: Height,
        value: &stele_bft::Value,
        certificate: &stele_bft::CommitCertificate<stele_bft::SteleContext>,
        view: u64,
    ) -> Result<(), ConsensusError> {
        let batch = batch_of(value).map_err(|reason| {
            ConsensusError::Bft(format!("the batch decided at height {height}: {reason}"))
        })?;
        let note = certificate_note(&self.origin, &self.validators, certificate, view)?;
        let first = batch.first_seqno;
        let last = batch.last_seqno();
        let mut certified = ExecutedBatch::with_checkpoint(batch, note.clone());
        {
            let dispatcher = lock(&self.replica.execution);
            let held =
                self.replica.read_history().note_ending_at(last) == Some(value.checkpoint_body());
            if held {
                self.replica.write_history().certify(last, note)?;
            } else {
                self.replica.rollback_to(first.saturating_sub(1))?;
                certified.prev_root = self.replica.read_history().root().0;
                if let Err(error) = self.replica.check(&dispatcher, &certified) {
                    let reason = format!(
                        "the batch decided at height {height} does not re-execute: {error}"
                    );
                    self.replica.fail(reason.clone());
                    return Err(ConsensusError::Stopped(reason));
                }
            }
        }
        {
            let mut ledger = lock(&self.ledger);
            ledger.append(&certified.batch, &certified.signature)?;
            ledger.sync()?;
            ledger.commit(last)?;
        }
        self.replica.raise_high_water(&certified)?;
        self.replica.apply_committed(&certified)?;
        (self.durable)(last);
        // This node's proposals: the decided one ends well; the others were
        // executed on top of a state that is not the committed one.
        let ours = self.proposals.front().is_some_and(|(batch, _)| {
            batch.batch.last_seqno() == last
                && batch.signature.checkpoint == value.checkpoint_body()
        });
        if ours {
            if let Some((_, done)) = self.proposals.pop_front() {
                done(Ok(()));
            }
        } else if self
            .proposals
            .front()
            .is_some_and(|(batch, _)| batch.batch.first_seqno <= last)
        {
            self.fail_proposals(|| SubmitError::NotLeader {
                leader: None,
                address: None,
            });
        }
        *lock(&self.shared.decided_height) = height.0;
        Ok(())
    }

    /// Peer `from` has not decided the height asked for.
    fn nothing_newer(&mut self, from: u64, height: Height) {
        let wanted = Height(*lock(&self.shared.decided_height)).next();
        if height == wanted && !self.caught_up.contains(&from) {
            self.caught_up.push(from);
        }
    }

    /// A decided height fetched from a peer: the node checks its certificate.
    fn synced(&mut self, decision: Decision) -> Result<(), ConsensusError> {
        let actions = self.node.handle(Event::Synced {
            value: decision.value,
            certificate: decision.certificate,
            view: decision.view,
        });
        self.carry_out(actions)
    }

    /// Notes that `from` is at the height of `message`: a peer past this
    /// node's next height has decided heights this node lacks.
    fn maybe_sync(&mut self, from: u64, message: &Message) {
        let height = message.height();
        let seen = self.ahead.entry(from).or_insert(height);
        *seen = (*seen).max(height);
    }

    /// Asks a peer seen past this node's next height for the next decision
    /// this node lacks: one request at a time, retried after
    /// [`SYNC_RETRY_MS`] at the next such peer (a Byzantine peer can claim a
    /// height it cannot serve).
    fn sync_step(&mut self) {
        let wanted = Height(*lock(&self.shared.decided_height)).next();
        let mut ahead: Vec<u64> = self
            .ahead
            .iter()
            .filter(|(_, seen)| **seen > wanted)
            .map(|(peer, _)| *peer)
            .collect();
        // After a start, until two peers said they have nothing more: this
        // node may have missed heights while the cluster is now idle.
        if ahead.is_empty() && self.caught_up.len() < CAUGHT_UP_ANSWERS {
            ahead = self.peers.clone();
        }
        if ahead.is_empty() {
            return;
        }
        let retry = Duration::from_millis(SYNC_RETRY_MS);
        if self
            .last_sync
            .is_some_and(|(height, at)| height == wanted && at.elapsed() < retry)
        {
            return;
        }
        self.last_sync = Some((wanted, Instant::now()));
        self.sync_requests += 1;
        let peer = ahead[self.sync_requests % ahead.len()];
        (self.request_sync)(peer, wanted);
    }

    /// Sends `message` to every peer (a Byzantine node may do otherwise).
    fn broadcast(&mut self, message: Message) {
        #[cfg(feature = "byzantine")]
        match self.fault {
            Some(super::byzantine::ByzantineFault::Silent) => return,
            Some(super::byzantine::ByzantineFault::Equivocate) => {
                if let Some(twin) = super::byzantine::conflicting(
                    &message,
                    &self.signing_key,
                    self.node.view_base(),
                ) {
                    self.outbox.split(message.encode(), twin.encode());
                    return;
                }
            }
            _ => {}
        }
        self.outbox.broadcast(message.encode());
    }

    /// Ends every queued proposal with `error`.
    fn fail_proposals(&mut self, error: impl Fn() -> SubmitError) {
        for (_, done) in self.proposals.drain(..) {
            done(Err(error()));
        }
    }
}

fn bft_error(error: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Bft(error.to_string())
}
