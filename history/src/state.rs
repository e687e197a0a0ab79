//! [`HistoryState`]: the Merkle tree of every transaction, every batch's span,
//! and the signed checkpoints of the recent batches.

use std::collections::VecDeque;

use crate::hash::leaf_hash;
use crate::identity::ServiceIdentity;
use crate::levels::Column;
use crate::tree::{Frontier, Tiles};
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

/// One batch: its seqnos and the view that ordered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    /// First seqno.
    pub first_seqno: u64,
    /// Last seqno (= the tree size its checkpoint signs).
    pub last_seqno: u64,
    /// The view that ordered it.
    pub view: u64,
}

/// What is kept of every batch: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchEnd {
    last_seqno: u64,
    view: u64,
}

/// Signed checkpoints kept in memory for batches at or below the commit point
/// (the newest ones: `/checkpoint`, snapshots and the follower's comparisons
/// use those); every batch above it keeps its own until it is committed.
pub const NOTES_COMMITTED_KEPT: usize = 1024;

/// Leaves kept in memory below the commit point by default (4 MiB of tree
/// levels); older ones are read back from the ledger, a tile at a time, for
/// receipts and proofs.
pub const LEAVES_COMMITTED_KEPT_DEFAULT: u64 = 1 << 16;

/// Why a history read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryReadError {
    /// Not (yet) committed, or never assigned.
    #[error("not committed")]
    NotCommitted,
    /// The seqno exists with another view.
    #[error("the seqno belongs to another view")]
    WrongView,
    /// A consistency range outside `0 <= from <= to <= committed`.
    #[error("the range is not within the committed tree")]
    InvalidRange,
    /// Committed, but its leaf could not be read back (the reason says why:
    /// an unreadable ledger file, or a leaf that is not the tree's).
    #[error("{0}")]
    Unavailable(String),
    /// The answer needs the leaves of this tile, below the window held in
    /// memory: the caller reads them back, admits them
    /// ([`HistoryState::admit_tile`]) and asks again.
    #[error("the proof needs tile {0} of old leaves, which was not read back")]
    NeedsTile(u64),
}

impl HistoryReadError {
    /// A tree error on a read: a tile to read back, else a range the tree
    /// does not have.
    fn from_tree(error: HistoryError, otherwise: HistoryReadError) -> HistoryReadError {
        match error {
            HistoryError::TileMissing { tile } => HistoryReadError::NeedsTile(tile),
            _ => otherwise,
        }
    }
}

/// The Merkle tree of every transaction, every batch's span and the recent
/// batches' signed checkpoints. Memory grows by about 0.25 bytes per
/// transaction and 16 per batch: the tree's lower levels and the older
/// checkpoints are released once committed ([`HistoryState::release`]) and
/// read back from the ledger when a receipt needs them. A leaf's components
/// are not kept either: a receipt is given them, read back from the ledger,
/// and checks them against the tree's leaf.
#[derive(Debug, Default)]
pub struct HistoryState {
    tree: MerkleTree,
    batches: Column<BatchEnd>,
    /// `(last seqno, signed checkpoint)` of the recent batches, in order.
    notes: VecDeque<(u64, String)>,
    /// The seqno a history that started at a snapshot starts after (0: it
    /// holds every batch): the batches up to it are not known here.
    starts_after: u64,
    /// The seqnos up to this one are held again, though before
    /// `starts_after`: their batches were fetched into the ledger since.
    filled_through: u64,
    /// Where each view starts: `(first seqno, view)`, in order (a few
    /// entries: one per view that ordered a batch). What gives a
    /// transaction's id where its batch is not known.
    view_starts: Vec<(u64, u64)>,
}

impl HistoryState {
    /// Empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The history a snapshot describes, without reading the ledger before it:
    /// the tree from `frontier`, the batches from `spans` (from the ledger's
    /// index, in order), and `note`, the signed checkpoint of the last batch,
    /// which must verify and sign this tree's size and root.
    pub fn restore(
        spans: impl IntoIterator<Item = BatchSpan>,
        frontier: &Frontier,
        note: String,
        identity: &ServiceIdentity,
    ) -> Result<HistoryState, HistoryError> {
        Self::restore_after(None, spans, frontier, note, identity)
    }

