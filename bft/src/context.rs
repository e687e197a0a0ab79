//! Stele's Malachite [`Context`](types::Context): the types the Tendermint core is generic over.
//!
//! A height is one batch; a value is the batch's checkpoint body and payload
//! ([`Value`], in [`crate::value`]). Votes carry no extension (`Extension =
//! ()`), and the sign-bytes of a vote never include one (see
//! [`crate::signing`]), because Malachite rebuilds precommits without
//! extensions to check certificates.
//!
//! The context is not stateless: it holds the view base of the height the
//! core runs (see [`crate::validators::select_proposer`]), shared with the
//! [`crate::BftNode`] that sets it before each height starts, because
//! Malachite asks the context for a proposer with only a height and a round.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_malachitebft_core_types as types;
use arc_malachitebft_core_types::{
    LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};

use crate::signing::Ed25519;
use crate::validators::{round_view, select_proposer, Validator, ValidatorSet};
pub use crate::value::{Value, ValueId};

/// A validator's id, its address in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorId(pub u64);

impl fmt::Display for ValidatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl types::Address for ValidatorId {}

/// A consensus height: one batch. The first is 1 ([`Height::INITIAL`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl Height {
    /// The first height a cluster decides.
    pub const INITIAL: Height = Height(1);

    /// The height after this one.
    pub fn next(self) -> Height {
        Height(
            self.0
                .checked_add(1)
                .expect("heights stay far below u64::MAX"),
        )
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl types::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

impl types::Value for Value {
    type Id = ValueId;

    fn id(&self) -> ValueId {
        Value::id(self)
    }
}

/// A proposal: the proposer's value for a height and round. `pol_round` is the
/// round of the polka (> 2/3 prevotes) that locked the value, or nil.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The height proposed for.
    pub height: Height,
    /// The round proposed in.
    pub round: Round,
    /// The proposed batch.
    pub value: Value,
    /// The proof-of-lock round, or `Round::Nil`.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: ValidatorId,
}

impl types::Proposal<SteleContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &ValidatorId {
        &self.proposer
    }
}

/// Proposal parts are not used: Stele runs Malachite in `ProposalOnly` mode,
/// so the value travels inside the signed proposal and the core never sees a part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoParts;

impl types::ProposalPart<SteleContext> for NoParts {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A prevote or precommit for a value id (or nil) at a height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The height voted at.
    pub height: Height,
    /// The round voted in.
    pub round: Round,
    /// The value voted for, or nil.
    pub value_id: NilOrVal<ValueId>,
    /// The voter.
    pub validator: ValidatorId,
    /// Unused (extensions are disabled) and never signed; present because
    /// Malachite's `Vote` trait carries one.
    pub extension: Option<SignedExtension<SteleContext>>,
}

impl types::Vote<SteleContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value_id
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value_id
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &ValidatorId {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<SteleContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<SteleContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<SteleContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// Stele's context for Malachite: the view base of the height the core runs
/// (a round's view is [`round_view`]`(height, view_base, round)`, whose owner
/// proposes).
///
/// Clones share the base. Only the node that owns the core sets it, right
/// before the core starts a height, and the core asks for proposers of that
/// height only; so every node that agrees on the base agrees on proposers.
#[derive(Clone, Debug, Default)]
pub struct SteleContext {
    view_base: Arc<AtomicU64>,
}

impl SteleContext {
    /// A context whose current height has view base `view_base`.
    pub fn new(view_base: u64) -> SteleContext {
        SteleContext {
            view_base: Arc::new(AtomicU64::new(view_base)),
        }
    }

    /// The view base of the height the core runs.
    pub fn view_base(&self) -> u64 {
        // One thread drives a node: no ordering with other memory is needed.
        self.view_base.load(Ordering::Relaxed)
    }

    /// Sets the view base (before the core starts the height it belongs to).
    pub(crate) fn set_view_base(&self, view_base: u64) {
        self.view_base.store(view_base, Ordering::Relaxed);
    }
}

impl types::Context for SteleContext {
    type Address = ValidatorId;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = Value;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    /// The owner of the round's view. The core only asks about the height it
    /// runs, whose base the node set.
    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        select_proposer(validator_set, round_view(height, self.view_base(), round))
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Value,
        pol_round: Round,
        address: ValidatorId,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: ValidatorId,
    ) -> Vote {
        new_vote(VoteType::Prevote, height, round, value_id, address)
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: ValidatorId,
    ) -> Vote {
        new_vote(VoteType::Precommit, height, round, value_id, address)
    }
}

/// A vote without extension.
pub fn new_vote(
    vote_type: VoteType,
    height: Height,
    round: Round,
    value_id: NilOrVal<ValueId>,
    validator: ValidatorId,
) -> Vote {
    Vote {
        vote_type,
        height,
        round,
        value_id,
        validator,
        extension: None,
    }
}

/// Voting power, as Malachite counts it.
pub type Power = VotingPower;
