//! [`LedgerLogStore`]: openraft's `RaftLogStorage` over the ledger.
//!
//! Normal entries are ledger batches (appended through [`GroupCommit`], read back
//! through the batch locations the writer reports); blank and membership entries
//! and the vote live in the [`RaftMeta`] file. A truncation cuts the ledger
//! suffix and calls the truncate hook with each cut batch, which rolls the
//! replica core's KV versions and history back (`Replica::truncated`).

use std::ops::RangeBounds;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, EntryPayload, Vote};
use stele_ledger::{BatchLocation, GroupCommit, Ledger};

use super::meta::{ControlRecord, RaftMeta};
pub(crate) use super::types::log_id;
use super::types::{ExecutedBatch, SteleEntry, SteleLogId, SteleRaft, SteleVote};
use crate::ConsensusError;

type StorageResult<T> = Result<T, std::io::Error>;

/// One Raft log position.
#[derive(Debug, Clone)]
enum Slot {
    /// A ledger batch: where it is once durable, and the entry until it is
    /// both durable and applied (so applying it does not read it back from
    /// disk); the root its checkpoint signs, once known (the next batch's
    /// `prev_root`).
    Batch {
        view: u64,
        location: Option<BatchLocation>,
        pending: Option<Arc<ExecutedBatch>>,
        root: Option<[u8; 32]>,
    },
    /// A blank or membership entry (its copy is in the meta file).
    Control(Box<SteleEntry>),
}

impl Slot {
    /// The last seqno of a batch slot (from its location once durable, else
    /// from the entry held in memory); `None` for a Raft-only entry.
    fn last_seqno(&self) -> Option<u64> {
        match self {
            Slot::Batch {
                location: Some(location),
                ..
            } => Some(location.last_seqno),
            Slot::Batch {
                pending: Some(batch),
                ..
            } => Some(batch.batch.last_seqno()),
            _ => None,
        }
    }
}

struct State {
    dir: PathBuf,
    /// The log's entries from its base on (`slots.rs`).
    slots: Slots,
    /// The ledger's batches at or before the base's seqno, in order: those
    /// fetched into a resumed ledger's gap and those a later resume left
    /// behind (not log entries; read for receipts and for peers' fetches).
    before_base: Vec<BatchLocation>,
    /// Log indices before this one hold no batch in memory that is durable
    /// (where [`LogWriter::release_through`] resumes).
    released: u64,
    meta: RaftMeta,
    /// The committed log id the meta file holds on disk (`meta.committed`
    /// may be ahead while a save runs): what the ledger may be marked
    /// committed up to, since a restart takes its commit point from the file.
    committed_saved: Option<SteleLogId>,
    /// Told the last seqno of each batch this node makes durable.
    on_durable: Option<DurableHook>,
}

/// Runs (on the ledger writer) with the last seqno of each batch made durable.
pub type DurableHook = Arc<dyn Fn(u64) + Send + Sync>;

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("dir", &self.dir)
            .field("slots", &self.slots.count())
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// The index and the meta behind one lock, and a second lock that orders the
/// saves of the meta file (see [`change_and_save`]).
#[derive(Debug)]
struct Index {
    state: Mutex<State>,
    saving: Mutex<()>,
    /// Woken when the log starts at a new base (a resume transfer was
    /// installed: the ledger may skip seqnos to fetch, `fetch.rs`).
    rebased: tokio::sync::Notify,
}

type Shared = Arc<Index>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    crate::sync::lock(&shared.state)
}

/// Applies `change` to the state, then saves the meta durably with the state's
/// lock released: the ledger writer's callbacks and openraft's appends take
/// that lock, and a save is two fsyncs (2-5 ms here, up to 20 ms while a
/// snapshot file was being written). Saves take `saving` first and copy the
/// meta after it, so they land in order and never put back an older meta.
fn change_and_save<R>(
    shared: &Shared,
    change: impl FnOnce(&mut State) -> R,
) -> Result<R, ConsensusError> {
    let _saving = crate::sync::lock(&shared.saving);
    let (result, meta, dir) = {
        let mut state = lock(shared);
        let result = change(&mut state);
        (result, state.meta.clone(), state.dir.clone())
    };
    meta.save(&dir)?;
    // Saves run one at a time (`saving`): this is the file's content now.
    lock(shared).committed_saved = meta.committed;
    Ok(result)
}

/// openraft 0.10's storage error: an `io::Error` carrying Stele's.
pub(crate) fn io_error(error: ConsensusError) -> std::io::Error {
    std::io::Error::other(error)
}

