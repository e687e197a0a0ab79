//! [`HistoryState`]: the Merkle tree of every transaction, the leaf components a
//! receipt needs, and the signed checkpoint after every batch.

use crate::hash::leaf_hash;
use crate::identity::ServiceIdentity;
use crate::{
    leaf_bytes_of, Checkpoint, Digest, HistoryError, LeafComponents, MerkleTree, Receipt,
    TransactionId,
};

/// The leaf components stored per transaction (the commit evidence is
/// derived from the service secret when a receipt is made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDigests {
    /// SHA-256 of the canonical write set.
    pub write_set_digest: Digest,
    /// SHA-256 of the claims, or zero.
    pub claims_digest: Digest,
    /// SHA-256 of the recorded command (leaf format 2), or `None` (format 1).
    pub command_digest: Option<Digest>,
}

impl TxDigests {
    /// The leaf hash given the commit evidence digest.
    pub fn leaf_hash(&self, commit_evidence_digest: &Digest) -> Digest {
        leaf_hash(&leaf_bytes_of(
            &self.write_set_digest,
            commit_evidence_digest,
            &self.claims_digest,
            self.command_digest.as_ref(),
        ))
    }
}

/// One batch: its seqnos, view and signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// First seqno.
    pub first_seqno: u64,
    /// Last seqno (= the checkpoint's tree size).
    pub last_seqno: u64,
    /// The view that ordered it.
    pub view: u64,
    /// The checkpoint over the tree ending with it.
    pub checkpoint: Checkpoint,
    /// That checkpoint as a signed note.
    pub note: String,
}

/// Why a history read was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryReadError {
    /// Not (yet) committed, or never assigned.
    NotCommitted,
    /// The seqno exists with another view.
    WrongView,
    /// A consistency range outside `0 <= from <= to <= committed`.
    InvalidRange,
    /// Committed, but its leaf could not be read back (the reason says why:
    /// an unreadable ledger file, or a leaf that is not the tree's).
    Unavailable(String),
}

/// The Merkle tree of every transaction and every batch's checkpoint, in
/// memory (36 bytes of tree per transaction, plus the batch's). A leaf's
/// components are not kept: a receipt is given them, read back from the
/// ledger, and checks them against the tree's leaf.
#[derive(Debug, Default)]
pub struct HistoryState {
    tree: MerkleTree,
    batches: Vec<BatchInfo>,
}

impl HistoryState {
    /// Empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of transactions.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Appends one batch's leaves and signs the checkpoint over the new tree.
    pub fn push_batch(
        &mut self,
        view: u64,
        leaf_hashes: &[Digest],
        identity: &ServiceIdentity,
    ) -> Result<&BatchInfo, HistoryError> {
        let first_seqno = self.tree.size() + 1;
        self.tree.append_leaf_hashes(leaf_hashes);
        let checkpoint = Checkpoint {
            origin: identity.origin().to_owned(),
            tree_size: self.tree.size(),
            root: self.tree.root(),
            view: Some(view),
        };
        let note = checkpoint.sign(identity.signer())?;
        self.batches.push(BatchInfo {
            first_seqno,
            last_seqno: checkpoint.tree_size,
            view,
            checkpoint,
            note,
        });
        Ok(self.batches.last().expect("just pushed"))
    }

    /// Appends a batch read back from the ledger, checking that its signed
    /// checkpoint is the one this tree gives (same origin, size and root).
    pub fn push_replayed(
        &mut self,
        view: u64,
        leaf_hashes: &[Digest],
        note: String,
        identity: &ServiceIdentity,
    ) -> Result<(), HistoryError> {
        let first_seqno = self.tree.size() + 1;
        self.tree.append_leaf_hashes(leaf_hashes);
        let checkpoint = Checkpoint::open(&note, &identity.signer().verifier())?;
        let last_seqno = self.tree.size();
        if checkpoint.tree_size != last_seqno || checkpoint.root != self.tree.root() {
            return Err(HistoryError::Replay {
                seqno: last_seqno,
                reason: "the signed checkpoint does not match the tree rebuilt from the ledger"
                    .to_owned(),
            });
        }
        if checkpoint.view.is_some_and(|signed| signed != view) {
            return Err(HistoryError::Replay {
                seqno: last_seqno,
                reason: format!(
                    "the batch records view {view} but its checkpoint signs view {:?}",
                    checkpoint.view
                ),
            });
        }
        self.batches.push(BatchInfo {
            first_seqno,
            last_seqno,
            view,
            checkpoint,
            note,
        });
        Ok(())
    }

