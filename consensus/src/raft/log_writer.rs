//! [`LogWriter`]'s methods: the write side of the Raft log over the ledger.
//!
//! Batches go to the ledger's group commit, which makes them durable in order
//! and reports each fsync; Raft-only entries (blank, membership) are kept in
//! the meta file before any later batch; a truncation cuts the slots, the
//! ledger and the meta file together. The types and the shared state are in
//! `log_store.rs`.

use std::sync::Arc;

use stele_ledger::BatchLocation;

use super::{
    change_and_save, checkpoint_root, lock, ControlRecord, ExecutedBatch, Flushed, LogBase,
    LogWriter, Slot, SteleEntry, SteleLogId, ARCHIVE_PASS_INTERVAL_MS,
};
use crate::ConsensusError;

impl LogWriter {
    /// Records a blank or membership entry durably, before any later batch.
    pub(crate) fn append_control(&self, entry: SteleEntry) -> Result<(), ConsensusError> {
        let dir = lock(&self.shared).dir.clone();
        no_gap(&dir, entry.log_id.index, self.len())?;
        change_and_save(&self.shared, |state| {
            let index = entry.log_id.index;
            state.slots.truncate(index);
            let batches_before = state.batches_before(index);
            state.meta.controls.push(ControlRecord {
                batches_before,
                entry: entry.clone(),
            });
            state.slots.push(Slot::Control(Box::new(entry)));
        })
    }

    /// Queues a batch on the ledger writer; `callback` runs once it is durable.
    pub(crate) fn queue(
        &self,
        index: u64,
        batch: ExecutedBatch,
        callback: Option<Flushed>,
    ) -> Result<(), ConsensusError> {
        let root = checkpoint_root(&batch.signature.checkpoint).ok();
        let batch = Arc::new(batch);
        {
            let mut state = lock(&self.shared);
            no_gap(&state.dir, index, state.slots.end())?;
            state.slots.truncate(index);
            state.released = state.released.min(index);
            state.slots.push(Slot::Batch {
                view: batch.batch.view,
                location: None,
                pending: Some(Arc::clone(&batch)),
                root,
            });
        }
        let shared = Arc::clone(&self.shared);
        let entry = (*batch).clone();
        self.writer
            .append(entry.batch, entry.signature, move |result| {
                let result = result.map(|durable| {
                    let mut state = lock(&shared);
                    if let Some(hook) = &state.on_durable {
                        hook(durable.location.last_seqno);
                    }
                    if let Some(Slot::Batch {
                        location, pending, ..
                    }) = state.slots.get_mut(index)
                    {
                        if pending
                            .as_ref()
                            .is_some_and(|p| p.batch.first_seqno == durable.location.first_seqno)
                        {
                            // Readable from the ledger now; the entry stays in
                            // memory until applied (`release_through`).
                            *location = Some(durable.location);
                        }
                    }
                });
                if let Some(callback) = callback {
                    callback(result.map_err(std::io::Error::other));
                }
            })
            .map_err(ConsensusError::from)
    }

    /// Frees the in-memory copies of the durable batches at log indices up to
    /// `index` (they have been applied: openraft reads them no more on the hot
    /// path; a later read comes from the ledger). A batch not durable yet keeps
    /// its copy, and the next call resumes there.
    pub(crate) fn release_through(&self, index: u64) {
        let mut state = lock(&self.shared);
        let end = index.saturating_add(1).min(state.slots.end());
        let mut released = state
            .released
            .clamp(state.slots.base(), end.max(state.slots.base()));
        let start = released;
        for slot in state.slots.range_mut(start, end) {
            if let Slot::Batch {
                location: None,
                pending: Some(_),
                ..
            } = slot
            {
                break;
            }
            if let Slot::Batch {
                location: Some(_),
                pending,
                ..
            } = slot
            {
                *pending = None;
            }
            released += 1;
        }
        state.released = released;
    }

    /// Drops log index `index` and everything after it: first recorded in the
    /// meta file, then carried out on the ledger (blocking), then cleared, so a
    /// crash midway is finished on open. Returns the last seqno kept.
    pub(crate) fn cut(&self, index: u64) -> Result<u64, ConsensusError> {
        let last_kept_seqno = change_and_save(&self.shared, |state| {
            let index = index.min(state.slots.end());
            let last_kept_seqno = state
                .slots
                .range(0, index)
                .iter()
                .rev()
                .find_map(Slot::last_seqno)
                .unwrap_or_else(|| state.base_seqno());
            state.slots.truncate(index);
            state
                .meta
                .controls
                .retain(|control| control.entry.log_id.index < index);
            state.meta.pending_truncate = Some(last_kept_seqno);
            last_kept_seqno
        })?;
        self.writer.truncate_blocking(last_kept_seqno)?;
        change_and_save(&self.shared, |state| state.meta.pending_truncate = None)?;
        Ok(last_kept_seqno)
    }

