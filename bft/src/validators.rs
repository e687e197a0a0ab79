//! Validators, the validator set and proposer selection by view.
//!
//! Invariants of a [`ValidatorSet`]: not empty, sorted by id, ids distinct,
//! public keys distinct (a precommit's note text does not name its signer, so
//! one key under two ids would count twice), every power > 0, total power <=
//! `u64::MAX / 3` (Malachite multiplies powers by 3 and panics on overflow).
//! Every node must build the same set, since proposer selection reads
//! validators by index.
//!
//! Views (pBFT's): a view is a position in the power-weighted proposer
//! schedule. Height h has a view base; its round r runs in view
//! [`round_view`]`(h, base, r) = base + r` for the first [`STICKY_ROUNDS`]
//! rounds; when h is decided in view v, the next height's base is v. While
//! heights decide in round 0 the proposer never changes; after a round change
//! the new proposer stays.
//!
//! Later rounds (r >= [`STICKY_ROUNDS`]) run in view `(h - 1) + r`, which does
//! not depend on the base. Honest nodes can decide a height in different
//! rounds (one sees round r's precommits, the others move on and decide in
//! round r' > r), so their bases for the next height can differ; a proposal
//! or a precommit for a value signs its view, so nodes of different bases
//! reject each other's, and if neither side holds > 2/3 of the power the
//! height would stall forever. From round [`STICKY_ROUNDS`] on they agree
//! again.

use std::collections::BTreeSet;

use arc_malachitebft_core_types as types;
use arc_malachitebft_core_types::Round;
use ed25519_dalek::VerifyingKey;

use crate::context::{Height, Power, SteleContext, ValidatorId};
use crate::error::BftError;

/// A validator: its id, its Ed25519 public key and its voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// The validator's id (address).
    pub id: ValidatorId,
    /// The key its votes and proposals verify with.
    pub public_key: VerifyingKey,
    /// Its voting power (> 0).
    pub power: Power,
}

impl types::Validator<SteleContext> for Validator {
    fn address(&self) -> &ValidatorId {
        &self.id
    }
    fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }
    fn voting_power(&self) -> Power {
        self.power
    }
}

/// The validators of a height, sorted by id, with the proposer schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    /// `starts[i]` is the sum of the powers of validators `0..i`: validator `i`
    /// owns the proposer slots `starts[i] .. starts[i] + power`.
    starts: Vec<Power>,
    total_power: Power,
    /// The step between consecutive positions' slots, coprime with the total
    /// power so that `total_power` consecutive positions visit every slot once.
    stride: Power,
}

impl ValidatorSet {
    /// A set of `validators` (any order); refuses an empty set, duplicate ids,
    /// duplicate public keys, zero powers and a total power above `u64::MAX / 3`.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, BftError> {
        if validators.is_empty() {
            return Err(BftError::EmptyValidatorSet);
        }
        validators.sort_by_key(|validator| validator.id);
        let mut starts = Vec::with_capacity(validators.len());
        let mut total_power: Power = 0;
        let mut keys = BTreeSet::new();
        for (index, validator) in validators.iter().enumerate() {
            if index > 0 && validators[index - 1].id == validator.id {
                return Err(BftError::DuplicateValidator(validator.id));
            }
            if !keys.insert(validator.public_key.to_bytes()) {
                return Err(BftError::DuplicateKey(validator.id));
            }
            if validator.power == 0 {
                return Err(BftError::ZeroPower(validator.id));
            }
            starts.push(total_power);
            total_power = total_power
                .checked_add(validator.power)
                .filter(|total| *total <= u64::MAX / 3)
                .ok_or(BftError::PowerOverflow)?;
        }
        Ok(ValidatorSet {
            validators,
            starts,
            total_power,
            stride: stride_for(total_power),
        })
    }

    /// The validators, sorted by id.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The validator with `id`, if any.
    pub fn get(&self, id: ValidatorId) -> Option<&Validator> {
        self.validators
            .binary_search_by_key(&id, |validator| validator.id)
            .ok()
            .map(|index| &self.validators[index])
    }

    /// The sum of all voting powers.
    pub fn total_power(&self) -> Power {
        self.total_power
    }

    /// Whether `power` is more than 2/3 of the total (Malachite's quorum).
    pub fn is_quorum(&self, power: Power) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power) * 2
    }
}

