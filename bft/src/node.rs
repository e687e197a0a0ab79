//! [`BftNode`]: one validator's Malachite core, driven sans-IO.
//!
//! The host turns the world into [`Event`]s and carries out the [`Action`]s
//! that [`BftNode::handle`] returns, **in order**:
//!
//! ```text
//! network / timers / ledger --Event--> BftNode::handle --Vec<Action>--> host
//!                                        |  Malachite `process!`: Input -> Effects
//!                                        |  (sign, verify, WAL, publish, timers) answered here
//! ```
//!
//! Ordering contract: a [`Action::PersistWal`] must be durable before the host
//! acts on any later action of the same batch (above all a [`Action::Broadcast`],
//! which may carry the vote just logged), and a [`Action::Decided`] must be
//! committed before the actions after it, which already belong to the next
//! height (the WAL is per height: see [`BftNode::recover`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use arc_malachitebft_core_consensus::{
    process, Error as CoreError, Input, LocallyProposedValue, Params, PeerId, State,
    ThresholdParams, ValuePayload,
};
use arc_malachitebft_core_types::{
    CommitCertificate, ExtendedCommitCertificate, LinearTimeouts, PolkaCertificate, Round,
    RoundCertificate, Timeout, ValueOrigin, ValueResponse, VoteExtensionPolicy,
};
use ed25519_dalek::SigningKey;

use crate::context::{Height, SteleContext, ValidatorId, Value, ValueId};
use crate::error::BftError;
use crate::signing::{verify_proposal, SignedProposal, SignedVote};
use crate::validators::{select_proposer, ValidatorSet};
use crate::validity::Validity;

/// Heights ahead of the current one whose proposals are kept for later.
pub const FUTURE_HEIGHTS_MAX: u64 = 4;
/// Proposals kept per future height.
pub const FUTURE_PROPOSALS_PER_HEIGHT_MAX: usize = 16;
/// Distinct values checked per round (Malachite stores at most 2 per round;
/// more from one proposer is equivocation, and re-execution is expensive).
pub const VALUES_CHECKED_PER_ROUND_MAX: usize = 2;

/// A message between validators. Each carries its own signatures; the
/// transport's sender is not trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A signed proposal (the value travels inside: `ProposalOnly`).
    Proposal(SignedProposal),
    /// A signed prevote or precommit.
    Vote(SignedVote),
    /// > 2/3 prevotes for one value (sent with a re-proposal).
    PolkaCertificate(PolkaCertificate<SteleContext>),
    /// A round's precommits, or > 1/3 votes of a later round (skip).
    RoundCertificate(RoundCertificate<SteleContext>),
}

/// What happened to the node.
#[derive(Clone, Debug)]
pub enum Event {
    /// Start the first height (once; a recovered node is already started).
    Start,
    /// A message from a peer (never the node's own broadcasts).
    Message(ValidatorId, Message),
    /// A timeout scheduled by [`Action::ScheduleTimeout`] elapsed.
    TimeoutElapsed(Height, Timeout),
    /// The value asked for by [`Action::GetValue`].
    ValueToPropose(Height, Round, Vec<u8>),
    /// A decided value and its certificate, fetched from a peer for the
    /// current height (catch-up); the certificate is checked before use.
    Synced {
        /// The decided value's bytes.
        value: Vec<u8>,
        /// Its commit certificate.
        certificate: CommitCertificate<SteleContext>,
    },
}

/// An entry of the write-ahead log: an input the core must see again after a
/// restart (its own votes and proposals among them). [`WalEntry::encode`] and
/// [`WalEntry::decode`] give its bytes, [`crate::Wal`] keeps it on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalEntry {
    /// The height the entry belongs to.
    pub height: Height,
    /// The logged input (opaque to the host: see [`WalEntry::kind`]).
    pub(crate) input: Input<SteleContext>,
}

