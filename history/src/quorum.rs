//! [`ValidatorQuorum`]: a C2SP signed note certified by validators with
//! voting powers (BFT mode). Each validator signs the note text with its own
//! Ed25519 key under the name [`validator_key_name`]`(origin, id)`; a note is
//! certified when the distinct validators whose signature line verifies hold
//! more than two thirds of the total power. Lines of other keys are ignored,
//! as C2SP requires; a line of a validator's key that does not verify is an
//! error, like a single-key [`NoteVerifier`].

use ed25519_dalek::{Signature, VerifyingKey};

use crate::note::{parse_signature_line, split_note, NoteVerifier};
use crate::HistoryError;

/// The note key name of validator `id` of the service `origin`.
pub fn validator_key_name(origin: &str, id: u64) -> String {
    format!("{origin}/v{id}")
}

/// The id of validator key name `name` of the service `origin`: the
/// inverse of [`validator_key_name`].
pub fn validator_id_of_key_name(origin: &str, name: &str) -> Option<u64> {
    name.strip_prefix(origin)?
        .strip_prefix("/v")
        .and_then(crate::checkpoint::parse_canonical_u64)
}

/// One validator: its id, its note verifier and its voting power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumMember {
    /// The validator's id.
    pub id: u64,
    /// Its key under [`validator_key_name`].
    pub verifier: NoteVerifier,
    /// Its voting power (> 0).
    pub power: u64,
}

/// The validators that certify a BFT service's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorQuorum {
    members: Vec<QuorumMember>,
    total_power: u64,
}

impl ValidatorQuorum {
    /// The set of `(id, key, power)` of the service `origin`. Refuses an empty
    /// set, a duplicate id, a zero power or a total above `u64::MAX / 3`.
    pub fn new(
        origin: &str,
        validators: impl IntoIterator<Item = (u64, VerifyingKey, u64)>,
    ) -> Result<Self, HistoryError> {
        let mut members: Vec<QuorumMember> = Vec::new();
        let mut total_power: u64 = 0;
        for (id, key, power) in validators {
            if power == 0 || members.iter().any(|member| member.id == id) {
                return Err(HistoryError::InvalidValidators(
                    "validators need distinct ids and positive powers",
                ));
            }
            total_power = total_power
                .checked_add(power)
                .filter(|total| *total <= u64::MAX / 3)
                .ok_or(HistoryError::InvalidValidators(
                    "the total power must be at most u64::MAX / 3",
                ))?;
            members.push(QuorumMember {
                id,
                verifier: NoteVerifier::new(&validator_key_name(origin, id), key)?,
                power,
            });
        }
        if members.is_empty() {
            return Err(HistoryError::InvalidValidators("no validators"));
        }
        members.sort_by_key(|member| member.id);
        Ok(ValidatorQuorum {
            members,
            total_power,
        })
    }

    /// The validators, by id.
    pub fn members(&self) -> &[QuorumMember] {
        &self.members
    }

    /// The total voting power.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// Whether `signed` power is more than two thirds of the total.
    pub fn is_quorum(&self, signed: u64) -> bool {
        u128::from(signed) * 3 > u128::from(self.total_power) * 2
    }