    /// [`HistoryState::restore`] for a node whose ledger resumes at a
    /// snapshot: `skipped` is the last seqno it does not hold (it holds none
    /// from 1 to there) and where each view started up to it; `spans` start
    /// after it.
    pub fn restore_after(
        skipped: Option<(u64, &[(u64, u64)])>,
        spans: impl IntoIterator<Item = BatchSpan>,
        frontier: &Frontier,
        note: String,
        identity: &ServiceIdentity,
    ) -> Result<HistoryState, HistoryError> {
        let refused = |reason: String| HistoryError::Replay {
            seqno: frontier.size(),
            reason,
        };
        let tree = MerkleTree::from_frontier(frontier)?;
        let checkpoint = identity.open_checkpoint(&note)?;
        if checkpoint.tree_size != tree.size() || checkpoint.root != tree.root() {
            return Err(refused(
                "the snapshot's tree frontier does not make its signed checkpoint's root"
                    .to_owned(),
            ));
        }
        let mut batches = Column::default();
        let mut next = 1;
        let mut view_starts: Vec<(u64, u64)> = Vec::new();
        if let Some((skipped_through, starts)) = skipped {
            let view = check_view_starts(starts, skipped_through)?;
            batches.extend_from_slice(&[BatchEnd {
                last_seqno: skipped_through,
                view,
            }]);
            view_starts = starts.to_vec();
            next = skipped_through + 1;
        }
        for span in spans {
            if view_starts
                .last()
                .is_none_or(|(_, view)| *view != span.view)
            {
                view_starts.push((span.first_seqno, span.view));
            }
            if span.first_seqno != next || span.last_seqno < span.first_seqno {
                return Err(refused(format!(
                    "the ledger's batches are not contiguous at seqno {next}"
                )));
            }
            batches.extend_from_slice(&[BatchEnd {
                last_seqno: span.last_seqno,
                view: span.view,
            }]);
            next = span.last_seqno + 1;
        }
        if next != tree.size() + 1 {
            return Err(refused(format!(
                "the ledger's batches end at seqno {}, not at the snapshot's",
                next - 1
            )));
        }
        Ok(HistoryState {
            tree,
            batches,
            notes: VecDeque::from([(checkpoint.tree_size, note)]),
            starts_after: skipped.map_or(0, |(skipped_through, _)| skipped_through),
            filled_through: 0,
            view_starts,
        })
    }

    /// The history of a node that starts at a snapshot without the batches
    /// before it (it joined from a snapshot): the tree from `frontier`, whose
    /// root `note` (the signed checkpoint of the snapshot's last batch, in
    /// `view`) must sign. Transactions up to the snapshot have no batch
    /// known here: reads about them are [`HistoryReadError::Unavailable`].
    pub fn resumed(
        frontier: &Frontier,
        view_starts: &[(u64, u64)],
        note: String,
        identity: &ServiceIdentity,
    ) -> Result<HistoryState, HistoryError> {
        let view = check_view_starts(view_starts, frontier.size())?;
        let tree = MerkleTree::from_frontier(frontier)?;
        let checkpoint = identity.open_checkpoint(&note)?;
        if checkpoint.tree_size != tree.size() || checkpoint.root != tree.root() {
            return Err(HistoryError::Replay {
                seqno: frontier.size(),
                reason: "the snapshot's tree frontier does not make its signed checkpoint's root"
                    .to_owned(),
            });
        }
        let mut batches = Column::default();
        // The skipped seqnos as one span: where the first batch after starts.
        batches.extend_from_slice(&[BatchEnd {
            last_seqno: tree.size(),
            view,
        }]);
        Ok(HistoryState {
            starts_after: tree.size(),
            filled_through: 0,
            tree,
            batches,
            notes: VecDeque::from([(checkpoint.tree_size, note)]),
            view_starts: view_starts.to_vec(),
        })
    }

