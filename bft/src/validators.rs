//! Validators, the validator set and proposer selection.
//!
//! Invariants of a [`ValidatorSet`]: not empty, sorted by id, ids distinct,
//! every power > 0, total power <= `u64::MAX / 3` (Malachite multiplies powers
//! by 3 and panics on overflow). Every node must build the same set, since
//! proposer selection reads validators by index.

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
    /// zero powers and a total power above `u64::MAX / 3`.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, BftError> {
        if validators.is_empty() {
            return Err(BftError::EmptyValidatorSet);
        }
        validators.sort_by_key(|validator| validator.id);
        let mut starts = Vec::with_capacity(validators.len());
        let mut total_power: Power = 0;
        for (index, validator) in validators.iter().enumerate() {
            if index > 0 && validators[index - 1].id == validator.id {
                return Err(BftError::DuplicateValidator(validator.id));
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

/// The proposer of `(height, round)`: a pure function of the set, the height
/// and the round, weighted by voting power.
///
/// Position `p = (height - 1) + round` maps to slot `p * stride mod total`,
/// and the slot's owner proposes. As the stride is coprime with the total,
/// any `total_power` consecutive positions visit every slot exactly once: in
/// any window of `total_power` rounds each validator proposes exactly `power`
/// times, so a run of faulty proposers is at most their combined power long.
pub fn select_proposer(set: &ValidatorSet, height: Height, round: Round) -> &Validator {
    let position = u128::from(height.0.saturating_sub(1)) + u128::from(round.as_u32().unwrap_or(0));
    let slot = position * u128::from(set.stride) % u128::from(set.total_power);
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
        assert_eq!(
            ValidatorSet::new(vec![validator(1, u64::MAX / 3), validator(2, 1)]),
            Err(BftError::PowerOverflow)
        );
        let set = ValidatorSet::new(vec![validator(3, 1), validator(1, 2)]).expect("valid set");
        assert_eq!(set.validators()[0].id, ValidatorId(1));
        assert_eq!(set.total_power(), 3);
    }

    #[test]
    fn each_window_of_total_power_rounds_gives_each_validator_its_power_in_turns() {
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
            for (height, first_round) in [(1, 0), (5, 3), (1000, 17)] {
                let mut turns = vec![0u64; powers.len()];
                for round in first_round..first_round + set.total_power() {
                    let round = Round::new(u32::try_from(round).expect("small round"));
                    let proposer = select_proposer(&set, Height(height), round);
                    turns[usize::try_from(proposer.id.0 - 1).expect("small id")] += 1;
                }
                assert_eq!(turns, powers, "height {height}");
            }
        }
    }

    #[test]
    fn equal_powers_rotate_the_proposer_every_round() {
        let set =
            ValidatorSet::new((1..=4).map(|id| validator(id, 1)).collect()).expect("valid set");
        let proposers: Vec<u64> = (0..4)
            .map(|round| select_proposer(&set, Height(1), Round::new(round)).id.0)
            .collect();
        assert_eq!(proposers, vec![1, 4, 3, 2]);
    }
}