    /// Records durably that `log_id` is committed, unless a later one is. A
    /// snapshot is kept only after this: openraft requires on start that the
    /// saved commit point is not behind the snapshot.
    pub(crate) fn raise_committed(&self, log_id: SteleLogId) -> Result<(), ConsensusError> {
        if lock(&self.shared).meta.committed >= Some(log_id) {
            return Ok(());
        }
        change_and_save(&self.shared, |state| {
            state.meta.committed = state.meta.committed.max(Some(log_id));
        })
    }

    /// Marks the ledger committed up to the commit point the meta file
    /// holds (what of it is durable): the chunks wholly below get their
    /// `.committed` name and index file, and no truncation may reach below
    /// it. Not the replica's commit point, which may be ahead of the file: a
    /// restart takes its commit point from the file, and a snapshot install
    /// then rolls back to it, which the ledger would refuse below its mark.
    /// Not waited for.
    pub(crate) fn mark_committed(&self) {
        let seqno = {
            let state = lock(&self.shared);
            let end = state.committed_saved.map_or(0, |id| id.index + 1);
            match state.committed_saved {
                Some(id) if id.index + 1 >= state.slots.base() => state
                    .slots
                    .range(0, end)
                    .iter()
                    .rev()
                    .find_map(Slot::last_seqno)
                    .unwrap_or_else(|| state.base_seqno()),
                _ => 0,
            }
        };
        if seqno == 0 {
            return;
        }
        if let Err(error) = self.writer.commit_durable(seqno) {
            tracing::warn!(%error, seqno, "cannot mark the ledger committed");
        }
    }

    /// Starts the ledger's upkeep thread, one pass every
    /// [`ARCHIVE_PASS_INTERVAL_MS`] (and one at once), until the ledger's
    /// writer stops: it saves the committed log id if the meta file is
    /// behind (saves are throttled, and the last commit before an idle spell
    /// would otherwise wait for the next), marks the ledger committed up to
    /// it, and with `archive_kept` moves committed chunks but the newest
    /// `archive_kept` to the archive.
    pub(crate) fn spawn_upkeep(&self, archive_kept: Option<usize>) -> Result<(), ConsensusError> {
        let writer = Arc::downgrade(&self.writer);
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("stele-ledger-upkeep".to_owned())
            .spawn(move || {
                crate::paced::lower_this_thread();
                loop {
                    let Some(writer) = writer.upgrade() else {
                        return;
                    };
                    let log = LogWriter {
                        shared: Arc::clone(&shared),
                        writer,
                    };
                    if !log.upkeep(archive_kept) {
                        return;
                    }
                    drop(log);
                    std::thread::sleep(std::time::Duration::from_millis(ARCHIVE_PASS_INTERVAL_MS));
                }
            })
            .map(drop)
            .map_err(|error| {
                ConsensusError::Stopped(format!("spawning the ledger upkeep: {error}"))
            })
    }

    /// One upkeep pass ([`Self::spawn_upkeep`]); `false` once the writer stopped.
    fn upkeep(&self, archive_kept: Option<usize>) -> bool {
        let behind = {
            let state = lock(&self.shared);
            state.meta.committed > state.committed_saved
        };
        if behind {
            if let Err(error) = change_and_save(&self.shared, |_| ()) {
                tracing::warn!(%error, "cannot save the committed log id");
            }
        }
        self.mark_committed();
        let Some(kept) = archive_kept else {
            return true;
        };
        match self.writer.archive_pass(kept) {
            Ok(0) => {}
            Ok(moved) => tracing::info!(moved, "moved committed chunks to the archive"),
            Err(stele_ledger::LedgerError::WriterStopped) => return false,
            Err(error) => {
                tracing::warn!(%error, "cannot move a chunk to the archive; trying again later");
            }
        }
        true
    }

    /// The log id at `index`, if the log holds that index.
    pub(crate) fn log_id_at(&self, index: u64) -> Option<SteleLogId> {
        lock(&self.shared).log_id_at(index)
    }