/// The Raft log storage of one node.
pub struct LedgerLogStore {
    reader: LedgerLogReader,
    log: LogWriter,
    on_truncate: Option<TruncateHook>,
    committed_saved_at: Option<std::time::Instant>,
    /// Set while a background save of the committed log id runs: at most one
    /// at a time, so a slow disk cannot pile saves up in tokio's pool.
    committed_saving: Arc<AtomicBool>,
}

/// Writes the log: appends, cuts. Shared by the store (openraft's calls) and
/// the snapshot installer (`install.rs`), which rewrites the log up to a
/// received snapshot; openraft never calls both at once (an install runs while
/// the log is idle for it).
#[derive(Clone)]
pub struct LogWriter {
    shared: Shared,
    writer: Arc<GroupCommit>,
}

/// Runs before a truncation, with the first batch it drops.
pub type TruncateHook = Box<dyn Fn(&ExecutedBatch) + Send + Sync>;

/// Least time between two saves of the committed log id: it is only a hint for
/// a restart (a lower bound is always safe), and each save is two fsyncs.
pub const COMMITTED_SAVE_INTERVAL_MS: u64 = 200;

/// Time between two passes of the ledger's upkeep (`LogWriter::spawn_upkeep`:
/// the commit point saved and marked, chunks archived with `[ledger]
/// committed_chunks_live`): a pass is a request or two to the ledger's
/// writer, then a copy per chunk to move.
pub const ARCHIVE_PASS_INTERVAL_MS: u64 = 1_000;

/// Finishes a recorded truncation and drops Raft-only entries recorded past the
/// ledger's end; returns the settled meta.
fn settle(ledger: &mut Ledger) -> Result<RaftMeta, ConsensusError> {
    let dir = ledger.dir().to_owned();
    let mut meta = RaftMeta::load(&dir)?;
    // A resume entry past the log's base: a resume transfer's install was
    // cut short after the ledger's step and before the log's (`install.rs`).
    // Undone: the ledger is back at what the log holds, and the leader sends
    // the snapshot again.
    let base_seqno = base_seqno(meta.log_base);
    while let Some(resume) = ledger
        .resumptions()
        .last()
        .filter(|resume| resume.seqno > base_seqno)
        .cloned()
    {
        tracing::warn!(
            seqno = resume.seqno,
            "undoing the ledger's resume entry of an install cut short"
        );
        ledger.drop_last_resumption()?;
    }
    if let Some(seqno) = meta.pending_truncate.take() {
        if seqno < ledger.last_seqno() {
            ledger.truncate(seqno)?;
        }
        meta.save(&dir)?;
    }
    let batches = batches_after_base(ledger, meta.log_base).len() as u64;
    let before = meta.controls.len();
    meta.controls
        .retain(|control| control.batches_before <= batches);
    if meta.controls.len() != before {
        meta.save(&dir)?;
    }
    Ok(meta)
}

/// The last seqno known committed in `ledger` (from the saved committed log id:
/// a lower bound), after settling its meta file as [`LedgerLogStore::open`] does.
pub fn committed_seqno(ledger: &mut Ledger) -> Result<u64, ConsensusError> {
    let meta = settle(ledger)?;
    let base_seqno = base_seqno(meta.log_base);
    let Some(committed) = meta.committed else {
        return Ok(base_seqno);
    };
    let first_index = log_start(meta.log_base);
    if committed.index < first_index {
        return Ok(base_seqno);
    }
    let controls_at_or_before = meta
        .controls
        .iter()
        .filter(|control| control.entry.log_id.index <= committed.index)
        .count() as u64;
    let batches = (committed.index + 1 - first_index).saturating_sub(controls_at_or_before);
    Ok(batches
        .checked_sub(1)
        .and_then(|last| batches_after_base(ledger, meta.log_base).get(last as usize))
        .map_or(base_seqno, |location| location.last_seqno))
}

/// The first log index a log with `base` holds.
fn log_start(base: Option<LogBase>) -> u64 {
    base.map_or(0, |base| base.last_log_id.index + 1)
}

/// The ledger seqno a log with `base` starts after (0 for a log from index 0).
fn base_seqno(base: Option<LogBase>) -> u64 {
    base.map_or(0, |base| base.seqno)
}

