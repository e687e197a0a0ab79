//! What the ledger records, and its CBOR encoding.
//!
//! Every byte field is `serde_bytes`, so CBOR stores it as a byte string (without
//! it a `Vec<u8>` becomes an array of integers, 1.6x larger and about 10x slower).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use stele_history::hash::{leaf_hash, sha256};
use stele_history::state::TxDigests;
use stele_history::{leaf_bytes_of, Digest, Frontier, TransactionId, TILE_LEAVES};

use crate::{LedgerError, BATCH_TXS_MAX};

/// The first entry of a ledger: defined in `stele-history` beside
/// `ServiceIdentity`, which makes it.
pub use stele_history::identity::Genesis;

/// Leaf format 1: 96 bytes, the command outside the leaf (ledgers written
/// before format 2; still read and verified).
pub const LEAF_FORMAT_1: u8 = 1;

/// Leaf format 2: 128 bytes, the last 32 SHA-256 of the recorded command; its
/// checkpoints carry the `stele-view` line.
pub const LEAF_FORMAT_2: u8 = 2;

/// Whether leaves of `leaf_format` end with the command digest (format 2
/// on; an unknown format, refused by `check_shape`, counts as the newest).
pub fn has_command_digest(leaf_format: u8) -> bool {
    leaf_format >= LEAF_FORMAT_2
}

/// The format the node writes.
pub const LEAF_FORMAT_CURRENT: u8 = LEAF_FORMAT_2;

/// One frame's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// The first entry of a ledger: who signs it.
    Genesis(Genesis),
    /// An ordered, executed batch of transactions.
    Batch(BatchEntry),
    /// The signed checkpoint over the tree ending with the preceding batch.
    Signature(SignatureEntry),
    /// The ledger resumes at a signed checkpoint: the batches between the
    /// previous entry and it are not in this ledger (a node that joined from a
    /// snapshot fetches them later).
    Resume(ResumeEntry),
}

/// One transaction as recorded: enough to re-execute it and to rebuild its leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxRecord {
    /// The command as submitted (CBOR of `stele_frontends::Command`); opaque here.
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
    /// The canonical encoding of its write set (`docs/execution.md`); its SHA-256
    /// is the write-set digest in the leaf.
    #[serde(with = "serde_bytes")]
    pub write_set: Vec<u8>,
    /// The claims digest in the leaf.
    #[serde(with = "serde_bytes")]
    pub claims_digest: [u8; 32],
    /// SHA-256 of the commit evidence text. The evidence itself (its secret) is
    /// revealed only in receipts, as in CCF, so the files do not carry it.
    #[serde(with = "serde_bytes")]
    pub commit_evidence_digest: [u8; 32],
}

impl TxRecord {
    /// SHA-256 of the write set's canonical bytes.
    pub fn write_set_digest(&self) -> Digest {
        Digest(Sha256::digest(&self.write_set).into())
    }

    /// SHA-256 of the command bytes as recorded.
    pub fn command_digest(&self) -> Digest {
        sha256(&self.command)
    }

    /// The leaf bytes in `leaf_format`: write-set digest, commit-evidence
    /// digest, claims digest and, from format 2, command digest.
    pub fn leaf_bytes(&self, leaf_format: u8) -> Vec<u8> {
        let command_digest = has_command_digest(leaf_format).then(|| self.command_digest());
        leaf_bytes_of(
            &self.write_set_digest(),
            &Digest(self.commit_evidence_digest),
            &Digest(self.claims_digest),
            command_digest.as_ref(),
        )
    }

    /// The leaf components recorded for this transaction in `leaf_format`
    /// (what a receipt names, without the commit evidence's secret).
    pub fn digests(&self, leaf_format: u8) -> TxDigests {
        TxDigests {
            write_set_digest: self.write_set_digest(),
            claims_digest: Digest(self.claims_digest),
            command_digest: has_command_digest(leaf_format).then(|| self.command_digest()),
        }
    }

    /// The RFC 9162 leaf hash of [`TxRecord::leaf_bytes`].
    pub fn leaf_hash(&self, leaf_format: u8) -> Digest {
        leaf_hash(&self.leaf_bytes(leaf_format))
    }
}

