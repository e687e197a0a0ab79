//! [`Receipt`]: everything an auditor needs to check one transaction offline.
//!
//! JSON (field order as below, see `docs/receipts.md`):
//! `{"transaction_id", "leaf_index", "write_set_digest", "commit_evidence",
//! "claims_digest", "command_digest" (leaf format 2 only), "proof",
//! "tree_size", "root", "checkpoint"}`.
//!
//! A receipt is checked offline against whoever certifies the service's
//! checkpoints: its public key ([`Receipt::verify`]), or in BFT mode its
//! validators ([`Receipt::verify_with_validators`]: the checkpoint is a
//! certificate note signed by validators holding more than two thirds of the
//! voting power). Everything else is checked the same way.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::leaf::{CommitEvidence, LeafComponents, TransactionId};
use crate::proof::verify_inclusion;
use crate::quorum::ValidatorQuorum;
use crate::tree::{MerkleTree, Tiles};
use crate::{Digest, HistoryError};

/// A transaction's receipt: its leaf components, the inclusion path of its
/// leaf in the tree of `tree_size` leaves whose root is `root`, and the signed
/// checkpoint of that tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// `<view>.<seqno>`.
    pub transaction_id: TransactionId,
    /// The leaf's index (0-based); always `seqno - 1`.
    pub leaf_index: u64,
    /// SHA-256 of the canonical write set.
    pub write_set_digest: Digest,
    /// `ce:<view>.<seqno>:<hex>`.
    pub commit_evidence: CommitEvidence,
    /// SHA-256 of the claims, or all zero.
    pub claims_digest: Digest,
    /// SHA-256 of the command as the ledger stores it (leaf format 2); absent
    /// for transactions of format-1 ledgers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_digest: Option<Digest>,
    /// RFC 9162 inclusion path of `leaf_index` in the tree of `tree_size`.
    pub proof: Vec<Digest>,
    /// The size of the tree the proof and checkpoint are about.
    pub tree_size: u64,
    /// The root of that tree.
    pub root: Digest,
    /// The C2SP signed checkpoint of that tree.
    pub checkpoint: String,
}

impl Receipt {
    /// The receipt of leaf `leaf_index`, proven against the tree of the size
    /// the signed `checkpoint` names (which must be `tree`'s root at that size).
    pub fn build(
        tree: &MerkleTree,
        tiles: &Tiles,
        leaf_index: u64,
        components: &LeafComponents,
        checkpoint: &Checkpoint,
        checkpoint_note: String,
    ) -> Result<Receipt, HistoryError> {
        if tree.root_at_with(checkpoint.tree_size, tiles)? != checkpoint.root {
            return Err(HistoryError::ReceiptMismatch(
                "the checkpoint's root is not this tree's root at its size",
            ));
        }
        if tree.leaf_hash_with(leaf_index, tiles)? != components.leaf_hash() {
            return Err(HistoryError::ReceiptMismatch(
                "the components do not hash to this leaf",
            ));
        }
        Ok(Receipt {
            transaction_id: components.commit_evidence.transaction_id,
            leaf_index,
            write_set_digest: components.write_set_digest,
            commit_evidence: components.commit_evidence,
            claims_digest: components.claims_digest,
            command_digest: components.command_digest,
            proof: tree.inclusion_proof_with(leaf_index, checkpoint.tree_size, tiles)?,
            tree_size: checkpoint.tree_size,
            root: checkpoint.root,
            checkpoint: checkpoint_note,
        })
    }