/// The ledger's batches the log holds: those after its base's seqno (a
/// ledger that resumed at a snapshot may hold batches fetched before it,
/// which are not in the log).
fn batches_after_base(ledger: &Ledger, base: Option<LogBase>) -> &[BatchLocation] {
    let batches = ledger.batches();
    let seqno = base_seqno(base);
    &batches[batches.partition_point(|location| location.last_seqno <= seqno)..]
}

impl std::fmt::Debug for LedgerLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerLogStore")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl LedgerLogStore {
    /// Takes over an opened ledger: finishes a recorded truncation, drops Raft-only
    /// entries recorded past the ledger's end, rebuilds the log index and starts
    /// the ledger's writer thread.
    pub fn open(mut ledger: Ledger) -> Result<Self, ConsensusError> {
        let dir = ledger.dir().to_owned();
        let meta = settle(&mut ledger)?;
        let batches = batches_after_base(&ledger, meta.log_base).to_vec();
        let before_base = ledger.batches()[..ledger.batches().len() - batches.len()].to_vec();
        let first_index = log_start(meta.log_base);
        let mut slots = Vec::with_capacity(batches.len() + meta.controls.len());
        let mut controls = meta.controls.iter().peekable();
        for (position, location) in batches.iter().enumerate() {
            while let Some(control) =
                controls.next_if(|control| control.batches_before == position as u64)
            {
                slots.push(Slot::Control(Box::new(control.entry.clone())));
            }
            slots.push(Slot::Batch {
                view: location.view,
                location: Some(*location),
                pending: None,
                root: None,
            });
        }
        slots.extend(controls.map(|control| Slot::Control(Box::new(control.entry.clone()))));
        let slots = Slots::new(first_index, slots);
        for (index, slot) in slots.indexed() {
            if let Slot::Control(entry) = slot {
                if entry.log_id.index != index {
                    return Err(ConsensusError::RaftStorage {
                        path: dir.clone(),
                        reason: format!(
                            "raft entry {} recorded at log index {index}",
                            entry.log_id
                        ),
                    });
                }
            }
        }
        let writer = Arc::new(GroupCommit::spawn(ledger)?);
        let shared = Arc::new(Index {
            state: Mutex::new(State {
                dir,
                released: first_index,
                slots,
                before_base,
                committed_saved: meta.committed,
                meta,
                on_durable: None,
            }),
            saving: Mutex::new(()),
            rebased: tokio::sync::Notify::new(),
        });
        Ok(LedgerLogStore {
            reader: LedgerLogReader {
                shared: Arc::clone(&shared),
                listing: Arc::default(),
            },
            log: LogWriter { shared, writer },
            on_truncate: None,
            committed_saved_at: None,
            committed_saving: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A reader sharing this store's index.
    pub fn reader(&self) -> LedgerLogReader {
        self.reader.clone()
    }

    /// A writer sharing this store's index and ledger writer (for installing
    /// snapshots).
    pub fn log_writer(&self) -> LogWriter {
        self.log.clone()
    }

    /// Sets what is told the last seqno of each batch made durable (the
    /// executor cuts its next batch once the log is idle).
    pub fn set_on_durable(&mut self, hook: DurableHook) {
        lock(&self.reader.shared).on_durable = Some(hook);
    }

    /// Sets what runs before a truncation with the first batch it drops (the
    /// engine rolls its speculative state back if it holds that batch).
    pub fn set_on_truncate(&mut self, hook: TruncateHook) {
        self.on_truncate = Some(hook);
    }

    /// If the saved vote says `node_id` led (a committed vote for itself),
    /// turns it into an uncommitted one of the same term and returns that term.
    /// Openraft would otherwise resume leading at start in the old view and
    /// hand out again the ids it gave before a crash and lost; with this, a
    /// restart elects anew, in a new view. In memory only: lowering a vote to
    /// the uncommitted one of the same leader grants nobody else anything, and
    /// the election saves its own, higher vote.
    pub fn resign_saved_leadership(&mut self, node_id: u64) -> Option<u64> {
        let mut state = lock(&self.reader.shared);
        let vote = state.meta.vote?;
        if !vote.is_committed() || vote.leader_id().voted_for != node_id {
            return None;
        }
        let term = vote.leader_id().term;
        state.meta.vote = Some(Vote::new(term, node_id));
        Some(term)
    }

    fn save_meta(&self, change: impl FnOnce(&mut RaftMeta)) -> Result<(), ConsensusError> {
        change_and_save(&self.reader.shared, |state| change(&mut state.meta))
    }
}

impl State {
    fn last_log_id(&self) -> Option<SteleLogId> {
        let Some((index, slot)) = self.slots.indexed().next_back() else {
            return self.meta.log_base.map(|base| base.last_log_id);
        };
        Some(match slot {
            Slot::Batch { view, .. } => log_id(*view, index),
            Slot::Control(entry) => entry.log_id,
        })
    }

    /// The seqno the log's base ends at (0 for a log from index 0).
    fn base_seqno(&self) -> u64 {
        base_seqno(self.meta.log_base)
    }

    /// Batches the log holds before log index `index` (from its base).
    fn batches_before(&self, index: u64) -> u64 {
        self.slots
            .range(0, index)
            .iter()
            .filter(|slot| matches!(slot, Slot::Batch { .. }))
            .count() as u64
    }

    /// The log id at `index`, if the log holds it (or its base ends there).
    fn log_id_at(&self, index: u64) -> Option<SteleLogId> {
        match self.slots.get(index) {
            Some(Slot::Batch { view, .. }) => Some(log_id(*view, index)),
            Some(Slot::Control(entry)) => Some(entry.log_id),
            None => self
                .meta
                .log_base
                .map(|base| base.last_log_id)
                .filter(|id| id.index == index),
        }
    }
}

impl RaftLogReader<SteleRaft> for LedgerLogStore {
    async fn try_get_log_entries<
        RB: RangeBounds<u64> + Clone + std::fmt::Debug + openraft::OptionalSend,
    >(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<SteleEntry>> {
        self.reader.try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<SteleVote>> {
        self.reader.read_vote().await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<SteleEntry>> {
        self.reader.limited_get_log_entries(start, end).await
    }

    async fn get_key_log_ids(
        &mut self,
        range: std::ops::RangeInclusive<SteleLogId>,
    ) -> StorageResult<Vec<SteleLogId>> {
        self.reader.get_key_log_ids(range).await
    }
}

impl RaftLogStorage<SteleRaft> for LedgerLogStore {
    type LogReader = LedgerLogReader;

    async fn get_log_state(&mut self) -> StorageResult<LogState<SteleRaft>> {
        let state = lock(&self.reader.shared);
        let last_purged_log_id = state.meta.last_purged;
        Ok(LogState {
            last_purged_log_id,
            // Never behind the purge point (a purge may pass the last entry).
            last_log_id: state.last_log_id().max(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &SteleVote) -> StorageResult<()> {
        let vote = *vote;
        self.save_meta(|meta| meta.vote = Some(vote))
            .map_err(io_error)
    }

    async fn save_committed(&mut self, committed: Option<SteleLogId>) -> StorageResult<()> {
        let due = self.committed_saved_at.is_none_or(|at| {
            at.elapsed() >= std::time::Duration::from_millis(COMMITTED_SAVE_INTERVAL_MS)
        });
        if !due {
            return Ok(());
        }
        if self.committed_saving.swap(true, Ordering::AcqRel) {
            // One is still running; a later call saves a later id.
            return Ok(());
        }
        self.committed_saved_at = Some(std::time::Instant::now());
        // Saved in the background: it is a hint for a restart, and openraft's
        // core task (and the tokio worker under it) waited for the fsyncs.
        let shared = Arc::clone(&self.reader.shared);
        let saving = Arc::clone(&self.committed_saving);
        tokio::task::spawn_blocking(move || {
            // Never lowered: a snapshot may have raised it already.
            let saved = change_and_save(&shared, |state| {
                state.meta.committed = state.meta.committed.max(committed);
            });
            saving.store(false, Ordering::Release);
            if let Err(error) = saved {
                tracing::warn!(%error, "cannot save the committed log id");
            }
        });
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<SteleLogId>> {
        Ok(lock(&self.reader.shared).meta.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<SteleRaft>) -> StorageResult<()>
    where
        I: IntoIterator<Item = SteleEntry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        self.append_with(entries.into_iter().collect(), move |result| {
            callback.io_completed(result);
        })
        .await
        .map_err(io_error)
    }

    /// Keeps `last_log_id` and drops every entry after it (openraft 0.9's
    /// `truncate(first dropped)`, with first dropped = last + 1).
    async fn truncate_after(&mut self, last_log_id: Option<SteleLogId>) -> StorageResult<()> {
        let first_dropped = last_log_id.map_or(0, |last| last.index + 1);
        if let Some(hook) = &self.on_truncate {
            let (dir, first_dropped) = {
                let state = lock(&self.reader.shared);
                let slot = state
                    .slots
                    .range(first_dropped, u64::MAX)
                    .iter()
                    .find(|slot| matches!(slot, Slot::Batch { .. }))
                    .cloned();
                (state.dir.clone(), slot)
            };
            if let Some(slot) = first_dropped {
                let batch = self
                    .reader
                    .batch_of(&dir, &slot, &mut Chunks::new())
                    .map_err(io_error)?;
                hook(&batch);
            }
        }
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.cut(first_dropped))
            .await
            .map_err(std::io::Error::other)?
            .map(|_last_kept_seqno| ())
            .map_err(io_error)
    }

    async fn purge(&mut self, log_id: SteleLogId) -> StorageResult<()> {
        // Compaction only: the ledger keeps every batch (it is the audit record);
        // the purge point just bounds what openraft may read.
        // The Raft-only entries stay: they place the batches at their log
        // indices, and a snapshot sent on carries them.
        self.save_meta(|meta| meta.last_purged = Some(log_id))
            .map_err(io_error)
    }
}

/// Called once every entry of an `append` call is durable (or failed).
pub(crate) type Flushed = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

impl LedgerLogStore {
    /// Appends `entries` as `RaftLogStorage::append` does and waits until they are
    /// durable. For tests and tools.
    pub async fn append_and_wait(
        &mut self,
        entries: Vec<SteleEntry>,
    ) -> Result<(), ConsensusError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.append_with(entries, move |result| {
            // The waiter only goes away if it was cancelled; nothing to tell then.
            let _ = sender.send(result);
        })
        .await?;
        let dir = lock(&self.reader.shared).dir.clone();
        let fail = |reason: String| ConsensusError::RaftStorage {
            path: dir.clone(),
            reason,
        };
        receiver
            .await
            .map_err(|error| fail(error.to_string()))?
            .map_err(|error| fail(error.to_string()))
    }

    /// Batches held in memory (from their append until they are both durable
    /// and applied).
    pub fn cached_batches(&self) -> usize {
        lock(&self.reader.shared)
            .slots
            .indexed()
            .filter(|(_, slot)| {
                matches!(
                    slot,
                    Slot::Batch {
                        pending: Some(_),
                        ..
                    }
                )
            })
            .count()
    }

    async fn append_with(
        &mut self,
        entries: Vec<SteleEntry>,
        flushed: impl FnOnce(Result<(), std::io::Error>) + Send + 'static,
    ) -> Result<(), ConsensusError> {
        let flushed: Flushed = Box::new(flushed);
        self.append_entries(entries, flushed)
    }

    fn append_entries(
        &mut self,
        entries: Vec<SteleEntry>,
        flushed: Flushed,
    ) -> Result<(), ConsensusError> {
        // The completion of the last batch queued covers every earlier one: the
        // writer completes in order, and a failure poisons every later write.
        let mut last_batch: Option<(u64, ExecutedBatch)> = None;
        for entry in entries {
            let index = entry.log_id.index;
            if let Some((index, batch)) = last_batch.take() {
                self.log.queue(index, batch, None)?;
            }
            match entry.payload {
                EntryPayload::Normal(batch) => {
                    // The ledger records a batch's log term as its view: a batch
                    // logged under another term would give the log two ids for
                    // one entry. Refusing is a storage error, which stops the
                    // Raft engine (fail-stop) instead of corrupting the log.
                    if batch.batch.view != entry.log_id.leader_id.term {
                        return Err(ConsensusError::Stopped(format!(
                            "batch at log index {index} has view {} but was proposed in term {}",
                            batch.batch.view, entry.log_id.leader_id.term
                        )));
                    }
                    last_batch = Some((index, batch));
                }
                payload => {
                    let entry = Entry {
                        log_id: entry.log_id,
                        payload,
                    };
                    self.log.append_control(entry)?;
                }
            }
        }
        match last_batch {
            Some((index, batch)) => self.log.queue(index, batch, Some(flushed)),
            None => {
                flushed(Ok(()));
                Ok(())
            }
        }
    }
}

#[path = "log_writer.rs"]
mod log_writer;

#[path = "log_reader.rs"]
mod log_reader;
use log_reader::checkpoint_root;
pub use log_reader::LedgerLogReader;
pub(crate) use log_reader::{open_chunk, Chunks};

#[path = "ledger_copy.rs"]
mod ledger_copy;

#[path = "slots.rs"]
mod slots;
pub use slots::LogBase;
use slots::Slots;

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "openraft_suite_tests.rs"]
mod openraft_suite_tests;
