//! [`LedgerLogReader`]: the read side of the Raft log over the ledger.
//!
//! Log entries come from the store's shared index (the slots of
//! `log_store.rs`): a Raft-only entry is copied from its slot, a batch is
//! served from memory while the store still holds it, and is otherwise read
//! back from the chunk file its durable location names. Each batch's
//! `prev_root` is filled in from the checkpoint root of the batch before it.
//!
//! Invariant kept: the state lock is held only to copy out the slots and the
//! folder a read needs; listing the chunk files, opening and reading them and
//! decoding the frames all happen after it is released, so a read never holds
//! up the ledger writer's completions or openraft's appends. A chunk renamed
//! while a read is under way (it closed or committed) is looked up again.

use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftLogReader;
use openraft::{Entry, EntryPayload};
use stele_ledger::{chunk, BatchLocation};

use super::{io_error, lock, log_id, Shared, Slot, StorageResult};
use crate::raft::meta::ControlRecord;
use crate::raft::types::{ExecutedBatch, SteleEntry, SteleLogId, SteleRaft, SteleVote};
use crate::ConsensusError;

/// Reads log entries; cheap to clone, shares the store's index.
#[derive(Debug, Clone)]
pub struct LedgerLogReader {
    pub(super) shared: Shared,
    /// The chunk listing the single-batch reads ([`Self::batch_holding`])
    /// reuse: listing the folder per receipt was ~9% of a node serving them.
    pub(super) listing: Arc<Mutex<Chunks>>,
}

/// The ledger's chunk files, listed once and reused across the reads of one
/// call (a listing per batch read dominated reading long stretches of the log).
pub(crate) type Chunks = Vec<(chunk::ChunkName, PathBuf)>;

/// Listings tried before a chunk is reported missing.
const OPEN_CHUNK_ATTEMPTS: usize = 3;

/// Reads the batch at `location` and its signature from the ledger folder.
fn read_location(
    dir: &Path,
    location: &BatchLocation,
    chunks: &mut Chunks,
) -> Result<ExecutedBatchParts, ConsensusError> {
    let (file, path) = open_chunk(dir, location.chunk_first, chunks)?;
    stele_ledger::read_batch_at(&file, &path, location).map_err(|error| {
        ConsensusError::RaftStorage {
            path: dir.to_owned(),
            reason: error.to_string(),
        }
    })
}