    /// Recomputes the leaf from its components, walks the inclusion path to
    /// the root, and checks the checkpoint's signature by `key` and that it
    /// signs this tree size and root. Returns the verified checkpoint.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Checkpoint, HistoryError> {
        self.verify_opening_with(|note| Checkpoint::open_with_key(note, key))
    }

    /// [`Receipt::verify`] for a service in BFT mode: the checkpoint must be
    /// a certificate note signed by validators of `validators` holding more
    /// than two thirds of the voting power, for their service's origin.
    /// Returns the verified checkpoint (the signers:
    /// [`ValidatorQuorum::verify_signers`] of [`Receipt::checkpoint`]).
    pub fn verify_with_validators(
        &self,
        validators: &ValidatorQuorum,
    ) -> Result<Checkpoint, HistoryError> {
        self.verify_opening_with(|note| {
            Checkpoint::open_certified(note, validators).map(|(checkpoint, _)| checkpoint)
        })
    }

    /// The checks of every receipt, with `open` verifying the checkpoint
    /// note's signatures and parsing it.
    fn verify_opening_with(
        &self,
        open: impl FnOnce(&str) -> Result<Checkpoint, HistoryError>,
    ) -> Result<Checkpoint, HistoryError> {
        if self.commit_evidence.transaction_id != self.transaction_id {
            return Err(HistoryError::ReceiptMismatch(
                "commit_evidence names another transaction",
            ));
        }
        if self.transaction_id.seqno.checked_sub(1) != Some(self.leaf_index) {
            return Err(HistoryError::ReceiptMismatch(
                "leaf_index is not the transaction's seqno - 1",
            ));
        }
        let components = LeafComponents {
            write_set_digest: self.write_set_digest,
            commit_evidence: self.commit_evidence,
            claims_digest: self.claims_digest,
            command_digest: self.command_digest,
        };
        verify_inclusion(
            self.leaf_index,
            self.tree_size,
            &components.leaf_hash(),
            &self.proof,
            &self.root,
        )?;
        let checkpoint = open(&self.checkpoint)?;
        if checkpoint.tree_size != self.tree_size || checkpoint.root != self.root {
            return Err(HistoryError::ReceiptMismatch(
                "the checkpoint signs another tree size or root",
            ));
        }
        // The checkpoint follows the transaction's own batch.
        if checkpoint
            .view
            .is_some_and(|view| view != self.transaction_id.view)
        {
            return Err(HistoryError::ReceiptMismatch(
                "the checkpoint signs another view",
            ));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;
    use crate::note::NoteSigner;
    use crate::quorum::validator_key_name;
    use crate::SigningKey;

    const ORIGIN: &str = "bft.example/ledger";

    fn validator_key(id: u64) -> SigningKey {
        SigningKey::from_bytes(&[u8::try_from(id).unwrap() + 40; 32])
    }

    /// Validators 1..=4 of `origin`, with `powers`.
    fn quorum_of(origin: &str, powers: &[u64]) -> ValidatorQuorum {
        let validators = (1..).zip(powers).map(|(id, power)| {
            let key = validator_key(id).verifying_key();
            (id, key, *power)
        });
        ValidatorQuorum::new(origin, validators).unwrap()
    }

    fn components(seqno: u64) -> LeafComponents {
        LeafComponents {
            write_set_digest: sha256(format!("write set {seqno}").as_bytes()),
            commit_evidence: CommitEvidence {
                transaction_id: TransactionId { view: 3, seqno },
                secret: sha256(format!("secret {seqno}").as_bytes()).0,
            },
            claims_digest: Digest::ZERO,
            command_digest: Some(sha256(format!("command {seqno}").as_bytes())),
        }
    }

    /// The receipt of seqno 4 in a tree of 9, its checkpoint a certificate
    /// note of `origin` (text: the body and a decision line) signed by the
    /// validators `signers` under the names of `signed_as`.
    fn certified_receipt(origin: &str, signed_as: &str, signers: &[u64]) -> Receipt {
        let mut tree = MerkleTree::new();
        let leaves: Vec<Vec<u8>> = (1..=9)
            .map(|seqno| components(seqno).leaf_bytes())
            .collect();
        tree.append_batch(&leaves);
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            tree_size: tree.size(),
            root: tree.root(),
            view: Some(3),
        };
        let text = format!(
            "{}stele-bft 2 0 3 {}\n",
            checkpoint.body(),
            sha256(b"value").to_hex()
        );
        let mut note = format!("{text}\n");
        for id in signers {
            let signer =
                NoteSigner::new(&validator_key_name(signed_as, *id), validator_key(*id)).unwrap();
            let signed = signer.sign(&text).unwrap();
            note.push_str(signed.rsplit_once("\n\n").unwrap().1);
        }
        Receipt::build(&tree, &Tiles::none(), 3, &components(4), &checkpoint, note).unwrap()
    }

    #[test]
    fn a_certificate_of_more_than_two_thirds_verifies() {
        let validators = quorum_of(ORIGIN, &[1, 1, 1, 1]);
        let receipt = certified_receipt(ORIGIN, ORIGIN, &[1, 2, 4]);
        let checkpoint = receipt.verify_with_validators(&validators).unwrap();
        assert_eq!((checkpoint.tree_size, checkpoint.view), (9, Some(3)));
        let (_, signers) = validators.verify_signers(&receipt.checkpoint).unwrap();
        assert_eq!(signers, [1, 2, 4]);
        // Weighted: 3 + 1 of 6 is not more than two thirds; 3 + 1 + 1 is.
        let weighted = quorum_of(ORIGIN, &[3, 1, 1, 1]);
        assert_eq!(
            certified_receipt(ORIGIN, ORIGIN, &[1, 2]).verify_with_validators(&weighted),
            Err(HistoryError::QuorumNotReached {
                signed: 4,
                total: 6
            })
        );
        assert!(certified_receipt(ORIGIN, ORIGIN, &[1, 2, 3])
            .verify_with_validators(&weighted)
            .is_ok());
    }

    #[test]
    fn two_of_four_or_a_changed_receipt_fails() {
        let validators = quorum_of(ORIGIN, &[1, 1, 1, 1]);
        assert_eq!(
            certified_receipt(ORIGIN, ORIGIN, &[1, 3]).verify_with_validators(&validators),
            Err(HistoryError::QuorumNotReached {
                signed: 2,
                total: 4
            })
        );
        let good = certified_receipt(ORIGIN, ORIGIN, &[1, 2, 3, 4]);
        let mut changed = good.clone();
        changed.write_set_digest = sha256(b"another write set");
        assert!(changed.verify_with_validators(&validators).is_err());
        let mut moved = good.clone();
        moved.tree_size = 8;
        assert!(moved.verify_with_validators(&validators).is_err());
        // The certified text changed after signing: every signature fails.
        let mut rewritten = good;
        rewritten.checkpoint = rewritten.checkpoint.replacen(" 2 0 3 ", " 2 1 3 ", 1);
        assert!(matches!(
            rewritten.verify_with_validators(&validators),
            Err(HistoryError::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn validators_of_another_service_or_a_single_key_do_not_certify() {
        // Validators of another origin: none of the lines is theirs.
        let elsewhere = quorum_of("elsewhere.example/log", &[1, 1, 1, 1]);
        let receipt = certified_receipt(ORIGIN, ORIGIN, &[1, 2, 3]);
        assert!(receipt.verify_with_validators(&elsewhere).is_err());
        // A checkpoint of another origin, signed by this service's
        // validators under this service's names: refused by its origin.
        let validators = quorum_of(ORIGIN, &[1, 1, 1, 1]);
        let foreign = certified_receipt("elsewhere.example/log", ORIGIN, &[1, 2, 3]);
        assert_eq!(
            foreign.verify_with_validators(&validators),
            Err(HistoryError::MalformedCheckpoint(
                "the origin is not the validators' service"
            ))
        );
        // One validator's key is not the service's key.
        let one = validator_key(1).verifying_key();
        assert!(receipt.verify(&one).is_err());
    }
}