    /// The log index after the batch ending at `seqno` (0 for seqno 0), if the
    /// log holds such a batch.
    pub(crate) fn index_after_seqno(&self, seqno: u64) -> Option<u64> {
        let state = lock(&self.shared);
        if seqno == state.base_seqno() {
            return Some(state.slots.base());
        }
        let (index, _) = state
            .slots
            .indexed()
            .rev()
            .find(|(_, slot)| slot.last_seqno() == Some(seqno))?;
        Some(index + 1)
    }

    /// The ledger writer's health: the condition (full disk, no file handles)
    /// holding writes back, if any.
    pub fn storage_health(&self) -> Arc<stele_ledger::StorageHealth> {
        self.writer.health()
    }

    /// The first log index the log holds (0 unless it starts at a snapshot
    /// installed from a resume transfer).
    pub(crate) fn base(&self) -> u64 {
        lock(&self.shared).slots.base()
    }

    /// Starts the log after `base` (a resume transfer's snapshot, whose
    /// resume entry the ledger holds now): no entry up to its last log id is
    /// held any more, and the meta file records where the log starts.
    pub(crate) fn rebase(&self, base: LogBase) -> Result<(), ConsensusError> {
        let rebased = change_and_save(&self.shared, |state| {
            let first = base.last_log_id.index + 1;
            // The ledger keeps the batches the log drops: still read by seqno.
            let kept: Vec<BatchLocation> = state
                .slots
                .range(0, u64::MAX)
                .iter()
                .filter_map(|slot| match slot {
                    Slot::Batch {
                        location: Some(location),
                        ..
                    } if location.last_seqno <= base.seqno => Some(*location),
                    _ => None,
                })
                .collect();
            state.before_base.extend(kept);
            state.slots.rebase(first);
            state.released = first;
            state.meta.controls.clear();
            state.meta.pending_truncate = None;
            state.meta.last_purged = state.meta.last_purged.max(Some(base.last_log_id));
            state.meta.committed = state.meta.committed.max(Some(base.last_log_id));
            state.meta.log_base = Some(base);
        });
        self.shared.rebased.notify_one();
        rebased
    }

    /// Appends the ledger's resume entry (durable when it returns).
    pub(crate) fn resume_ledger(
        &self,
        resume: stele_ledger::ResumeEntry,
    ) -> Result<stele_ledger::Resumption, ConsensusError> {
        Ok(self.writer.resume_blocking(resume)?)
    }

    /// Waits until the log is rebased (a resume transfer installed), or for
    /// `timeout`.
    pub(crate) async fn rebased_or(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.shared.rebased.notified()).await;
    }

    /// The ledger's first gap, if it skips seqnos and a chunk can fill it.
    pub(crate) fn first_gap(&self) -> Result<Option<stele_ledger::Resumption>, ConsensusError> {
        Ok(self.writer.first_gap_blocking()?)
    }

    /// Takes a filled chunk into the ledger (durable already) and its
    /// batches into the reads by seqno; the gap as it now is.
    pub(crate) fn adopt_filled(
        &self,
        filled: stele_ledger::FilledChunk,
    ) -> Result<stele_ledger::Resumption, ConsensusError> {
        let locations = filled.locations.clone();
        let gap = self.writer.adopt_blocking(filled)?;
        let mut state = lock(&self.shared);
        let first = locations.first().map_or(0, |location| location.first_seqno);
        let at = state
            .before_base
            .partition_point(|location| location.first_seqno < first);
        state.before_base.splice(at..at, locations);
        Ok(gap)
    }

    /// The ledger folder.
    pub(crate) fn dir(&self) -> std::path::PathBuf {
        lock(&self.shared).dir.clone()
    }

    /// The number of entries in the log (the next index).
    pub(crate) fn len(&self) -> u64 {
        lock(&self.shared).slots.end()
    }
}

/// Refuses an entry at log index `index` in a log of `len` entries that
/// would leave a gap (openraft appends right after its last log id, or over
/// a suffix it replaces): slot `i` must be log index `i`.
fn no_gap(dir: &std::path::Path, index: u64, len: u64) -> Result<(), ConsensusError> {
    if index > len {
        return Err(ConsensusError::RaftStorage {
            path: dir.to_owned(),
            reason: format!("an entry at log index {index} after a log of {len} entries"),
        });
    }
    Ok(())
}
