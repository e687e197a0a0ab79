//! Stele's Malachite [`Context`](types::Context): the types the Tendermint core is generic over.
//!
//! A height is one batch; a value is the batch's bytes, identified by their
//! SHA-256 ([`ValueId`]). Votes carry no extension (`Extension = ()`), and the
//! sign-bytes of a vote never include one (see [`crate::signing`]), because
//! Malachite rebuilds precommits without extensions to check certificates.

use std::fmt;

use arc_malachitebft_core_types as types;
use arc_malachitebft_core_types::{
    LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use sha2::{Digest, Sha256};

use crate::signing::Ed25519;
use crate::validators::{select_proposer, Validator, ValidatorSet};

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

/// The id of a value: the SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub [u8; 32]);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueId({self})")
    }
}

/// A proposed batch: opaque bytes at this stage, and their id.
///
/// Invariant: `id == SHA-256(bytes)`; the fields are private so that the only
/// way to build one is [`Value::new`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value {
    id: ValueId,
    bytes: Vec<u8>,
}

impl Value {
    /// A value holding `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        let id = ValueId(Sha256::digest(&bytes).into());
        Value { id, bytes }
    }

    /// The value's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value's id (SHA-256 of the bytes).
    pub fn id(&self) -> ValueId {
        self.id
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A batch can be large: show its id and size, not its bytes.
        write!(f, "Value({}, {} bytes)", self.id, self.bytes.len())
    }
}

impl types::Value for Value {
    type Id = ValueId;

    fn id(&self) -> ValueId {
        self.id
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

/// Stele's context for Malachite: stateless, so every node builds the same.
#[derive(Clone, Copy, Debug, Default)]
pub struct SteleContext;

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

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        select_proposer(validator_set, height, round)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_id_is_the_sha256_of_its_bytes() {
        let value = Value::new(b"abc".to_vec());
        assert_eq!(
            value.id().to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(value.id(), Value::new(b"abd".to_vec()).id());
    }
}
