//! What the `BftNode` tests share: four equal validators with fixed keys.

use ed25519_dalek::SigningKey;
use stele_bft::{BftConfig, LinearTimeouts, Validator, ValidatorId, ValidatorSet};

/// The four validators' keys (validator `i + 1` holds `keys()[i]`).
pub fn keys() -> Vec<SigningKey> {
    (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect()
}

/// The validators of `keys`, power 1 each.
pub fn validators(keys: &[SigningKey]) -> ValidatorSet {
    ValidatorSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, key)| Validator {
                id: ValidatorId(i as u64 + 1),
                public_key: key.verifying_key(),
                power: 1,
            })
            .collect(),
    )
    .expect("four validators")
}

/// Node index `node`'s configuration, parking between heights if `park`.
pub fn config(keys: &[SigningKey], node: usize, park: bool) -> BftConfig {
    BftConfig {
        id: ValidatorId(node as u64 + 1),
        signing_key: keys[node].clone(),
        validators: validators(keys),
        timeouts: LinearTimeouts::default(),
        park_between_heights: park,
    }
}
