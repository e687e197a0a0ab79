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
//!
//! Views: the node's height has a view base ([`BftNode::view_base`]); round r
//! runs in view `base + r` (from round [`crate::STICKY_ROUNDS`] on, in a view
//! of the height and round only: see [`crate::validators`]), whose owner
//! proposes ([`crate::select_proposer`]); a height decided in view v gives the
//! next height base v, so the proposer only changes with a round change. The
//! base is shared with the [`SteleContext`] (Malachite asks it for
//! proposers) and set right before the core starts a height. A synced
//! decision is accepted in the view its signers give it, and adopted.
//!
//! Parking ([`BftConfig::park_between_heights`]): after a decision the node
//! does not start the next height by itself ([`BftNode::parked`]). It starts
//! it on [`Event::Start`], on a message of that height or a later one whose
//! signatures check out (fed next, as any message; the core buffers votes of
//! heights it has not started, and the node proposals of later heights), or
//! on a checked [`Event::Synced`] of that height. Nothing is scheduled while
//! parked: parking cancels every timer.

use std::collections::{BTreeMap, VecDeque};

use arc_malachitebft_core_consensus::{
    process, Error as CoreError, Input, LocallyProposedValue, Params, PeerId, State,
    ThresholdParams, ValuePayload,
};
use arc_malachitebft_core_types::{
    CommitCertificate, ExtendedCommitCertificate, NilOrVal, Round, ValueOrigin, ValueResponse,
    VoteExtensionPolicy, VoteType,
};

use crate::context::{Height, SteleContext, ValidatorId, Value, ValueId};
use crate::effects::{EffectContext, Outcome};
use crate::error::BftError;
pub use crate::events::{Action, BftConfig, BftStats, Event, Message, WalEntry};
use crate::signing::{
    check_polka_certificate, check_round_certificate, verify_certificate, verify_proposal,
    verify_vote, SignedProposal,
};
use crate::validators::{round_view, select_proposer};
use crate::validity::Validity;

/// Heights ahead of the current one whose proposals are kept for later.
pub const FUTURE_HEIGHTS_MAX: u64 = 4;
/// Proposals kept per future height.
pub const FUTURE_PROPOSALS_PER_HEIGHT_MAX: usize = 16;
/// Distinct values checked per round (Malachite stores at most 2 per round;
/// more from one proposer is equivocation, and re-execution is expensive).
pub const VALUES_CHECKED_PER_ROUND_MAX: usize = 2;
/// Bounds of the core's buffer of inputs for heights it has not started:
/// heights kept, and inputs kept per height.
pub const BUFFERED_HEIGHTS_MAX: usize = 1000;
/// See [`BUFFERED_HEIGHTS_MAX`].
pub const BUFFERED_INPUTS_PER_HEIGHT_MAX: usize = 1000;

/// One validator's consensus: Malachite's state, its key and its validity hook.
pub struct BftNode {
    state: State<SteleContext>,
    /// The view base of the height the core runs, shared with the core.
    context: SteleContext,
    config: BftConfig,
    validity: Box<dyn Validity + Send>,
    /// The node's height: the one the core runs, or the next one (parked, or
    /// not started yet).
    height: Height,
    /// The view base of `height`.
    view_base: u64,
    /// Whether the core runs `height`.
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
    /// The synced certificate being fed and its view (during one `handle`).
    synced: Option<(CommitCertificate<SteleContext>, u64)>,
    stats: BftStats,
}

impl BftNode {
    /// A node that will start at `height` (the last committed height + 1),
    /// whose view base is `view_base` (the view the last committed height was
    /// decided in; 0 for a new cluster), on [`Event::Start`] (or, parking, as
    /// [`Event`] says). Refuses an id outside the set or a key that is not the
    /// id's key.
    pub fn new(
        config: BftConfig,
        validity: Box<dyn Validity + Send>,
        height: Height,
        view_base: u64,
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
        let context = SteleContext::new(view_base);
        let state = State::new(
            context.clone(),
            height,
            config.validators.clone(),
            params,
            BUFFERED_HEIGHTS_MAX,
            BUFFERED_INPUTS_PER_HEIGHT_MAX,
        );
        Ok(BftNode {
            state,
            context,
            config,
            validity,
            height,
            view_base,
            started: false,
            replaying: false,
            proposed: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            checked_per_round: BTreeMap::new(),
            future_proposals: BTreeMap::new(),
            synced: None,
            stats: BftStats::default(),
        })
    }

