//! [`ServiceIdentity`]: who signs, under which origin, and the commit-evidence
//! secret; [`Genesis`]: its public part, as a ledger records it.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    Checkpoint, CommitEvidence, HistoryError, NoteSigner, SigningKey, TransactionId,
    ValidatorQuorum,
};

/// The genesis public key of a service whose checkpoints are certified by
/// validators (BFT mode): there is no service key, and no signature verifies
/// under this one (it is not a valid Ed25519 point encoding in strict checks).
pub const NO_SERVICE_KEY: [u8; 32] = [0; 32];

/// The service identity, recorded once, first. The offline verifier trusts it only
/// when no key is given on the command line (and says so). The first entry of a
/// ledger (`stele_ledger::Entry::Genesis`): its CBOR is part of the ledger format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The checkpoint origin (C2SP note name), e.g. `stele.example/ledger`.
    pub origin: String,
    /// The service's Ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub public_key: [u8; 32],
}

/// The service's signing key (named after the checkpoint origin) and the secret
/// from which every transaction's commit evidence is derived. Replicas of one
/// service share both (P5).
pub struct ServiceIdentity {
    signer: NoteSigner,
    commit_secret: [u8; 32],
    /// `Some` in BFT mode: committed checkpoints carry the validators'
    /// signatures, and the signer is this node's own key (never the service's).
    validators: Option<ValidatorQuorum>,
}

impl std::fmt::Debug for ServiceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("ServiceIdentity")
            .field("origin", &self.signer.name())
            .finish_non_exhaustive()
    }
}

impl ServiceIdentity {
    /// An identity from its secrets.
    pub fn new(
        origin: &str,
        signing_key: SigningKey,
        commit_secret: [u8; 32],
    ) -> Result<Self, HistoryError> {
        Ok(ServiceIdentity {
            signer: NoteSigner::new(origin, signing_key)?,
            commit_secret,
            validators: None,
        })
    }

    /// BFT mode: committed checkpoints are certified by `validators` (each
    /// signs with its own key); speculative ones are unsigned bodies
    /// ([`ServiceIdentity::sign_checkpoint`]).
    pub fn with_validators(mut self, validators: ValidatorQuorum) -> Self {
        self.validators = Some(validators);
        self
    }

    /// BFT mode: this service's identity as validator `node_key` holds it:
    /// the same origin and commit secret, signing with the node's own key,
    /// committed checkpoints certified by `validators`.
    pub fn into_validator(
        self,
        node_key: SigningKey,
        validators: ValidatorQuorum,
    ) -> Result<Self, HistoryError> {
        let origin = self.origin().to_owned();
        Ok(ServiceIdentity {
            signer: NoteSigner::new(&origin, node_key)?,
            commit_secret: self.commit_secret,
            validators: Some(validators),
        })
    }

    /// The validators certifying checkpoints, in BFT mode.
    pub fn validators(&self) -> Option<&ValidatorQuorum> {
        self.validators.as_ref()
    }

    /// The note of a checkpoint this node made: signed with the service key,
    /// or in BFT mode the bare body (the certificate replaces it on commit).
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, HistoryError> {
        match self.validators {
            Some(_) => Ok(checkpoint.body()),
            None => checkpoint.sign(&self.signer),
        }
    }

    /// Opens a committed checkpoint: verified with the service key, or in
    /// BFT mode with the validators' quorum.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, HistoryError> {
        match &self.validators {
            Some(validators) => {
                let (checkpoint, _) = Checkpoint::open_certified(note, validators)?;
                if checkpoint.origin != self.origin() {
                    return Err(HistoryError::MalformedCheckpoint(
                        "the origin is not this service's",
                    ));
                }
                Ok(checkpoint)
            }
            None => Checkpoint::open(note, &self.signer.verifier()),
        }
    }

    /// Opens a proposed (speculative) checkpoint: as a committed one, but in
    /// BFT mode a bare body is taken unverified (the caller compares it with
    /// the tree it rebuilt itself).
    pub fn open_proposed(&self, note: &str) -> Result<Checkpoint, HistoryError> {
        match &self.validators {
            Some(_) if !note.contains("\n\n") => {
                let checkpoint = Checkpoint::parse_body(note)?;
                if checkpoint.origin != self.origin() {
                    return Err(HistoryError::MalformedCheckpoint(
                        "the origin is not this service's",
                    ));
                }
                Ok(checkpoint)
            }
            _ => self.open_checkpoint(note),
        }
    }

    /// The checkpoint signer.
    pub fn signer(&self) -> &NoteSigner {
        &self.signer
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The genesis entry of a ledger of this service.
    pub fn genesis(&self) -> Genesis {
        Genesis {
            origin: self.origin().to_owned(),
            public_key: match self.validators {
                Some(_) => NO_SERVICE_KEY,
                None => self.signer.verifier().key().to_bytes(),
            },
        }
    }

    /// The commit evidence of `id`: its secret is HMAC-SHA256(commit secret,
    /// `"stele commit evidence " || <view>.<seqno>`), so it is deterministic
    /// (replicas derive the same leaf) and unguessable without the secret (a
    /// leaf cannot be proven before the service reveals it in a receipt).
    pub fn commit_evidence(&self, id: TransactionId) -> CommitEvidence {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.commit_secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"stele commit evidence ");
        mac.update(id.to_string().as_bytes());
        CommitEvidence {
            transaction_id: id,
            secret: mac.finalize().into_bytes().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(commit_secret: [u8; 32]) -> ServiceIdentity {
        ServiceIdentity::new(
            "id.example/log",
            SigningKey::from_bytes(&[3; 32]),
            commit_secret,
        )
        .unwrap()
    }

    #[test]
    fn commit_evidence_is_deterministic_and_keyed() {
        let id = TransactionId { view: 2, seqno: 7 };
        let evidence = identity([4; 32]).commit_evidence(id);
        assert_eq!(evidence.transaction_id, id);
        assert_eq!(evidence, identity([4; 32]).commit_evidence(id));
        assert_ne!(evidence, identity([5; 32]).commit_evidence(id));
        let next = TransactionId { view: 2, seqno: 8 };
        assert_ne!(
            evidence.secret,
            identity([4; 32]).commit_evidence(next).secret
        );
    }

    #[test]
    fn genesis_is_the_public_part_and_debug_shows_no_secret() {
        let identity = identity([4; 32]);
        let genesis = identity.genesis();
        assert_eq!(genesis.origin, "id.example/log");
        assert_eq!(
            genesis.public_key,
            SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes()
        );
        assert_eq!(
            format!("{identity:?}"),
            r#"ServiceIdentity { origin: "id.example/log", .. }"#
        );
        assert!(
            ServiceIdentity::new("bad origin", SigningKey::from_bytes(&[3; 32]), [0; 32]).is_err()
        );
    }
}