    /// Where each view started, up to `seqno`: `(first seqno, view)`, in
    /// order (what a resume transfer carries for the seqnos it skips).
    pub fn view_starts_through(&self, seqno: u64) -> Vec<(u64, u64)> {
        let end = self
            .view_starts
            .partition_point(|(first, _)| *first <= seqno);
        self.view_starts[..end].to_vec()
    }

    /// The view that ordered `seqno`, from where the views start.
    fn view_at(&self, seqno: u64) -> Option<u64> {
        let end = self
            .view_starts
            .partition_point(|(first, _)| *first <= seqno);
        end.checked_sub(1).map(|index| self.view_starts[index].1)
    }

    /// Refuses, as [`HistoryReadError::Unavailable`] with the reason, a
    /// transaction before where this history starts (its leaf and batch are
    /// not on this node: a receipt needs another node).
    pub fn check_held(&self, id: TransactionId) -> Result<(), HistoryReadError> {
        if id.seqno > self.starts_after || id.seqno <= self.filled_through {
            return Ok(());
        }
        Err(HistoryReadError::Unavailable(format!(
            "transaction {id} is before seqno {} where this node's history starts (it \
             joined from a snapshot and has not fetched the ledger before it yet): ask \
             another node",
            self.starts_after + 1
        )))
    }

    /// The seqno this history starts after (0: it holds every batch).
    pub fn starts_after(&self) -> u64 {
        self.starts_after
    }

    /// Records that the batches up to `seqno` (before where this history
    /// starts) are in the ledger again: fetched from peers. Never moves back.
    ///
    /// Counted by whole tiles (until it reaches where the history starts): a
    /// receipt before that point needs every leaf of its tile read back.
    pub fn filled(&mut self, seqno: u64) {
        let held = if seqno >= self.starts_after {
            self.starts_after
        } else {
            seqno / crate::tree::TILE_LEAVES * crate::tree::TILE_LEAVES
        };
        self.filled_through = self.filled_through.max(held);
    }

    /// The seqno up to which the batches before where this history starts
    /// are held again (0: none).
    pub fn filled_through(&self) -> u64 {
        self.filled_through
    }

    /// The tree's frontier at `size` (for a snapshot), if its edge is held.
    pub fn frontier_at(&self, size: u64) -> Option<Frontier> {
        self.tree.frontier(size).ok()
    }

    /// Number of transactions.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Appends one batch's leaves and signs the checkpoint over the new tree;
    /// returns that signed note.
    pub fn push_batch(
        &mut self,
        view: u64,
        leaf_hashes: &[Digest],
        identity: &ServiceIdentity,
    ) -> Result<&str, HistoryError> {
        self.tree.append_leaf_hashes(leaf_hashes);
        let checkpoint = Checkpoint {
            origin: identity.origin().to_owned(),
            tree_size: self.tree.size(),
            root: self.tree.root(),
            view: Some(view),
        };
        let note = identity.sign_checkpoint(&checkpoint)?;
        Ok(self.push_end(view, note))
    }

    fn push_end(&mut self, view: u64, note: String) -> &str {
        let last_seqno = self.tree.size();
        if self
            .view_starts
            .last()
            .is_none_or(|(_, last)| *last != view)
        {
            let first_seqno = match self.batches.len() {
                0 => 1,
                held => self
                    .batches
                    .get(held - 1)
                    .map_or(1, |end| end.last_seqno + 1),
            };
            self.view_starts.push((first_seqno, view));
        }
        self.batches
            .extend_from_slice(&[BatchEnd { last_seqno, view }]);
        self.notes.push_back((last_seqno, note));
        &self.notes.back().expect("just pushed").1
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
        let checkpoint = identity.open_proposed(&note)?;
        self.push_opened(view, leaf_hashes, note, checkpoint)
    }

    /// [`HistoryState::push_replayed`] with `note` already opened (its
    /// signature verified, in parallel with other batches') as `checkpoint`.
    pub fn push_opened(
        &mut self,
        view: u64,
        leaf_hashes: &[Digest],
        note: String,
        checkpoint: Checkpoint,
    ) -> Result<(), HistoryError> {
        self.tree.append_leaf_hashes(leaf_hashes);
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
        self.push_end(view, note);
        Ok(())
    }