    /// Drops every transaction after `size` and the batches ending after it (a
    /// rollback of speculative batches; `size` must end a batch).
    pub fn truncate(&mut self, size: u64) -> Result<(), HistoryError> {
        if size > self.size() {
            return Ok(());
        }
        if size > 0
            && self
                .batch_of(size)
                .is_some_and(|batch| batch.last_seqno != size)
        {
            return Err(HistoryError::Replay {
                seqno: size,
                reason: "a rollback must end at a batch boundary".to_owned(),
            });
        }
        self.tree.truncate(size)?;
        self.batches.retain(|batch| batch.last_seqno <= size);
        Ok(())
    }

    /// The root of the tree (the empty-tree root when empty).
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The root of the tree's first `size` leaves, if it has that many.
    pub fn root_at(&self, size: u64) -> Option<Digest> {
        self.tree.root_at(size).ok()
    }

    /// The batch ending exactly at `seqno`, if one does.
    pub fn batch_ending_at(&self, seqno: u64) -> Option<&BatchInfo> {
        self.batch_of(seqno)
            .filter(|batch| batch.last_seqno == seqno)
    }

    /// The batch holding `seqno`.
    pub fn batch_of(&self, seqno: u64) -> Option<&BatchInfo> {
        let position = self
            .batches
            .partition_point(|batch| batch.last_seqno < seqno);
        self.batches
            .get(position)
            .filter(|batch| seqno >= batch.first_seqno)
    }

    /// The id of the transaction at `seqno`, if it exists.
    pub fn transaction_id(&self, seqno: u64) -> Option<TransactionId> {
        self.batch_of(seqno).map(|batch| TransactionId {
            view: batch.view,
            seqno,
        })
    }

    /// Checks that `id` names a transaction at or below `committed`.
    pub fn check_committed(
        &self,
        id: TransactionId,
        committed: u64,
    ) -> Result<(), HistoryReadError> {
        let batch = self
            .batch_of(id.seqno)
            .ok_or(HistoryReadError::NotCommitted)?;
        if batch.view != id.view {
            return Err(HistoryReadError::WrongView);
        }
        if id.seqno > committed {
            return Err(HistoryReadError::NotCommitted);
        }
        Ok(())
    }

    /// The receipt of committed transaction `id`, proven against the checkpoint
    /// signed right after its batch. `digests` are its leaf's components as
    /// the ledger records them: the leaf they make must be the tree's.
    pub fn receipt(
        &self,
        id: TransactionId,
        committed: u64,
        identity: &ServiceIdentity,
        digests: &TxDigests,
    ) -> Result<Receipt, HistoryReadError> {
        self.check_committed(id, committed)?;
        let batch = self.batch_of(id.seqno).expect("checked by check_committed");
        let commit_evidence = identity.commit_evidence(id);
        let held = self
            .tree
            .leaf_hash(id.seqno - 1)
            .map_err(|_| HistoryReadError::NotCommitted)?;
        if digests.leaf_hash(&commit_evidence.digest()) != held {
            return Err(HistoryReadError::Unavailable(format!(
                "the ledger's record of transaction {id} does not make the leaf in the tree"
            )));
        }
        let components = LeafComponents {
            write_set_digest: digests.write_set_digest,
            commit_evidence,
            claims_digest: digests.claims_digest,
            command_digest: digests.command_digest,
        };
        Receipt::build(
            &self.tree,
            id.seqno - 1,
            &components,
            &batch.checkpoint,
            batch.note.clone(),
        )
        .map_err(|_| HistoryReadError::NotCommitted)
    }

    /// The consistency proof between the trees of sizes `from` and `to`.
    pub fn consistency(
        &self,
        from: u64,
        to: u64,
        committed: u64,
    ) -> Result<Vec<Digest>, HistoryReadError> {
        if from > to || to > committed {
            return Err(HistoryReadError::InvalidRange);
        }
        self.tree
            .consistency_proof(from, to)
            .map_err(|_| HistoryReadError::InvalidRange)
    }