fn leaf_format_1() -> u8 {
    LEAF_FORMAT_1
}

fn is_leaf_format_1(format: &u8) -> bool {
    *format == LEAF_FORMAT_1
}

/// A batch: transactions `first_seqno ..= first_seqno + txs.len() - 1`, ordered in
/// `view`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchEntry {
    /// The view (Raft term) that ordered the batch.
    pub view: u64,
    /// Seqno of the first transaction.
    pub first_seqno: u64,
    /// The transactions, in order.
    pub txs: Vec<TxRecord>,
    /// How its leaves are made ([`LEAF_FORMAT_1`] or [`LEAF_FORMAT_2`]).
    /// Absent in the CBOR for format 1, so older ledgers read unchanged.
    #[serde(default = "leaf_format_1", skip_serializing_if = "is_leaf_format_1")]
    pub leaf_format: u8,
}

impl BatchEntry {
    /// Seqno of the last transaction.
    pub fn last_seqno(&self) -> u64 {
        self.first_seqno + self.txs.len() as u64 - 1
    }

    /// About how many bytes the batch takes encoded: its commands and write
    /// sets, plus 64 per transaction for its digests and framing (a bound
    /// for batching writes and answers, not an exact size).
    pub fn approx_bytes(&self) -> usize {
        self.txs
            .iter()
            .map(|tx| tx.command.len() + tx.write_set.len() + 64)
            .sum()
    }

    /// The record of the transaction at `seqno`, if this batch holds it.
    pub fn record_of(&self, seqno: u64) -> Option<&TxRecord> {
        let index = usize::try_from(seqno.checked_sub(self.first_seqno)?).ok()?;
        self.txs.get(index)
    }

    /// The id of the transaction at `index` in the batch.
    pub fn transaction_id(&self, index: usize) -> TransactionId {
        TransactionId {
            view: self.view,
            seqno: self.first_seqno + index as u64,
        }
    }

    /// The leaf hashes of its transactions, in its leaf format.
    pub fn leaf_hashes(&self) -> Vec<Digest> {
        self.txs
            .iter()
            .map(|tx| tx.leaf_hash(self.leaf_format))
            .collect()
    }

    /// Checks the shape: at least one transaction, at most [`BATCH_TXS_MAX`], seqnos
    /// from 1 without overflow, a known leaf format.
    pub fn check_shape(&self) -> Result<(), LedgerError> {
        if !matches!(self.leaf_format, LEAF_FORMAT_1 | LEAF_FORMAT_2) {
            return Err(LedgerError::BadBatch {
                reason: "unknown leaf format (this build reads formats 1 and 2)",
            });
        }
        if self.txs.is_empty() || self.txs.len() > BATCH_TXS_MAX {
            return Err(LedgerError::BadBatch {
                reason: "a batch holds 1 ..= BATCH_TXS_MAX transactions",
            });
        }
        if self.first_seqno == 0
            || self
                .first_seqno
                .checked_add(self.txs.len() as u64)
                .is_none()
        {
            return Err(LedgerError::BadBatch {
                reason: "seqnos start at 1 and fit in u64",
            });
        }
        Ok(())
    }
}

/// The signed checkpoint after a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// The view of the batch it follows.
    pub view: u64,
    /// The C2SP signed note of the tlog checkpoint (origin, tree size = the last
    /// seqno, root).
    pub checkpoint: String,
}

