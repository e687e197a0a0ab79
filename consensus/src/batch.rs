//! [`ExecutedBatch`]: the unit of ordering. Whatever protocol orders batches
//! (the [`Sequencer`](crate::sequencer::Sequencer)), this is what it carries,
//! and what every node logs, checks and confirms.

use serde::{Deserialize, Serialize};
use stele_ledger::{BatchEntry, SignatureEntry};

/// What the primary proposes and every replica logs: a batch as the primary executed it, exactly what
/// the ledger stores (the batch entry and the signature entry after it), plus the
/// root the batch extends.
///
/// A follower re-executes `batch.txs[..].command` on its own speculative overlay
/// and checks, before acknowledging, that `prev_root` is its own current root and
/// that its root after the batch is the root in `signature.checkpoint`. The
/// per-transaction digests are in each [`stele_ledger::TxRecord`] (write set,
/// commit evidence, claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutedBatch {
    /// The transactions, their write sets and leaf components, in order. Its
    /// `view` is the view (Raft term) the batch was proposed in.
    pub batch: BatchEntry,
    /// The signed checkpoint over the tree ending with the batch: its root is the
    /// root after the batch.
    pub signature: SignatureEntry,
    /// The Merkle root of the tree before the batch (RFC 9162 root of the first
    /// `batch.first_seqno - 1` leaves).
    #[serde(with = "serde_bytes")]
    pub prev_root: [u8; 32],
}

/// For openraft's logs (0.10 asks its entries' data to display): the view
/// and the seqnos, not the transactions.
impl std::fmt::Display for ExecutedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch(view {}, seqnos {}..={})",
            self.batch.view,
            self.batch.first_seqno,
            self.batch.last_seqno()
        )
    }
}

impl ExecutedBatch {
    /// `batch` with `checkpoint` (a note, or in BFT mode a bare body) in its
    /// signature entry, of the batch's view; `prev_root` is left zero for the
    /// caller to set where it is checked.
    pub fn with_checkpoint(batch: BatchEntry, checkpoint: String) -> Self {
        ExecutedBatch {
            signature: SignatureEntry {
                view: batch.view,
                checkpoint,
            },
            batch,
            prev_root: [0; 32],
        }
    }

    /// Appends the batch as the ledger holds it: its batch entry's frame,
    /// then its signature entry's (what a snapshot transfer carries).
    pub fn encode_frames(&self, out: &mut Vec<u8>) {
        encode_frames(&self.batch, &self.signature, out);
    }
}

/// Appends `batch` and `signature` as two ledger frames.
pub fn encode_frames(batch: &BatchEntry, signature: &SignatureEntry, out: &mut Vec<u8>) {
    use stele_ledger::entry::EntryRef;
    stele_ledger::frame::encode_frame(&EntryRef::Batch(batch).encode(), out);
    stele_ledger::frame::encode_frame(&EntryRef::Signature(signature).encode(), out);
}