    /// Drops every transaction after `size` and the batches ending after it (a
    /// rollback of speculative batches; `size` must end a batch and not be
    /// below what was released).
    pub fn truncate(&mut self, size: u64) -> Result<(), HistoryError> {
        if size > self.size() {
            return Ok(());
        }
        if size < self.starts_after {
            return Err(HistoryError::Replay {
                seqno: size,
                reason: format!(
                    "a rollback below seqno {}, where this history starts",
                    self.starts_after
                ),
            });
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
        let kept = self.batches.partition_point(|end| end.last_seqno <= size);
        self.batches.truncate(kept);
        while self
            .view_starts
            .last()
            .is_some_and(|(first, _)| *first > size)
        {
            self.view_starts.pop();
        }
        while self.notes.back().is_some_and(|(last, _)| *last > size) {
            self.notes.pop_back();
        }
        Ok(())
    }

    /// Frees what a node no longer needs in memory once `committed` is
    /// committed: the tree's lower levels more than `leaves_kept` leaves
    /// below it (in whole 64 KiB chunks), and the signed checkpoints older
    /// than the last [`NOTES_COMMITTED_KEPT`] committed batches. Cheap when
    /// there is nothing to free.
    pub fn release(&mut self, committed: u64, leaves_kept: u64) {
        let committed = committed.min(self.size());
        self.tree
            .forget_before(committed.saturating_sub(leaves_kept));
        let committed_notes = self.notes.partition_point(|(last, _)| *last <= committed);
        let excess = committed_notes.saturating_sub(NOTES_COMMITTED_KEPT);
        self.notes.drain(..excess);
    }

    /// The first leaf from which the tree's every level is in memory; proofs
    /// about older leaves need their tiles ([`HistoryReadError::NeedsTile`]).
    pub fn leaves_in_memory_from(&self) -> u64 {
        self.tree.window_start()
    }

    /// The root of the tree (the empty-tree root when empty).
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The root of the tree's first `size` leaves, if it has that many and
    /// they are within the window held in memory.
    pub fn root_at(&self, size: u64) -> Option<Digest> {
        self.tree.root_at(size).ok()
    }

    /// The batch ending exactly at `seqno`, if one does.
    pub fn batch_ending_at(&self, seqno: u64) -> Option<BatchSpan> {
        self.batch_of(seqno)
            .filter(|batch| batch.last_seqno == seqno)
    }

    /// The signed checkpoint of the batch ending at `seqno`, if it is one of
    /// the recent ones held in memory.
    pub fn note_ending_at(&self, seqno: u64) -> Option<&str> {
        let position = self.notes.partition_point(|(last, _)| *last < seqno);
        self.notes
            .get(position)
            .filter(|(last, _)| *last == seqno)
            .map(|(_, note)| note.as_str())
    }

    /// BFT mode: the batch ending at `seqno` was decided; its held note (the
    /// bare checkpoint body it was proposed with) becomes `certificate`, the
    /// body certified by the validators. Refused unless the certificate's
    /// text starts with the held body (same origin, size, root, view).
    pub fn certify(&mut self, seqno: u64, certificate: String) -> Result<(), HistoryError> {
        let position = self.notes.partition_point(|(last, _)| *last < seqno);
        let Some((_, held)) = self
            .notes
            .get_mut(position)
            .filter(|(last, _)| *last == seqno)
        else {
            return Err(HistoryError::Replay {
                seqno,
                reason: "no batch ends at this seqno".to_owned(),
            });
        };
        let text = crate::note::unverified_text(&certificate)?;
        let body = crate::note::unverified_text(held).unwrap_or(held.as_str());
        if !text.starts_with(body) {
            return Err(HistoryError::Replay {
                seqno,
                reason: "the certificate does not certify the checkpoint this node holds"
                    .to_owned(),
            });
        }
        *held = certificate;
        Ok(())
    }

    /// The batch holding `seqno` (none for a seqno before where a resumed
    /// history starts).
    pub fn batch_of(&self, seqno: u64) -> Option<BatchSpan> {
        if seqno <= self.starts_after {
            return None;
        }
        let position = self.batches.partition_point(|end| end.last_seqno < seqno);
        let end = self.batches.get(position)?;
        let first_seqno = match position.checked_sub(1) {
            Some(before) => self.batches.get(before)?.last_seqno + 1,
            None => 1,
        };
        (seqno >= first_seqno).then_some(BatchSpan {
            first_seqno,
            last_seqno: end.last_seqno,
            view: end.view,
        })
    }

    /// The id of the transaction at `seqno`, if it exists.
    pub fn transaction_id(&self, seqno: u64) -> Option<TransactionId> {
        if seqno <= self.starts_after {
            return (seqno > 0)
                .then(|| self.view_at(seqno))
                .flatten()
                .map(|view| TransactionId { view, seqno });
        }
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
    ) -> Result<BatchSpan, HistoryReadError> {
        if id.seqno <= self.starts_after {
            // Committed (everything a snapshot covers is), in the view the
            // view starts give; its batch is not known here.
            return match self.transaction_id(id.seqno) {
                Some(known) if known.view == id.view => Ok(BatchSpan {
                    first_seqno: id.seqno,
                    last_seqno: id.seqno,
                    view: id.view,
                }),
                Some(_) => Err(HistoryReadError::WrongView),
                None => Err(HistoryReadError::NotCommitted),
            };
        }
        let batch = self
            .batch_of(id.seqno)
            .ok_or(HistoryReadError::NotCommitted)?;
        if batch.view != id.view {
            return Err(HistoryReadError::WrongView);
        }
        if id.seqno > committed {
            return Err(HistoryReadError::NotCommitted);
        }
        Ok(batch)
    }

    /// Checks `leaves`, read back for `tile`, against the tree and adds them
    /// to `tiles` for the next attempt of a read.
    pub fn admit_tile(
        &self,
        tiles: &mut Tiles,
        tile: u64,
        leaves: Vec<Digest>,
    ) -> Result<(), HistoryReadError> {
        self.tree
            .admit_tile(tiles, tile, leaves)
            .map_err(|error| HistoryReadError::Unavailable(error.to_string()))
    }

    /// The receipt of committed transaction `id`, proven against the checkpoint
    /// signed right after its batch. `digests` are its leaf's components and
    /// `note` that batch's signed checkpoint, as the ledger records them: the
    /// leaf they make must be the tree's, and the note must sign the tree.
    pub fn receipt(
        &self,
        id: TransactionId,
        committed: u64,
        identity: &ServiceIdentity,
        digests: &TxDigests,
        note: &str,
        tiles: &Tiles,
    ) -> Result<Receipt, HistoryReadError> {
        let batch = self.check_committed(id, committed)?;
        self.check_held(id)?;
        let commit_evidence = identity.commit_evidence(id);
        let held = self
            .tree
            .leaf_hash_with(id.seqno - 1, tiles)
            .map_err(|error| HistoryReadError::from_tree(error, HistoryReadError::NotCommitted))?;
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
        // A note held in memory was signed or checked here already: parsing
        // its body is enough. One read back from the ledger is verified now
        // (its signature, and below, that it signs this tree).
        let held_note = self.note_ending_at(batch.last_seqno);
        let note = held_note.unwrap_or(note);
        let opened = match held_note {
            Some(held) => Checkpoint::parse_unverified(held),
            None => identity.open_checkpoint(note),
        };
        let checkpoint = opened.map_err(|error| {
            HistoryReadError::Unavailable(format!(
                "the signed checkpoint after transaction {id} does not open: {error}"
            ))
        })?;
        // Before where this history starts (a fetched batch), the batch is
        // known from the ledger only: its signed checkpoint gives its end.
        let fetched = id.seqno <= self.starts_after
            && (id.seqno..=self.filled_through).contains(&checkpoint.tree_size);
        let batch_end = if fetched {
            checkpoint.tree_size
        } else {
            batch.last_seqno
        };
        if checkpoint.tree_size != batch_end {
            return Err(HistoryReadError::Unavailable(format!(
                "the signed checkpoint after transaction {id} is for tree size {}, not {}",
                checkpoint.tree_size, batch_end
            )));
        }
        Receipt::build(
            &self.tree,
            tiles,
            id.seqno - 1,
            &components,
            &checkpoint,
            note.to_owned(),
        )
        .map_err(|error| match error {
            HistoryError::ReceiptMismatch(reason) => HistoryReadError::Unavailable(format!(
                "the ledger's signed checkpoint after transaction {id} is not this tree's: {reason}"
            )),
            other => HistoryReadError::from_tree(other, HistoryReadError::NotCommitted),
        })
    }

    /// The consistency proof between the trees of sizes `from` and `to`.
    pub fn consistency(
        &self,
        from: u64,
        to: u64,
        committed: u64,
        tiles: &Tiles,
    ) -> Result<Vec<Digest>, HistoryReadError> {
        if from > to || to > committed {
            return Err(HistoryReadError::InvalidRange);
        }
        self.tree
            .consistency_proof_with(from, to, tiles)
            .map_err(|error| HistoryReadError::from_tree(error, HistoryReadError::InvalidRange))
    }

    /// The signed checkpoint of the last batch at or below `committed`.
    pub fn latest_checkpoint(&self, committed: u64) -> Option<&str> {
        let position = self.notes.partition_point(|(last, _)| *last <= committed);
        position
            .checked_sub(1)
            .map(|index| self.notes[index].1.as_str())
    }
}

/// Checks `(first seqno, view)` pairs for the seqnos up to `last`: from
/// seqno 1, strictly increasing seqnos and views, none past `last`; returns
/// the view at `last`. (The ledger's resume entry is checked with it too.)
pub fn check_view_starts(view_starts: &[(u64, u64)], last: u64) -> Result<u64, HistoryError> {
    let refused = |reason: &str| HistoryError::Replay {
        seqno: last,
        reason: format!("the view starts of the skipped seqnos: {reason}"),
    };
    match view_starts.first() {
        Some((1, _)) => {}
        _ => return Err(refused("they do not start at seqno 1")),
    }
    let increasing = view_starts
        .windows(2)
        .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1);
    if !increasing {
        return Err(refused("seqnos and views must increase"));
    }
    match view_starts.last() {
        Some((first, view)) if *first <= last => Ok(*view),
        _ => Err(refused("one starts past the snapshot")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;
    use crate::{SigningKey, TILE_LEAVES};

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
        let note = history
            .push_batch(1, &leaves, &identity)
            .unwrap()
            .to_owned();
        let id = TransactionId { view: 1, seqno: 2 };
        let none = Tiles::none();
        let receipt = history
            .receipt(id, 3, &identity, &digests[1], &note, &none)
            .unwrap();
        let key = identity.signer().verifier().key().to_owned();
        assert_eq!(receipt.verify(&key).unwrap().tree_size, 3);
        assert_eq!(
            history.receipt(id, 1, &identity, &digests[1], &note, &none),
            Err(HistoryReadError::NotCommitted)
        );
        let other_view = TransactionId { view: 2, seqno: 2 };
        assert_eq!(
            history.receipt(other_view, 3, &identity, &digests[1], &note, &none),
            Err(HistoryReadError::WrongView)
        );
        // Another transaction's record (a misread ledger) is refused, not
        // turned into a receipt that fails to verify.
        assert!(matches!(
            history.receipt(id, 3, &identity, &digests[0], &note, &none),
            Err(HistoryReadError::Unavailable(_))
        ));
    }

    #[test]
    fn released_batches_give_the_same_receipts_from_what_the_ledger_holds() {
        let identity = identity();
        let mut history = HistoryState::new();
        let mut digests = Vec::new();
        let mut leaves = Vec::new();
        let mut notes = Vec::new();
        let batch_len = 100;
        let total = 3 * LEAVES_COMMITTED_KEPT_DEFAULT;
        for first in (1..=total).step_by(batch_len as usize) {
            let (batch_digests, batch_leaves) = batch(first, batch_len, &identity);
            notes.push(
                history
                    .push_batch(1, &batch_leaves, &identity)
                    .unwrap()
                    .to_owned(),
            );
            digests.extend(batch_digests);
            leaves.extend(batch_leaves);
        }
        let size = history.size();
        let id = TransactionId {
            view: 1,
            seqno: 1_500,
        };
        let none = Tiles::none();
        let before = history
            .receipt(id, size, &identity, &digests[1_499], &notes[14], &none)
            .unwrap();
        history.release(size, LEAVES_COMMITTED_KEPT_DEFAULT);
        assert!(history.notes.len() <= NOTES_COMMITTED_KEPT);
        assert!(history.note_ending_at(1_500).is_none());
        assert_eq!(
            history.latest_checkpoint(size),
            notes.last().map(String::as_str)
        );
        assert_eq!(
            history.batch_of(1_500).map(|span| span.first_seqno),
            Some(1_401)
        );
        // The tile of leaf 1 499 is read back, as a node reads it from its ledger.
        let needed = history.receipt(id, size, &identity, &digests[1_499], &notes[14], &none);
        let Err(HistoryReadError::NeedsTile(tile)) = needed else {
            panic!("expected a tile request, got {needed:?}");
        };
        assert_eq!(tile, 1_499 / TILE_LEAVES);
        let mut tiles = Tiles::none();
        let range = (tile * TILE_LEAVES) as usize..((tile + 1) * TILE_LEAVES) as usize;
        let mut forged = leaves[range.clone()].to_vec();
        forged[0] = Digest::ZERO;
        assert!(matches!(
            history.admit_tile(&mut tiles, tile, forged),
            Err(HistoryReadError::Unavailable(_))
        ));
        history
            .admit_tile(&mut tiles, tile, leaves[range].to_vec())
            .unwrap();
        let after = history
            .receipt(id, size, &identity, &digests[1_499], &notes[14], &tiles)
            .unwrap();
        assert_eq!(after, before);
        // A note read back that is not the batch's is refused.
        assert!(matches!(
            history.receipt(id, size, &identity, &digests[1_499], &notes[15], &tiles),
            Err(HistoryReadError::Unavailable(_))
        ));
        // Rolling back into released history is refused; at the edge it works.
        assert!(history.truncate(2_000).is_err());
        history.truncate(size - batch_len).unwrap();
        assert_eq!(
            history.latest_checkpoint(size),
            Some(notes[notes.len() - 2].as_str())
        );
    }

    #[test]
    fn a_replayed_batch_must_match_its_signed_checkpoint() {
        let identity = identity();
        let mut primary = HistoryState::new();
        let (_, leaves) = batch(1, 2, &identity);
        let note = primary
            .push_batch(1, &leaves, &identity)
            .unwrap()
            .to_owned();
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

    /// A history of `batches` batches of 100 transactions in view 1: it,
    /// the batches' signed checkpoints, and every transaction's leaf
    /// components with its leaf hash.
    fn hundreds(
        batches: u64,
        identity: &ServiceIdentity,
    ) -> (HistoryState, Vec<String>, Vec<(TxDigests, Digest)>) {
        let mut history = HistoryState::new();
        let mut notes = Vec::new();
        let mut all = Vec::new();
        for first_seqno in (1..=batches * 100).step_by(100) {
            let (digests, leaves) = batch(first_seqno, 100, identity);
            notes.push(history.push_batch(1, &leaves, identity).unwrap().to_owned());
            all.extend(digests.into_iter().zip(leaves));
        }
        (history, notes, all)
    }

    #[test]
    fn a_resumed_history_serves_what_follows_and_refuses_what_it_skipped() {
        let identity = identity();
        let (history, notes, all) = hundreds(5, &identity);
        let frontier = history.frontier_at(300).unwrap();
        assert!(HistoryState::resumed(&frontier, &[(1, 1)], notes[1].clone(), &identity).is_err());
        assert!(HistoryState::resumed(&frontier, &[(2, 1)], notes[2].clone(), &identity).is_err());
        let mut resumed =
            HistoryState::resumed(&frontier, &[(1, 1)], notes[2].clone(), &identity).unwrap();
        assert_eq!((resumed.size(), resumed.starts_after()), (300, 300));
        assert_eq!(resumed.root(), history.root_at(300).unwrap());
        assert_eq!(resumed.batch_of(300), None);
        // What a snapshot at the resume point is built from.
        assert_eq!(resumed.note_ending_at(300), Some(notes[2].as_str()));
        assert_eq!(resumed.frontier_at(300), Some(frontier.clone()));
        assert_eq!(
            resumed.transaction_id(120),
            Some(TransactionId {
                view: 1,
                seqno: 120
            })
        );
        for first_seqno in [301, 401] {
            let (_, leaves) = batch(first_seqno, 100, &identity);
            resumed.push_batch(1, &leaves, &identity).unwrap();
        }
        assert_eq!(resumed.root(), history.root());
        assert_eq!(resumed.batch_of(350), history.batch_of(350));
        let id = TransactionId {
            view: 1,
            seqno: 450,
        };
        let expected = history
            .receipt(id, 500, &identity, &all[449].0, &notes[4], &Tiles::none())
            .unwrap();
        let served = resumed
            .receipt(id, 500, &identity, &all[449].0, &notes[4], &Tiles::none())
            .unwrap();
        assert_eq!(served, expected);
        let skipped = TransactionId {
            view: 1,
            seqno: 120,
        };
        match resumed.receipt(
            skipped,
            500,
            &identity,
            &all[119].0,
            &notes[1],
            &Tiles::none(),
        ) {
            Err(HistoryReadError::Unavailable(reason)) => {
                assert!(reason.contains("joined from a snapshot"), "{reason}")
            }
            other => panic!("a skipped transaction's receipt: {other:?}"),
        }
        assert!(resumed.truncate(200).is_err());
        resumed.truncate(400).unwrap();
        assert_eq!(resumed.size(), 400);
    }

    #[test]
    fn a_restored_history_serves_like_the_one_it_was_saved_from() {
        let identity = identity();
        let (history, notes, all) = hundreds(10, &identity);
        let spans: Vec<BatchSpan> = (1..=1_000)
            .step_by(100)
            .map(|first_seqno| BatchSpan {
                first_seqno,
                last_seqno: first_seqno + 99,
                view: 1,
            })
            .collect();
        let frontier = history.frontier_at(700).unwrap();
        let restored =
            HistoryState::restore(spans[..7].to_vec(), &frontier, notes[6].clone(), &identity)
                .unwrap();
        assert_eq!(restored.size(), 700);
        assert_eq!(restored.root(), history.root_at(700).unwrap());
        assert_eq!(restored.latest_checkpoint(700), Some(notes[6].as_str()));
        assert_eq!(restored.batch_of(250), history.batch_of(250));
        // An old receipt, with its tile read back, is the original's.
        let id = TransactionId { view: 1, seqno: 5 };
        let expected = history
            .receipt(id, 700, &identity, &all[4].0, &notes[0], &Tiles::none())
            .unwrap();
        let mut tiles = Tiles::none();
        let leaves: Vec<Digest> = all[..256].iter().map(|(_, leaf)| *leaf).collect();
        restored.admit_tile(&mut tiles, 0, leaves).unwrap();
        let served = restored
            .receipt(id, 700, &identity, &all[4].0, &notes[0], &tiles)
            .unwrap();
        assert_eq!(served, expected);
        // A frontier or a note of another size, or spans that do not reach it,
        // are refused.
        assert!(
            HistoryState::restore(spans[..7].to_vec(), &frontier, notes[5].clone(), &identity)
                .is_err()
        );
        assert!(
            HistoryState::restore(spans[..6].to_vec(), &frontier, notes[6].clone(), &identity)
                .is_err()
        );
        let mut bent = frontier.clone();
        bent.tiles[1] = Digest::ZERO;
        assert!(
            HistoryState::restore(spans[..7].to_vec(), &bent, notes[6].clone(), &identity).is_err()
        );
    }
}