/// What the host must do, in the order returned.
#[derive(Clone, Debug)]
pub enum Action {
    /// Make the entry durable before acting on any later action.
    PersistWal(WalEntry),
    /// Send to every other validator.
    Broadcast(Message),
    /// Feed `Event::TimeoutElapsed(height, timeout)` after `after`, replacing
    /// any pending timer for the same `(height, timeout)`.
    ScheduleTimeout {
        /// The height the timer belongs to.
        height: Height,
        /// The timeout.
        timeout: Timeout,
        /// How long from now.
        after: Duration,
    },
    /// Cancel the timer for `(height, timeout)`.
    CancelTimeout {
        /// The height the timer belongs to.
        height: Height,
        /// The timeout.
        timeout: Timeout,
    },
    /// Cancel every pending timer.
    CancelAllTimeouts,
    /// This node proposes at `(height, round)`: answer with
    /// `Event::ValueToPropose` before the propose timeout.
    GetValue {
        /// The height to propose for.
        height: Height,
        /// The round to propose in.
        round: Round,
    },
    /// `value` is decided at `height`; commit it with its certificate.
    Decided {
        /// The decided height.
        height: Height,
        /// The decided value.
        value: Value,
        /// Precommit signatures of > 2/3 of the voting power.
        certificate: CommitCertificate<SteleContext>,
    },
}

/// Counters of what the node refused or could not do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BftStats {
    /// Distinct proposed values the validity hook refused.
    pub refused_proposals: u64,
    /// Messages dropped before the core: bad signature, wrong proposer, too
    /// far ahead, over a cap.
    pub dropped_messages: u64,
    /// Synced values whose certificate or bytes did not check out.
    pub rejected_syncs: u64,
    /// Inputs the core stopped on with an error (none expected).
    pub core_errors: u64,
}

/// The node's identity and the validators it works with.
#[derive(Clone, Debug)]
pub struct BftConfig {
    /// This validator's id.
    pub id: ValidatorId,
    /// This validator's key (its public half must be its key in the set).
    pub signing_key: SigningKey,
    /// The validators (one set for every height at this stage).
    pub validators: ValidatorSet,
    /// Round timeouts.
    pub timeouts: LinearTimeouts,
}

/// One validator's consensus: Malachite's state, its key and its validity hook.
pub struct BftNode {
    state: State<SteleContext>,
    config: BftConfig,
    validity: Box<dyn Validity + Send>,
    started: bool,
    /// While true, `WalAppend` is a no-op (the entry is already in the log).
    replaying: bool,
    /// The values this node proposed at the current height, by round: a
    /// restarted proposer re-proposes the same value, never another.
    proposed: BTreeMap<Round, Value>,
    /// Verdicts of the validity hook at the current height.
    verdicts: BTreeMap<ValueId, bool>,
    /// Distinct values checked per round at the current height.
    checked_per_round: BTreeMap<Round, usize>,
    /// Proposals for later heights, checked when the node gets there.
    future_proposals: BTreeMap<Height, Vec<SignedProposal>>,
    stats: BftStats,
}

impl BftNode {
    /// A node that will start at `height` (the last committed height + 1) on
    /// [`Event::Start`]. Refuses an id outside the set or a key that is not the
    /// id's key.
    pub fn new(
        config: BftConfig,
        validity: Box<dyn Validity + Send>,
        height: Height,
    ) -> Result<Self, BftError> {
        let validator = config
            .validators
            .get(config.id)
            .ok_or(BftError::NotAValidator(config.id))?;
        if validator.public_key != config.signing_key.verifying_key() {
            return Err(BftError::KeyMismatch(config.id));
        }
        let params = Params {
            address: config.id,
            threshold_params: ThresholdParams::default(),
            // The value travels in the signed proposal; see `admit_proposal`
            // for why the node checks it before the core sees it.
            value_payload: ValuePayload::ProposalOnly,
            enabled: true,
        };
        let state = State::new(
            SteleContext,
            height,
            config.validators.clone(),
            params,
            // Bounds of the core's buffer of inputs for future heights.
            1000,
            1000,
        );
        Ok(BftNode {
            state,
            config,
            validity,
            started: false,
            replaying: false,
            proposed: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            checked_per_round: BTreeMap::new(),
            future_proposals: BTreeMap::new(),
            stats: BftStats::default(),
        })
    }