/// Where a ledger resumes after batches it does not hold: the signed
/// checkpoint of the tree at `seqno` and that tree's frontier, so that the
/// batches after it are checked exactly as if the missing ones were there.
/// Written only as the first entry of a chunk (after the genesis entry in the
/// first chunk); the chunk is named from `after_seqno + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeEntry {
    /// The last seqno the ledger holds before this entry (0: none).
    pub after_seqno: u64,
    /// The seqno it resumes at: the checkpoint's tree size; the next batch
    /// starts at `seqno + 1`.
    pub seqno: u64,
    /// The view of the batch that ended at `seqno`.
    pub view: u64,
    /// The frontier's tile nodes ([`Frontier::tiles`]), 32 bytes each, concatenated.
    #[serde(with = "serde_bytes")]
    pub frontier_tiles: Vec<u8>,
    /// The frontier's edge leaf hashes ([`Frontier::edge`]), concatenated.
    #[serde(with = "serde_bytes")]
    pub frontier_edge: Vec<u8>,
    /// The C2SP signed note of the checkpoint at `seqno`.
    pub checkpoint: String,
    /// Where each view started among the seqnos up to `seqno`: `[first
    /// seqno, view]` pairs, in order, from seqno 1. They give the ids of
    /// the transactions whose batches the ledger does not hold.
    pub view_starts: Vec<(u64, u64)>,
}

impl ResumeEntry {
    /// The entry resuming after `after_seqno` at the tree `frontier` describes,
    /// signed by `checkpoint` in `view`.
    pub fn new(
        after_seqno: u64,
        view_starts: Vec<(u64, u64)>,
        frontier: &Frontier,
        checkpoint: String,
    ) -> Self {
        let view = view_starts.last().map_or(0, |(_, view)| *view);
        let concat = |digests: &[Digest]| digests.iter().flat_map(|digest| digest.0).collect();
        ResumeEntry {
            after_seqno,
            seqno: frontier.size(),
            view,
            frontier_tiles: concat(&frontier.tiles),
            frontier_edge: concat(&frontier.edge),
            checkpoint,
            view_starts,
        }
    }

    /// The frontier it records, checked against `seqno` (not against the
    /// checkpoint: that needs the key, see `verify.rs`).
    pub fn frontier(&self) -> Result<Frontier, String> {
        let split = |bytes: &[u8], what: &str| -> Result<Vec<Digest>, String> {
            if !bytes.len().is_multiple_of(32) {
                return Err(format!(
                    "the frontier's {what} is not a whole number of digests"
                ));
            }
            Ok(bytes
                .chunks_exact(32)
                .map(|digest| Digest(digest.try_into().expect("chunks of exactly 32 bytes")))
                .collect())
        };
        let frontier = Frontier {
            tiles: split(&self.frontier_tiles, "tiles")?,
            edge: split(&self.frontier_edge, "edge")?,
        };
        if frontier.edge.len() as u64 >= TILE_LEAVES {
            return Err("the frontier's edge holds a whole tile".to_owned());
        }
        if frontier.size() != self.seqno {
            return Err(format!(
                "the frontier describes {} transactions but the entry resumes at seqno {}",
                frontier.size(),
                self.seqno
            ));
        }
        let view = stele_history::state::check_view_starts(&self.view_starts, self.seqno)
            .map_err(|error| error.to_string())?;
        if view != self.view {
            return Err(format!(
                "its view starts end with view {view}, but it records view {}",
                self.view
            ));
        }
        if self.seqno <= self.after_seqno {
            return Err(format!(
                "resumes at seqno {} after seqno {}: nothing skipped",
                self.seqno, self.after_seqno
            ));
        }
        Ok(frontier)
    }
}

/// An [`Entry`] by reference: serializes to exactly the same CBOR, without copying
/// a batch to wrap it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryRef<'a> {
    /// See [`Entry::Genesis`].
    Genesis(&'a Genesis),
    /// See [`Entry::Batch`].
    Batch(&'a BatchEntry),
    /// See [`Entry::Signature`].
    Signature(&'a SignatureEntry),
    /// See [`Entry::Resume`].
    Resume(&'a ResumeEntry),
}

impl EntryRef<'_> {
    /// The CBOR payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes)
            .expect("serializing into a Vec cannot fail: no I/O, no map keys to reject");
        bytes
    }
}

impl Entry {
    /// The CBOR payload.
    pub fn encode(&self) -> Vec<u8> {
        self.as_ref().encode()
    }

    /// The same entry by reference.
    pub fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::Genesis(genesis) => EntryRef::Genesis(genesis),
            Entry::Batch(batch) => EntryRef::Batch(batch),
            Entry::Signature(signature) => EntryRef::Signature(signature),
            Entry::Resume(resume) => EntryRef::Resume(resume),
        }
    }

    /// Decodes a CBOR payload.
    pub fn decode(payload: &[u8]) -> Result<Self, String> {
        ciborium::from_reader(payload).map_err(|error| error.to_string())
    }

    /// A short name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Genesis(_) => "genesis",
            Entry::Batch(_) => "batch",
            Entry::Signature(_) => "signature",
            Entry::Resume(_) => "resume",
        }
    }
}