    /// The signed checkpoint of the last batch at or below `committed`.
    pub fn latest_checkpoint(&self, committed: u64) -> Option<&BatchInfo> {
        let position = self
            .batches
            .partition_point(|batch| batch.last_seqno <= committed);
        position.checked_sub(1).map(|index| &self.batches[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;
    use crate::SigningKey;

    fn identity() -> ServiceIdentity {
        ServiceIdentity::new(
            "state.example/log",
            SigningKey::from_bytes(&[1; 32]),
            [2; 32],
        )
        .expect("a valid origin")
    }

    /// One batch of `count` transactions in view 1, with its digests and leaves.
    fn batch(
        first_seqno: u64,
        count: u64,
        identity: &ServiceIdentity,
    ) -> (Vec<TxDigests>, Vec<Digest>) {
        (first_seqno..first_seqno + count)
            .map(|seqno| {
                let digests = TxDigests {
                    write_set_digest: sha256(&seqno.to_be_bytes()),
                    claims_digest: Digest::ZERO,
                    command_digest: Some(sha256(b"command")),
                };
                let evidence = identity.commit_evidence(TransactionId { view: 1, seqno });
                let leaf = digests.leaf_hash(&evidence.digest());
                (digests, leaf)
            })
            .unzip()
    }

    #[test]
    fn committed_transactions_have_receipts_that_verify() {
        let identity = identity();
        let mut history = HistoryState::new();
        let (digests, leaves) = batch(1, 3, &identity);
        history.push_batch(1, &leaves, &identity).unwrap();
        let id = TransactionId { view: 1, seqno: 2 };
        let receipt = history.receipt(id, 3, &identity, &digests[1]).unwrap();
        let key = identity.signer().verifier().key().to_owned();
        assert_eq!(receipt.verify(&key).unwrap().tree_size, 3);
        assert_eq!(
            history.receipt(id, 1, &identity, &digests[1]),
            Err(HistoryReadError::NotCommitted)
        );
        let other_view = TransactionId { view: 2, seqno: 2 };
        assert_eq!(
            history.receipt(other_view, 3, &identity, &digests[1]),
            Err(HistoryReadError::WrongView)
        );
        // Another transaction's record (a misread ledger) is refused, not
        // turned into a receipt that fails to verify.
        assert!(matches!(
            history.receipt(id, 3, &identity, &digests[0]),
            Err(HistoryReadError::Unavailable(_))
        ));
    }

    #[test]
    fn a_replayed_batch_must_match_its_signed_checkpoint() {
        let identity = identity();
        let mut primary = HistoryState::new();
        let (_, leaves) = batch(1, 2, &identity);
        let note = primary
            .push_batch(1, &leaves, &identity)
            .unwrap()
            .note
            .clone();
        let mut follower = HistoryState::new();
        follower
            .push_replayed(1, &leaves, note.clone(), &identity)
            .unwrap();
        assert_eq!(follower.root(), primary.root());

        let mut forged = HistoryState::new();
        let error = forged
            .push_replayed(1, &leaves[..1], note, &identity)
            .unwrap_err();
        assert!(
            matches!(error, HistoryError::Replay { seqno: 1, .. }),
            "{error}"
        );
        assert!(error
            .to_string()
            .starts_with("ledger replay failed at seqno 1: "));
    }

    #[test]
    fn a_rollback_ends_at_a_batch_boundary() {
        let identity = identity();
        let mut history = HistoryState::new();
        for first_seqno in [1, 3] {
            let (_, leaves) = batch(first_seqno, 2, &identity);
            history.push_batch(1, &leaves, &identity).unwrap();
        }
        let root_at_2 = history.root_at(2).unwrap();
        assert!(matches!(
            history.truncate(3),
            Err(HistoryError::Replay { seqno: 3, .. })
        ));
        history.truncate(2).unwrap();
        assert_eq!(history.size(), 2);
        assert_eq!(history.root(), root_at_2);
        assert!(history.batch_of(3).is_none());
    }
}