    /// A node restarted at `height` (the last committed height + 1) from its
    /// write-ahead log, already started. Entries of other heights are ignored.
    ///
    /// Follows Malachite's engine: start the height, index this node's own
    /// signed votes and proposals in the log, replay every entry (re-deriving a
    /// vote reuses the logged signature; `WalAppend` is a no-op), then drop the
    /// index. A re-derived message that differs from the logged one is
    /// [`BftError::ReplayDivergence`]: the node must not run, since it would
    /// sign a conflicting vote. The returned actions re-send the logged votes
    /// and re-arm timers.
    pub fn recover(
        config: BftConfig,
        validity: Box<dyn Validity + Send>,
        height: Height,
        wal: &[WalEntry],
    ) -> Result<(Self, Vec<Action>), BftError> {
        let mut node = BftNode::new(config, validity, height)?;
        let entries: Vec<Input<SteleContext>> = wal
            .iter()
            .filter(|entry| entry.height == height)
            .map(|entry| entry.input.clone())
            .collect();
        // Known before the height starts, so the GetValue of round 0 is
        // answered with the logged value (see `on_effect`).
        for input in &entries {
            if let Input::ProposedValue(value, ValueOrigin::Consensus) = input {
                if value.proposer == node.config.id {
                    node.proposed.insert(value.round, value.value.clone());
                }
            }
        }
        let mut actions = Vec::new();
        node.started = true;
        node.run(node.start_height_input(height), &mut actions)?;
        node.state.index_wal_entries(entries.iter());
        node.replaying = true;
        let replayed = entries
            .into_iter()
            .try_for_each(|input| node.run(input, &mut actions));
        node.state.reset_entries_index();
        node.replaying = false;
        replayed?;
        Ok((node, actions))
    }