    /// A node restarted at `height` (the last committed height + 1, whose
    /// view base is `view_base`) from its write-ahead log, already started,
    /// parking or not (if the replayed entries decide the height, the returned
    /// actions hold its `Decided`, and a parking node is parked at the next).
    /// Entries of other heights are ignored.
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
        view_base: u64,
        wal: &[WalEntry],
    ) -> Result<(Self, Vec<Action>), BftError> {
        let mut node = BftNode::new(config, validity, height, view_base)?;
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
        let start = node.start_input();
        node.run(start, &mut actions)?;
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
            Event::Start => (!self.started).then(|| self.start_input()),
            Event::Message(_from, message) => self.on_message(message, &mut actions),
            Event::TimeoutElapsed(height, timeout) => {
                // Malachite's timeouts carry a round, not a height: one left
                // over from an earlier height must not fire in this one.
                (self.started && height == self.height).then_some(Input::TimeoutElapsed(timeout))
            }
            Event::ValueToPropose(height, round, value) => {
                (self.started && height == self.height).then(|| {
                    // Re-propose what this node already proposed in the round.
                    let value = self.proposed.entry(round).or_insert(value);
                    Input::Propose(LocallyProposedValue::new(height, round, value.clone()))
                })
            }
            Event::Synced {
                value,
                certificate,
                view,
            } => self.on_synced(value, certificate, view, &mut actions),
        };
        if let Some(input) = input {
            // Only a replay can diverge; live inputs' errors are counted.
            let _ = self.run(input, &mut actions);
        }
        self.synced = None;
        actions
    }

    /// The node's height: the one being decided, or, parked or not started
    /// yet, the one it will start.
    pub fn height(&self) -> Height {
        self.height
    }

    /// The round being run at the node's height (`Round::Nil` when the
    /// height is not started).
    pub fn round(&self) -> Round {
        if self.started {
            self.state.round()
        } else {
            Round::Nil
        }
    }

    /// The view base of the node's height.
    pub fn view_base(&self) -> u64 {
        self.view_base
    }

    /// The current view: [`round_view`] of the current round (the base when
    /// the height is not started).
    pub fn view(&self) -> u64 {
        round_view(self.height, self.view_base, self.round())
    }

    /// The proposer of the current view: of the current height and round, or,
    /// parked or not started, of the node's height's round 0.
    pub fn proposer(&self) -> ValidatorId {
        select_proposer(&self.config.validators, self.view()).id
    }

    /// Whether the node waits, between heights, for a reason to start its
    /// height (see [`BftConfig::park_between_heights`]).
    pub fn parked(&self) -> bool {
        !self.started && self.config.park_between_heights
    }

    /// This validator's id.
    pub fn id(&self) -> ValidatorId {
        self.config.id
    }

    /// What the node refused so far.
    pub fn stats(&self) -> BftStats {
        self.stats
    }

    /// The input that starts the node's height (the base is handed to the
    /// core when it is fed: see `feed`).
    fn start_input(&mut self) -> Input<SteleContext> {
        self.started = true;
        // No target time: Malachite then reads no clock (it decides and
        // finalizes in one step), which keeps a simulation deterministic.
        Input::StartHeight(
            self.height,
            self.config.validators.clone(),
            false,
            None,
            VoteExtensionPolicy::Disabled,
        )
    }

    fn on_message(
        &mut self,
        message: Message,
        actions: &mut Vec<Action>,
    ) -> Option<Input<SteleContext>> {
        if self.parked() {
            if message.height() < self.height {
                return None;
            }
            if !self.authentic(&message) {
                self.stats.dropped_messages += 1;
                return None;
            }
            let start = self.start_input();
            let _ = self.run(start, actions);
        }
        match message {
            Message::Proposal(proposal) => self.admit_proposal(proposal),
            Message::Vote(vote) => Some(Input::Vote(vote)),
            Message::PolkaCertificate(certificate) => Some(Input::PolkaCertificate(certificate)),
            Message::RoundCertificate(certificate) => Some(Input::RoundCertificate(certificate)),
        }
    }

    /// Whether a message that would start a parked height is signed by
    /// validators of the set. A proposal or a precommit for a value (alone or
    /// in a round certificate) of a later height than the node's cannot be
    /// checked (its view base is not known yet) and does not count.
    fn authentic(&self, message: &Message) -> bool {
        let validators = &self.config.validators;
        let known_base = (message.height() == self.height).then_some(self.view_base);
        let thresholds = ThresholdParams::default();
        match message {
            Message::Proposal(proposal) => {
                let key = validators.get(proposal.proposer).map(|v| &v.public_key);
                matches!((known_base, key), (Some(base), Some(key))
                    if verify_proposal(&proposal.message, &proposal.signature, key, base))
            }
            Message::Vote(vote) => {
                let value_precommit = vote.vote_type == VoteType::Precommit
                    && matches!(vote.value_id, NilOrVal::Val(_));
                let base = if value_precommit { known_base } else { Some(0) };
                let key = validators.get(vote.validator).map(|v| &v.public_key);
                matches!((base, key), (Some(base), Some(key))
                    if verify_vote(&vote.message, &vote.signature, key, base))
            }
            Message::PolkaCertificate(certificate) => {
                check_polka_certificate(certificate, validators, thresholds.quorum).is_ok()
            }
            Message::RoundCertificate(certificate) => known_base.is_some_and(|base| {
                check_round_certificate(certificate, validators, thresholds, base).is_ok()
            }),
        }
    }

    /// Checks a synced decision of the node's height before the core sees it:
    /// the value is the certificate's, and the certificate's signatures verify
    /// in `view`, which the node adopts even when it is not its own view of
    /// the round (its base diverged: the signers, > 2/3 of the power, vouch
    /// for theirs). A decision of another height is ignored.
    fn on_synced(
        &mut self,
        value: Value,
        certificate: CommitCertificate<SteleContext>,
        view: u64,
        actions: &mut Vec<Action>,
    ) -> Option<Input<SteleContext>> {
        if certificate.height != self.height {
            // Late or early answers are common and harmless.
            return None;
        }
        let id = value.id();
        if verify_certificate(&certificate, &id, &self.config.validators, view).is_err() {
            self.stats.rejected_syncs += 1;
            return None;
        }
        if view != round_view(self.height, self.view_base, certificate.round) {
            self.stats.synced_other_views += 1;
        }
        if self.parked() {
            let start = self.start_input();
            let _ = self.run(start, actions);
        }
        let extended = ExtendedCommitCertificate::from_commit_certificate_and_extensions(
            certificate.clone(),
            Default::default(),
        );
        self.synced = Some((certificate, view));
        // The sender is not known to the core; an identity peer id.
        let peer = PeerId::from_bytes(&[0, 1, 0]).expect("an identity multihash");
        Some(Input::SyncValueResponse(ValueResponse::new(
            peer,
            value.to_bytes().into(),
            extended,
        )))
    }

    /// Checks a proposal before the core sees it. In `ProposalOnly` mode the
    /// core marks a received value valid without asking, and a valid value
    /// never becomes invalid, so the validity hook must run first; a refused
    /// value is never fed, and the node prevotes nil when its propose timeout
    /// fires. The cheap checks (proposer, signature, caps) come before the
    /// hook, which re-executes a batch.
    fn admit_proposal(&mut self, proposal: SignedProposal) -> Option<Input<SteleContext>> {
        let height = self.height;
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
        let base = self.view_base;
        let view = round_view(height, base, proposal.round);
        let genuine = proposal.round.is_defined()
            && select_proposer(validators, view).id == proposal.proposer
            && validators.get(proposal.proposer).is_some_and(|proposer| {
                verify_proposal(
                    &proposal.message,
                    &proposal.signature,
                    &proposer.public_key,
                    base,
                )
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

    /// The height ended (decided in `view`): start the next one, or park.
    fn on_finalized(
        &mut self,
        decided: Height,
        view: u64,
        actions: &mut Vec<Action>,
        queue: &mut VecDeque<Input<SteleContext>>,
    ) {
        self.height = decided.next();
        self.view_base = view;
        self.started = false;
        // The decided height's values must not answer the next height's
        // GetValue (which runs inside the StartHeight call, before
        // `on_new_height`).
        self.proposed.clear();
        self.verdicts.clear();
        self.checked_per_round.clear();
        if self.config.park_between_heights {
            actions.push(Action::CancelAllTimeouts);
        } else {
            queue.push_back(self.start_input());
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
        // StartHeight (whose base the core must see from now on), or the
        // current one.
        let height = match &input {
            Input::StartHeight(height, ..) => {
                self.context.set_view_base(self.view_base);
                *height
            }
            _ => self.state.height(),
        };
        let mut outcome = Outcome::default();
        let mut context = EffectContext {
            height,
            view_base: self.context.view_base(),
            config: &self.config,
            replaying: self.replaying,
            synced: self.synced.as_ref(),
            proposed: &mut self.proposed,
            stats: &mut self.stats,
            actions,
            queue,
            outcome: &mut outcome,
        };
        let state = &mut self.state;
        let result: Result<(), CoreError<SteleContext>> = process!(
            input: input,
            state: state,
            metrics: &(),
            with: effect => context.on_effect(effect)
        );
        if let Some((index, certificate, view)) = outcome.decided {
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
                    view,
                },
            );
        }
        if let Some((decided, view)) = outcome.finalized {
            self.on_finalized(decided, view, actions, queue);
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
