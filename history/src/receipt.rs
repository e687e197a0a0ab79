//! [`Receipt`]: everything an auditor needs to check one transaction offline.
//!
//! JSON (field order as below, see `docs/receipts.md`):
//! `{"transaction_id", "leaf_index", "write_set_digest", "commit_evidence",
//! "claims_digest", "command_digest" (leaf format 2 only), "proof",
//! "tree_size", "root", "checkpoint"}`.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::leaf::{CommitEvidence, LeafComponents, TransactionId};
use crate::proof::verify_inclusion;
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
        let checkpoint = Checkpoint::open_with_key(&self.checkpoint, key)?;
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