    /// Handles one event; returns the actions to carry out, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        let input = match event {
            Event::Start if !self.started => {
                self.started = true;
                Some(self.start_height_input(self.state.height()))
            }
            Event::Start => None,
            Event::Message(_from, message) => self.on_message(message),
            Event::TimeoutElapsed(height, timeout) => {
                // Malachite's timeouts carry a round, not a height: one left
                // over from an earlier height must not fire in this one.
                (height == self.state.height()).then_some(Input::TimeoutElapsed(timeout))
            }
            Event::ValueToPropose(height, round, bytes) => {
                (height == self.state.height()).then(|| {
                    // Re-propose what this node already proposed in the round.
                    let value = self
                        .proposed
                        .entry(round)
                        .or_insert_with(|| Value::new(bytes));
                    Input::Propose(LocallyProposedValue::new(height, round, value.clone()))
                })
            }
            Event::Synced { value, certificate } => {
                let certificate = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
                    certificate,
                    Default::default(),
                );
                // The sender is not known to the core; an identity peer id.
                let peer = PeerId::from_bytes(&[0, 1, 0]).expect("an identity multihash");
                Some(Input::SyncValueResponse(ValueResponse::new(
                    peer,
                    value.into(),
                    certificate,
                )))
            }
        };
        if let Some(input) = input {
            // Only a replay can diverge; live inputs' errors are counted.
            let _ = self.run(input, &mut actions);
        }
        actions
    }

    /// The height being decided.
    pub fn height(&self) -> Height {
        self.state.height()
    }

    /// The round being run at the current height.
    pub fn round(&self) -> Round {
        self.state.round()
    }

    /// This validator's id.
    pub fn id(&self) -> ValidatorId {
        self.config.id
    }

    /// What the node refused so far.
    pub fn stats(&self) -> BftStats {
        self.stats
    }

    fn start_height_input(&self, height: Height) -> Input<SteleContext> {
        // No target time: Malachite then reads no clock (it decides and
        // finalizes in one step), which keeps a simulation deterministic.
        Input::StartHeight(
            height,
            self.config.validators.clone(),
            false,
            None,
            VoteExtensionPolicy::Disabled,
        )
    }

    fn on_message(&mut self, message: Message) -> Option<Input<SteleContext>> {
        match message {
            Message::Proposal(proposal) => self.admit_proposal(proposal),
            Message::Vote(vote) => Some(Input::Vote(vote)),
            Message::PolkaCertificate(certificate) => Some(Input::PolkaCertificate(certificate)),
            Message::RoundCertificate(certificate) => Some(Input::RoundCertificate(certificate)),
        }
    }

    /// Checks a proposal before the core sees it. In `ProposalOnly` mode the
    /// core marks a received value valid without asking, and a valid value
    /// never becomes invalid, so the validity hook must run first; a refused
    /// value is never fed, and the node prevotes nil when its propose timeout
    /// fires. The cheap checks (proposer, signature, caps) come before the
    /// hook, which re-executes a batch.
    fn admit_proposal(&mut self, proposal: SignedProposal) -> Option<Input<SteleContext>> {
        let height = self.state.height();
        if proposal.height < height {
            return None;
        }
        if proposal.height > height {
            let slot = self.future_proposals.entry(proposal.height).or_default();
            if proposal.height.0 - height.0 <= FUTURE_HEIGHTS_MAX
                && slot.len() < FUTURE_PROPOSALS_PER_HEIGHT_MAX
            {
                slot.push(proposal);
            } else {
                self.stats.dropped_messages += 1;
            }
            return None;
        }
        let validators = &self.config.validators;
        let genuine = proposal.round.is_defined()
            && select_proposer(validators, height, proposal.round).id == proposal.proposer
            && validators.get(proposal.proposer).is_some_and(|proposer| {
                verify_proposal(&proposal.message, &proposal.signature, &proposer.public_key)
            });
        if !genuine {
            self.stats.dropped_messages += 1;
            return None;
        }
        let value_id = proposal.value.id();
        let valid = match self.verdicts.get(&value_id) {
            Some(valid) => *valid,
            None => {
                let checked = self.checked_per_round.entry(proposal.round).or_default();
                if *checked >= VALUES_CHECKED_PER_ROUND_MAX {
                    self.stats.dropped_messages += 1;
                    return None;
                }
                *checked += 1;
                let valid = self.validity.is_valid(height, &proposal.value);
                self.verdicts.insert(value_id, valid);
                if !valid {
                    self.stats.refused_proposals += 1;
                }
                valid
            }
        };
        valid.then_some(Input::Proposal(proposal))
    }

    /// Feeds `input` and every input it leads to (the next height, a synced
    /// value, proposals buffered for the new height).
    fn run(
        &mut self,
        input: Input<SteleContext>,
        actions: &mut Vec<Action>,
    ) -> Result<(), BftError> {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let height_before = self.state.height();
            self.feed(input, actions, &mut queue)?;
            if self.state.height() != height_before {
                self.on_new_height(&mut queue);
            }
        }
        Ok(())
    }

    fn on_new_height(&mut self, queue: &mut VecDeque<Input<SteleContext>>) {
        let height = self.state.height();
        self.proposed.clear();
        self.verdicts.clear();
        self.checked_per_round.clear();
        self.future_proposals = self.future_proposals.split_off(&height);
        if let Some(proposals) = self.future_proposals.remove(&height) {
            for proposal in proposals {
                queue.extend(self.admit_proposal(proposal));
            }
        }
    }

    /// One `process!` call: answers each effect of the core, appending actions
    /// and queueing follow-up inputs.
    fn feed(
        &mut self,
        input: Input<SteleContext>,
        actions: &mut Vec<Action>,
        queue: &mut VecDeque<Input<SteleContext>>,
    ) -> Result<(), BftError> {
        // Effects of one call belong to one height: the target of a
        // StartHeight, or the current one (Finalize queues the next height).
        let height = match &input {
            Input::StartHeight(height, ..) => *height,
            _ => self.state.height(),
        };
        let mut decided: Option<(usize, CommitCertificate<SteleContext>)> = None;
        let mut context = crate::effects::EffectContext {
            height,
            config: &self.config,
            replaying: self.replaying,
            proposed: &mut self.proposed,
            stats: &mut self.stats,
            actions,
            queue,
            decided: &mut decided,
        };
        let state = &mut self.state;
        let result: Result<(), CoreError<SteleContext>> = process!(
            input: input,
            state: state,
            metrics: &(),
            with: effect => context.on_effect(effect)
        );
        if let Some((index, certificate)) = decided {
            // The core keeps the decided value until the next height starts.
            let value = self
                .state
                .decided_value()
                .map(|(_, value)| value)
                .filter(|value| value.id() == certificate.value_id)
                .expect("the core decides only values it holds, with the certificate's id");
            actions.insert(
                index,
                Action::Decided {
                    height: certificate.height,
                    value,
                    certificate,
                },
            );
        }
        match result {
            Ok(()) => Ok(()),
            // Only a replay can diverge; the node must stop.
            Err(CoreError::ReplayDivergence(kind, height, round)) => {
                self.stats.core_errors += 1;
                Err(BftError::ReplayDivergence {
                    height,
                    detail: format!("{kind} of round {round}"),
                })
            }
            // The input is dropped; none is expected (the simulation checks).
            Err(_) => {
                self.stats.core_errors += 1;
                Ok(())
            }
        }
    }
}