    /// Verifies `note` and returns its text and the ids of the validators
    /// whose signature verified (each once).
    pub fn verify_signers<'a>(&self, note: &'a str) -> Result<(&'a str, Vec<u64>), HistoryError> {
        let (text, lines) = split_note(note)?;
        let mut signers: Vec<u64> = Vec::new();
        let mut signed: u64 = 0;
        for line in lines {
            let (name, key_id, signature) = parse_signature_line(line)?;
            let Some(member) = self.members.iter().find(|member| {
                member.verifier.name() == name && member.verifier.key_id() == key_id
            }) else {
                continue;
            };
            let signature = Signature::from_slice(&signature)
                .map_err(|_| HistoryError::MalformedNote("an Ed25519 signature has 64 bytes"))?;
            member
                .verifier
                .key()
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| HistoryError::SignatureInvalid {
                    name: name.to_owned(),
                })?;
            if !signers.contains(&member.id) {
                signers.push(member.id);
                signed += member.power;
            }
        }
        if !self.is_quorum(signed) {
            return Err(HistoryError::QuorumNotReached {
                signed,
                total: self.total_power,
            });
        }
        signers.sort_unstable();
        Ok((text, signers))
    }

    /// Verifies `note` and returns its text.
    pub fn verify<'a>(&self, note: &'a str) -> Result<&'a str, HistoryError> {
        self.verify_signers(note).map(|(text, _)| text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "quorum.example/log";
    const TEXT: &str = "quorum.example/log\n3\nAAAA\n";

    fn key(id: u64) -> SigningKey {
        SigningKey::from_bytes(&[u8::try_from(id).unwrap(); 32])
    }

    fn signer(id: u64) -> NoteSigner {
        NoteSigner::new(&validator_key_name(ORIGIN, id), key(id)).unwrap()
    }

    /// The note text signed by each of `ids`, lines concatenated.
    fn note(ids: &[u64]) -> String {
        let mut note = format!("{TEXT}\n");
        for id in ids {
            let signed = signer(*id).sign(TEXT).unwrap();
            note.push_str(signed.rsplit_once("\n\n").unwrap().1);
        }
        note
    }

    fn quorum(powers: &[u64]) -> ValidatorQuorum {
        let validators = powers
            .iter()
            .enumerate()
            .map(|(index, power)| {
                let id = index as u64 + 1;
                (id, key(id).verifying_key(), *power)
            })
            .collect::<Vec<_>>();
        ValidatorQuorum::new(ORIGIN, validators).unwrap()
    }

    #[test]
    fn more_than_two_thirds_of_the_power_certifies() {
        let equal = quorum(&[1, 1, 1, 1]);
        assert_eq!(
            equal.verify_signers(&note(&[1, 2, 3])).unwrap().1,
            [1, 2, 3]
        );
        assert_eq!(
            equal.verify(&note(&[1, 2])),
            Err(HistoryError::QuorumNotReached {
                signed: 2,
                total: 4
            })
        );
        // A signer counted twice is counted once.
        assert!(equal.verify(&note(&[1, 2, 2])).is_err());
        // Weighted: validator 1 alone holds 3 of 4... not more than 2/3 of 5.
        let weighted = quorum(&[3, 1, 1]);
        assert!(weighted.verify(&note(&[1])).is_err());
        assert!(weighted.verify(&note(&[1, 2])).is_ok());
    }

    #[test]
    fn foreign_lines_are_ignored_and_bad_validator_lines_refused() {
        let set = quorum(&[1, 1, 1, 1]);
        let stranger = NoteSigner::new("elsewhere/v9", key(9)).unwrap();
        let mut with_stranger = note(&[1, 2, 3]);
        with_stranger.push_str(stranger.sign(TEXT).unwrap().rsplit_once("\n\n").unwrap().1);
        assert!(set.verify(&with_stranger).is_ok());
        // The text changed after signing: every line fails.
        let tampered = note(&[1, 2, 3]).replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            set.verify(&tampered),
            Err(HistoryError::SignatureInvalid { .. })
        ));
        // A key under another validator's name does not count for it.
        let forged = NoteSigner::new(&validator_key_name(ORIGIN, 4), key(9)).unwrap();
        let mut with_forged = note(&[1, 2]);
        with_forged.push_str(forged.sign(TEXT).unwrap().rsplit_once("\n\n").unwrap().1);
        assert!(set.verify(&with_forged).is_err());
    }

    #[test]
    fn key_names_give_back_their_ids() {
        assert_eq!(
            validator_id_of_key_name(ORIGIN, &validator_key_name(ORIGIN, 7)),
            Some(7)
        );
        assert_eq!(
            validator_id_of_key_name(ORIGIN, "quorum.example/log/v07"),
            None
        );
        assert_eq!(
            validator_id_of_key_name(ORIGIN, "other.example/log/v7"),
            None
        );
        assert_eq!(validator_id_of_key_name(ORIGIN, ORIGIN), None);
    }

    #[test]
    fn sets_refuse_empty_duplicate_and_zero_powers() {
        let k = key(1).verifying_key();
        assert!(ValidatorQuorum::new(ORIGIN, []).is_err());
        assert!(ValidatorQuorum::new(ORIGIN, [(1, k, 1), (1, k, 1)]).is_err());
        assert!(ValidatorQuorum::new(ORIGIN, [(1, k, 0)]).is_err());
        assert!(ValidatorQuorum::new(ORIGIN, [(1, k, u64::MAX / 2)]).is_err());
    }
}