#[cfg(test)]
mod tests {
    use stele_history::leaf::{LEAF_BYTES, LEAF_V2_BYTES};

    use super::*;

    fn record(byte: u8) -> TxRecord {
        TxRecord {
            command: vec![byte; 3],
            write_set: vec![0, 0, 0, 0],
            claims_digest: [byte; 32],
            commit_evidence_digest: [byte ^ 0xFF; 32],
        }
    }

    #[test]
    fn entries_round_trip_and_bytes_are_cbor_byte_strings() {
        let entry = Entry::Batch(BatchEntry {
            view: 2,
            first_seqno: 7,
            txs: vec![record(1), record(2)],
            leaf_format: LEAF_FORMAT_2,
        });
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), entry);
        // A 32-byte digest as a CBOR byte string: major type 2, length 32 (0x58 0x20).
        let needle = [&[0x58, 0x20][..], &[1u8; 32][..]].concat();
        assert!(bytes.windows(needle.len()).any(|window| window == needle));
        assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn leaf_is_the_three_digests_then_the_command_digest() {
        let tx = record(9);
        let leaf = tx.leaf_bytes(LEAF_FORMAT_1);
        assert_eq!(leaf.len(), LEAF_BYTES);
        assert_eq!(&leaf[..32], Sha256::digest(&tx.write_set).as_slice());
        assert_eq!(&leaf[32..64], &[9 ^ 0xFF; 32]);
        assert_eq!(&leaf[64..], &[9; 32]);
        let leaf = tx.leaf_bytes(LEAF_FORMAT_2);
        assert_eq!(leaf.len(), LEAF_V2_BYTES);
        assert_eq!(&leaf[..LEAF_BYTES], tx.leaf_bytes(LEAF_FORMAT_1).as_slice());
        assert_eq!(&leaf[LEAF_BYTES..], Sha256::digest(&tx.command).as_slice());
    }

    #[test]
    fn format_1_batches_encode_without_the_format_field() {
        let mut batch = BatchEntry {
            view: 1,
            first_seqno: 1,
            txs: vec![record(1)],
            leaf_format: LEAF_FORMAT_1,
        };
        let bytes = Entry::Batch(batch.clone()).encode();
        assert!(!bytes.windows(11).any(|window| window == b"leaf_format"));
        assert_eq!(Entry::decode(&bytes).unwrap(), Entry::Batch(batch.clone()));
        batch.leaf_format = 3;
        assert!(batch.check_shape().is_err());
    }

    #[test]
    fn batch_shape_is_checked() {
        let mut batch = BatchEntry {
            view: 1,
            first_seqno: 1,
            txs: vec![],
            leaf_format: LEAF_FORMAT_CURRENT,
        };
        assert!(batch.check_shape().is_err());
        batch.txs.push(record(0));
        assert!(batch.check_shape().is_ok());
        assert_eq!(batch.last_seqno(), 1);
        batch.first_seqno = 0;
        assert!(batch.check_shape().is_err());
        batch.first_seqno = u64::MAX;
        assert!(batch.check_shape().is_err());
    }

    #[test]
    fn a_batch_gives_the_records_of_its_own_seqnos_only() {
        let batch = BatchEntry {
            view: 1,
            first_seqno: 5,
            txs: vec![record(1), record(2)],
            leaf_format: LEAF_FORMAT_CURRENT,
        };
        assert_eq!(batch.record_of(4), None);
        assert_eq!(batch.record_of(5), Some(&batch.txs[0]));
        assert_eq!(batch.record_of(6), Some(&batch.txs[1]));
        assert_eq!(batch.record_of(7), None);
        assert_eq!(batch.record_of(u64::MAX), None);
    }
}