impl types::ValidatorSet<SteleContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> Power {
        self.total_power
    }
    fn get_by_address(&self, address: &ValidatorId) -> Option<&Validator> {
        self.get(*address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// The smallest stride >= 0.618 * total (a golden-ratio step spreads a
/// validator's slots over the schedule) that is coprime with the total.
fn stride_for(total_power: Power) -> Power {
    let start = u64::try_from(u128::from(total_power) * 618 / 1000)
        .expect("0.618 * a u64 fits a u64")
        .max(1);
    // Terminates: `total_power - 1` (or 1) is coprime with `total_power`, and
    // `start` never exceeds it for totals >= 2.
    (start..=total_power.max(1))
        .find(|candidate| gcd(*candidate, total_power) == 1)
        .unwrap_or(1)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Rounds of a height that run in views `view_base + round`; later rounds
/// run in views that depend only on the height and the round.
pub const STICKY_ROUNDS: u32 = 3;

/// The view of `round` at `height`, whose view base is `view_base`: `base +
/// round` for rounds below [`STICKY_ROUNDS`] (the nil round is round 0),
/// `(height - 1) + round` from then on (saturating).
pub fn round_view(height: Height, view_base: u64, round: Round) -> u64 {
    let round = round.as_u32().unwrap_or(0);
    if round < STICKY_ROUNDS {
        view_base.saturating_add(u64::from(round))
    } else {
        height.0.saturating_sub(1).saturating_add(u64::from(round))
    }
}

/// The proposer of `view`: a pure function of the set and the view, weighted
/// by voting power.
///
/// View `v` maps to slot `v * stride mod total`, and the slot's owner
/// proposes. As the stride is coprime with the total, any `total_power`
/// consecutive views visit every slot exactly once: in any window of
/// `total_power` views each validator proposes exactly `power` times, so a run
/// of faulty proposers is at most their combined power long.
pub fn select_proposer(set: &ValidatorSet, view: u64) -> &Validator {
    let slot = u128::from(view) * u128::from(set.stride) % u128::from(set.total_power);
    let slot = Power::try_from(slot).expect("a slot is below the total power, a u64");
    // The owner is the last validator whose first slot is <= slot.
    let index = set.starts.partition_point(|start| *start <= slot) - 1;
    &set.validators[index]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn validator(id: u64, power: Power) -> Validator {
        let key = SigningKey::from_bytes(&[u8::try_from(id).expect("small id"); 32]);
        Validator {
            id: ValidatorId(id),
            public_key: key.verifying_key(),
            power,
        }
    }

    #[test]
    fn sets_refuse_empty_duplicate_zero_and_overflowing_powers() {
        assert_eq!(ValidatorSet::new(vec![]), Err(BftError::EmptyValidatorSet));
        assert_eq!(
            ValidatorSet::new(vec![validator(1, 1), validator(1, 2)]),
            Err(BftError::DuplicateValidator(ValidatorId(1)))
        );
        assert_eq!(
            ValidatorSet::new(vec![validator(1, 0)]),
            Err(BftError::ZeroPower(ValidatorId(1)))
        );
        let mut twin = validator(2, 1);
        twin.public_key = validator(1, 1).public_key;
        assert_eq!(
            ValidatorSet::new(vec![validator(1, 1), twin]),
            Err(BftError::DuplicateKey(ValidatorId(2)))
        );
        assert_eq!(
            ValidatorSet::new(vec![validator(1, u64::MAX / 3), validator(2, 1)]),
            Err(BftError::PowerOverflow)
        );
        let set = ValidatorSet::new(vec![validator(3, 1), validator(1, 2)]).expect("valid set");
        assert_eq!(set.validators()[0].id, ValidatorId(1));
        assert_eq!(set.total_power(), 3);
    }

    #[test]
    fn each_window_of_total_power_views_gives_each_validator_its_power_in_turns() {
        for powers in [
            vec![1, 1, 1, 1],
            vec![3, 1, 2, 1],
            vec![5, 1, 1, 1, 2, 7, 1],
        ] {
            let set = ValidatorSet::new(
                powers
                    .iter()
                    .enumerate()
                    .map(|(index, power)| validator(index as u64 + 1, *power))
                    .collect(),
            )
            .expect("valid set");
            for first in [0, 3, 1000, u64::MAX - set.total_power()] {
                let mut turns = vec![0u64; powers.len()];
                for view in first..first + set.total_power() {
                    let proposer = select_proposer(&set, view);
                    turns[usize::try_from(proposer.id.0 - 1).expect("small id")] += 1;
                }
                assert_eq!(turns, powers, "views from {first}");
            }
        }
    }

    #[test]
    fn equal_powers_rotate_the_proposer_every_view() {
        let set =
            ValidatorSet::new((1..=4).map(|id| validator(id, 1)).collect()).expect("valid set");
        let proposers: Vec<u64> = (0..4)
            .map(|view| select_proposer(&set, view).id.0)
            .collect();
        assert_eq!(proposers, vec![1, 4, 3, 2]);
    }

    #[test]
    fn a_round_runs_in_the_view_base_plus_the_round_then_in_a_view_of_its_own() {
        let h = Height(10);
        assert_eq!(round_view(h, 7, Round::new(0)), 7);
        assert_eq!(round_view(h, 7, Round::new(2)), 9);
        assert_eq!(round_view(h, 7, Round::Nil), 7);
        assert_eq!(round_view(h, u64::MAX - 1, Round::new(2)), u64::MAX);
        // From STICKY_ROUNDS on, every base gives the same view.
        for base in [0, 7, 1_000, u64::MAX] {
            assert_eq!(round_view(h, base, Round::new(STICKY_ROUNDS)), 12);
            assert_eq!(
                round_view(h, base, Round::new(u32::MAX)),
                9 + u64::from(u32::MAX)
            );
        }
    }
}
