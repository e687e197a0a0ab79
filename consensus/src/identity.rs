//! [`ServiceIdentity`]: who signs, under which origin, and the commit-evidence
//! secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use stele_history::{CommitEvidence, NoteSigner, SigningKey, TransactionId};

/// The service's signing key (named after the checkpoint origin) and the secret
/// from which every transaction's commit evidence is derived. Replicas of one
/// service share both (P5).
pub struct ServiceIdentity {
    signer: NoteSigner,
    commit_secret: [u8; 32],
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
    ) -> Result<Self, stele_history::HistoryError> {
        Ok(ServiceIdentity {
            signer: NoteSigner::new(origin, signing_key)?,
            commit_secret,
        })
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
    pub fn genesis(&self) -> stele_ledger::Genesis {
        stele_ledger::Genesis {
            origin: self.origin().to_owned(),
            public_key: self.signer.verifier().key().to_bytes(),
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