/// Opens the chunk starting at `chunk_first`. A chunk is renamed when it
/// closes or commits: the folder is listed again if the chunk is not in the
/// listing or moved since (an open file stays readable through a rename).
pub(crate) fn open_chunk(
    dir: &Path,
    chunk_first: u64,
    chunks: &mut Chunks,
) -> Result<(File, PathBuf), ConsensusError> {
    for attempt in 0..OPEN_CHUNK_ATTEMPTS {
        if attempt > 0 || !chunks.iter().any(|(name, _)| name.first == chunk_first) {
            match chunk::list(dir) {
                Ok(listed) => *chunks = listed,
                // A listing taken while a chunk is renamed (closed, committed
                // or archived) may see it twice or not at all: list again.
                Err(_) if attempt + 1 < OPEN_CHUNK_ATTEMPTS => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let Some((_, path)) = chunks.iter().find(|(name, _)| name.first == chunk_first) else {
            // Listed mid-rename, or absent: list again while attempts last.
            if attempt + 1 < OPEN_CHUNK_ATTEMPTS {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            continue;
        };
        match File::open(path) {
            Ok(file) => return Ok((file, path.clone())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(ConsensusError::RaftStorage {
                    path: path.clone(),
                    reason: error.to_string(),
                })
            }
        }
    }
    Err(ConsensusError::RaftStorage {
        path: dir.to_owned(),
        reason: format!("no chunk starts at seqno {chunk_first}"),
    })
}

type ExecutedBatchParts = (stele_ledger::BatchEntry, stele_ledger::SignatureEntry);

/// The root a signed checkpoint names (its body precedes the blank line).
pub(super) fn checkpoint_root(note: &str) -> Result<[u8; 32], ConsensusError> {
    let body = note.split_once("\n\n").map_or(note, |(body, _)| body);
    let checkpoint = stele_history::Checkpoint::parse_body(&format!("{body}\n"))?;
    Ok(*checkpoint.root.as_bytes())
}

/// RFC 9162 root of the empty tree: SHA-256 of nothing.
pub(super) fn empty_root() -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest([]).into()
}
impl LedgerLogReader {
    /// The Raft-only entries at or before log index `index`, in log order.
    pub(crate) fn controls_through(&self, index: u64) -> Vec<ControlRecord> {
        let state = lock(&self.shared);
        state
            .meta
            .controls
            .iter()
            .filter(|control| control.entry.log_id.index <= index)
            .cloned()
            .collect()
    }

    /// Log entries `start..end` (the batches read from the ledger).
    pub(crate) fn read(&self, start: u64, end: u64) -> Result<Vec<SteleEntry>, ConsensusError> {
        self.entries(start, end)
    }

    /// From `start`, the run of log entries whose batches end at or before
    /// `seqno` (what a start need not read back when the state already holds
    /// those batches): the log index of its last batch, if any, and the
    /// Raft-only entries before that batch, in order.
    pub(crate) fn skippable(
        &self,
        seqno: u64,
        start: u64,
        end: u64,
    ) -> (Option<u64>, Vec<SteleEntry>) {
        let state = lock(&self.shared);
        let (mut last_held, mut controls, mut controls_before) = (None, Vec::new(), 0);
        for (index, slot) in state.slots.indexed_range(start, end) {
            match slot {
                Slot::Control(entry) => controls.push((**entry).clone()),
                slot if slot.last_seqno().is_some_and(|last| last <= seqno) => {
                    last_held = Some(index);
                    controls_before = controls.len();
                }
                _ => break,
            }
        }
        // Raft-only entries after the last held batch may not be committed.
        controls.truncate(controls_before);
        (last_held, controls)
    }

    /// Every logged batch ending after `seqno`, in log order (the uncommitted
    /// tail when `seqno` is the commit point).
    pub fn batches_after(&self, seqno: u64) -> Result<Vec<ExecutedBatch>, ConsensusError> {
        let (first, end) = {
            let state = lock(&self.shared);
            let first = state
                .slots
                .indexed()
                .find(|(_, slot)| slot.last_seqno().is_some_and(|last| last > seqno))
                .map(|(index, _)| index);
            (first, state.slots.end())
        };
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        // `entries` fills in each batch's prev_root from the batch before it.
        Ok(self
            .entries(first, end)?
            .into_iter()
            .filter_map(|entry| match entry.payload {
                EntryPayload::Normal(batch) => Some(batch),
                _ => None,
            })
            .collect())
    }

    /// The logged batch holding `seqno` (its `prev_root` left zero), or
    /// `None` past the log's end. A binary search over the slots (their
    /// seqnos increase; a Raft-only slot takes the next batch slot's), then
    /// one read with the lock released.
    pub fn batch_holding(&self, seqno: u64) -> Result<Option<ExecutedBatch>, ConsensusError> {
        let (dir, slot) = {
            let state = lock(&self.shared);
            let slots = state.slots.range(0, u64::MAX);
            // The last seqno of the first batch slot at or after `index`.
            let last_from = |index: usize| slots[index..].iter().find_map(Slot::last_seqno);
            let (mut low, mut high) = (0, slots.len());
            while low < high {
                let middle = low + (high - low) / 2;
                if last_from(middle).is_some_and(|last| last < seqno) {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            let found = slots[low..]
                .iter()
                .find(|slot| slot.last_seqno().is_some())
                .cloned();
            // At or before the log's base: a batch the ledger holds from
            // before it (fetched into its gap, or left by a later resume).
            let before = &state.before_base;
            let position = before.partition_point(|location| location.last_seqno < seqno);
            let found = match before.get(position) {
                Some(location) if location.first_seqno <= seqno => Some(Slot::Batch {
                    view: location.view,
                    location: Some(*location),
                    pending: None,
                    root: None,
                }),
                _ => found,
            };
            (state.dir.clone(), found)
        };
        let Some(slot) = slot else {
            return Ok(None);
        };
        // Taken, not shared, while the read runs: a read at the same time
        // finds it empty and lists the folder itself.
        let mut chunks = std::mem::take(&mut *crate::sync::lock(&self.listing));
        let batch = self.batch_of(&dir, &slot, &mut chunks);
        *crate::sync::lock(&self.listing) = chunks;
        let batch = batch?;
        Ok(batch.batch.record_of(seqno).is_some().then_some(batch))
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<SteleEntry>, ConsensusError> {
        self.entries_within(start, end, usize::MAX)
    }

    /// Log entries `start..end`, stopping before the entry that would take
    /// their estimated encoded size past `bytes_max` (at least one entry).
    pub(super) fn entries_within(
        &self,
        start: u64,
        end: u64,
        bytes_max: usize,
    ) -> Result<Vec<SteleEntry>, ConsensusError> {
        // Copy what is needed and read files without holding the lock.
        let (dir, slots) = {
            let state = lock(&self.shared);
            let mut end = end.min(state.slots.end());
            let start = start.clamp(state.slots.base(), end.max(state.slots.base()));
            if bytes_max != usize::MAX {
                let mut bytes = 0_usize;
                for (offset, slot) in state.slots.range(start, end).iter().enumerate() {
                    bytes = bytes.saturating_add(slot.bytes_estimate());
                    if offset > 0 && bytes > bytes_max {
                        end = start + offset as u64;
                        break;
                    }
                }
            }
            let previous_batch = state
                .slots
                .range(0, start)
                .iter()
                .rev()
                .find(|slot| matches!(slot, Slot::Batch { .. }))
                .cloned();
            let base_root = state.meta.log_base.map(|base| base.root);
            let slots: Vec<Slot> = state.slots.range(start, end).to_vec();
            (state.dir.clone(), (start, previous_batch, base_root, slots))
        };
        let (start, previous_batch, base_root, slots) = slots;
        let mut chunks = Chunks::new();
        let mut prev_root = match previous_batch {
            None => base_root.unwrap_or_else(empty_root),
            Some(Slot::Batch {
                root: Some(root), ..
            }) => root,
            Some(slot) => checkpoint_root(
                &self
                    .batch_of(&dir, &slot, &mut chunks)?
                    .signature
                    .checkpoint,
            )?,
        };
        let mut entries = Vec::with_capacity(slots.len());
        for (offset, slot) in slots.iter().enumerate() {
            let index = start + offset as u64;
            match slot {
                Slot::Control(entry) => entries.push((**entry).clone()),
                Slot::Batch { view, root, .. } => {
                    let mut executed = self.batch_of(&dir, slot, &mut chunks)?;
                    executed.prev_root = prev_root;
                    prev_root = match root {
                        Some(root) => *root,
                        None => checkpoint_root(&executed.signature.checkpoint)?,
                    };
                    entries.push(Entry {
                        log_id: log_id(*view, index),
                        payload: EntryPayload::Normal(executed),
                    });
                }
            }
        }
        Ok(entries)
    }

    pub(super) fn batch_of(
        &self,
        dir: &Path,
        slot: &Slot,
        chunks: &mut Chunks,
    ) -> Result<ExecutedBatch, ConsensusError> {
        match slot {
            Slot::Batch {
                pending: Some(batch),
                ..
            } => Ok((**batch).clone()),
            Slot::Batch {
                location: Some(location),
                ..
            } => {
                let (batch, signature) = read_location(dir, location, chunks)?;
                Ok(ExecutedBatch {
                    batch,
                    signature,
                    prev_root: [0; 32],
                })
            }
            _ => Err(ConsensusError::RaftStorage {
                path: dir.to_owned(),
                reason: "a batch slot with neither entry nor location".to_owned(),
            }),
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Most bytes (estimated) of the entries one replication read returns: half
/// a peer message, so an AppendEntries of them fits one (this replaces 0.9's
/// `PayloadTooLarge` retry with fewer entries).
pub const REPLICATION_READ_BYTES_MAX: usize = super::super::network::PEER_MESSAGE_BYTES_MAX / 2;

impl Slot {
    /// About the encoded size of the entry in this slot: the frames it
    /// takes in the ledger once durable, else its records' sizes.
    fn bytes_estimate(&self) -> usize {
        const OVERHEAD: usize = 512;
        match self {
            Slot::Batch {
                location: Some(location),
                ..
            } => usize::try_from(location.end - location.offset).unwrap_or(usize::MAX),
            Slot::Batch {
                pending: Some(batch),
                ..
            } => batch.batch.txs.iter().fold(OVERHEAD, |bytes, tx| {
                bytes + tx.command.len() + tx.write_set.len() + 64 + 16
            }),
            _ => OVERHEAD,
        }
    }
}

impl RaftLogReader<SteleRaft> for LedgerLogReader {
    async fn try_get_log_entries<
        RB: RangeBounds<u64> + Clone + std::fmt::Debug + openraft::OptionalSend,
    >(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<SteleEntry>> {
        let (start, end) = bounds(&range);
        self.entries(start, end).map_err(io_error)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<SteleVote>> {
        Ok(lock(&self.shared).meta.vote)
    }

    /// Entries `start..end` for replication, capped at
    /// [`REPLICATION_READ_BYTES_MAX`] (at least one).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<SteleEntry>> {
        self.entries_within(start, end, REPLICATION_READ_BYTES_MAX)
            .map_err(io_error)
    }

    /// The last log id of each term in `range`, from the slots (openraft's
    /// default reads entries back in a binary search).
    async fn get_key_log_ids(
        &mut self,
        range: std::ops::RangeInclusive<SteleLogId>,
    ) -> StorageResult<Vec<SteleLogId>> {
        let (first, last) = (range.start().index, range.end().index);
        let state = lock(&self.shared);
        let mut keys: Vec<SteleLogId> = Vec::new();
        for index in first..=last {
            let Some(slot) = state.slots.get(index) else {
                return Err(io_error(ConsensusError::RaftStorage {
                    path: state.dir.clone(),
                    reason: format!("no log entry at index {index} (the log ends before {last})"),
                }));
            };
            let id = match slot {
                Slot::Batch { view, .. } => log_id(*view, index),
                Slot::Control(entry) => entry.log_id,
            };
            match keys.last_mut() {
                Some(key) if key.leader_id == id.leader_id => *key = id,
                _ => keys.push(id),
            }
        }
        Ok(keys)
    }
}
