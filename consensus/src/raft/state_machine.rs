//! [`ReplicaStateMachine`]: openraft's state machine = confirm. Applying a
//! committed batch checks that this node's history holds exactly that batch
//! (re-executing it if the speculative state lost it) and commits its
//! transactions; a mismatch after commit is a determinism bug, and the node
//! stops itself rather than serve state it cannot prove.
//!
//! Snapshots are transfers (`transfer.rs`): building one writes the committed
//! KV state only; sending one reads that file and then the ledger up to it
//! (`transfer_data.rs`); installing one checks and appends the received
//! ledger and takes the state (`install.rs`). openraft
//! sends one to a node whose next entry the leader has purged (the purge is
//! logical: every ledger keeps every batch).

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt as _;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, StoredMembership};
use openraft_legacy::network_v1::SnapshotReceiverFactory;

use super::install::{install, Installed};
use super::log_store::{LedgerLogReader, LogWriter};
use super::transfer::{self, TransferHeader, TransferReader, TransferWriter};
use super::transfer_data::{Piece, TransferData};
use super::types::{
    BatchApplied, SteleEntry, SteleLogId, SteleRaft, SteleSnapshotMeta, SteleStoredMembership,
};
use crate::replica::Replica;
use crate::ConsensusError;

type StorageResult<T> = Result<T, std::io::Error>;

/// A snapshot as openraft hands it around: its metadata and its data.
pub type SteleSnapshot = openraft::type_config::alias::SnapshotOf<SteleRaft, TransferData>;

/// The state machine of one node: its [`Replica`].
pub struct ReplicaStateMachine {
    replica: Arc<Replica>,
    last_applied: Option<SteleLogId>,
    membership: SteleStoredMembership,
    transfers: Transfers,
    /// The transfer being received, if any.
    incoming: Option<PathBuf>,
}

/// Where snapshot transfers are kept, and the log they are built from and
/// installed into.
#[derive(Clone)]
pub(crate) struct Transfers {
    pub(crate) dir: PathBuf,
    pub(crate) reader: LedgerLogReader,
    pub(crate) log: LogWriter,
    /// Send resume transfers (`RaftLogPolicy::resume_transfers`).
    pub(crate) resume: bool,
    /// The KV snapshot folder: an installed resume transfer's state is
    /// written there (a restart of a resumed ledger starts from it).
    pub(crate) kv_snapshots: Option<PathBuf>,
}

impl ReplicaStateMachine {
    /// Starts with nothing applied: openraft re-applies the committed log on
    /// start, which re-checks every committed batch against the replayed history.
    pub(crate) fn new(replica: Arc<Replica>, transfers: Transfers) -> Self {
        transfer::tidy(&transfers.dir);
        ReplicaStateMachine {
            replica,
            last_applied: None,
            membership: StoredMembership::default(),
            transfers,
            incoming: None,
        }
    }

    /// On start: the replica already holds every committed batch it replayed
    /// (from its ledger, or a KV snapshot and the ledger after it), so the
    /// state machine starts as applied through the last of them, with the
    /// membership the log records up to there. openraft then neither
    /// restores its newest snapshot nor re-applies those entries, each of
    /// which it would read back from the ledger only to find it held.
    pub(crate) fn resume_from_replica(&mut self) {
        let committed = self.replica.committed_seqno();
        if committed == 0 {
            return;
        }
        // Through the last held batch, not a Raft-only entry after it: those
        // may not be committed yet (everything before a committed batch is).
        let (last_held, controls) = self.transfers.reader.skippable(committed, 0, u64::MAX);
        let Some(last) = last_held.and_then(|index| self.transfers.log.log_id_at(index)) else {
            return;
        };
        // A log that starts at an installed snapshot holds no membership
        // entry before it: take the kept snapshot's, then the log's after it.
        if self.transfers.log.base() > 0 {
            if let Some((_, header)) = transfer::newest(&self.transfers.dir) {
                if header.last_log_id <= last {
                    self.membership = header.last_membership.clone();
                }
            }
        }
        for control in controls {
            if let EntryPayload::Membership(membership) = control.payload {
                self.membership = StoredMembership::new(Some(control.log_id), membership);
            }
        }
        self.last_applied = Some(last);
        tracing::info!(log_id = %last, "the replayed state stands for the log up to here");
    }

    fn apply_one(&mut self, entry: SteleEntry) -> StorageResult<BatchApplied> {
        let log_id = entry.log_id;
        self.last_applied = Some(log_id);
        match entry.payload {
            EntryPayload::Blank => Ok(BatchApplied::default()),
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(log_id), membership);
                Ok(BatchApplied::default())
            }
            EntryPayload::Normal(batch) => {
                if let Err(error) = self.replica.apply_committed(&batch) {
                    let reason = format!("applying log index {}: {error}", log_id.index);
                    return Err(std::io::Error::other(reason));
                }
                Ok(BatchApplied {
                    view: batch.batch.view,
                    last_seqno: batch.batch.last_seqno(),
                })
            }
        }
    }
}

/// Builds a snapshot of the state at the last applied entry: the KV state
/// is set aside when the builder is made (between two applies, O(1)), and
/// sorted and written when it runs (off the apply path). The ledger is not
/// copied: a send reads it.
pub struct TransferBuilder {
    transfers: Transfers,
    header: Option<TransferHeader>,
    state: Result<stele_kv::Frozen, String>,
}

fn snapshot_error(reason: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("snapshot: {reason}"))
}

fn blocking_error(error: tokio::task::JoinError) -> std::io::Error {
    snapshot_error(format!("the snapshot task failed: {error}"))
}

/// Writes the kept snapshot (header and state) and composes it to send.
fn build(
    transfers: &Transfers,
    header: &TransferHeader,
    state: &stele_kv::Snapshot,
) -> Result<(PathBuf, SteleSnapshot), ConsensusError> {
    let writer = TransferWriter::create(&transfers.dir, header, state)?;
    transfers.log.raise_committed(header.last_log_id)?;
    let (path, file) = writer.finish()?;
    let snapshot = snapshot_of(transfers, file, &path, header)?;
    Ok((path, snapshot))
}

/// The snapshot of `header` to send: the head of its kept file (open at any
/// position), then this node's ledger up to its last log id.
fn snapshot_of(
    transfers: &Transfers,
    file: std::fs::File,
    path: &std::path::Path,
    header: &TransferHeader,
) -> Result<SteleSnapshot, ConsensusError> {
    let head = transfer::head_length(&file, path)?;
    let mut pieces = vec![Piece::File {
        file: Arc::new(file),
        offset: 0,
        length: head,
    }];
    if header.resume.is_none() {
        pieces.extend(
            transfers
                .reader
                .batch_pieces_through(header.last_log_id.index)?,
        );
    }
    Ok(Snapshot {
        meta: header.meta(),
        snapshot: TransferData::pieces(pieces),
    })
}

impl RaftSnapshotBuilder<SteleRaft> for TransferBuilder {
    type SnapshotData = TransferData;

    async fn build_snapshot(&mut self) -> StorageResult<SteleSnapshot> {
        let header = self
            .header
            .clone()
            .ok_or_else(|| snapshot_error("nothing applied yet: no snapshot to build"))?;
        // Taken, not cloned: the frozen state then ends (and is freed) on the
        // blocking thread with the build. A clone left in the builder was
        // freed on a tokio worker when openraft dropped the builder: by then
        // the live state had copied most shards away, so the clone alone held
        // ~500 k entries, and openraft learnt of the built snapshot 31-51 ms
        // late (under 1 ms since).
        let state = std::mem::replace(&mut self.state, Err("taken by a build".to_owned()))
            .map_err(snapshot_error)?;
        let transfers = self.transfers.clone();
        let built_header = header.clone();
        let started = std::time::Instant::now();
        let (path, snapshot) = crate::paced::in_background("stele-raft-snapshot", move || {
            build(&transfers, &built_header, &state.into_snapshot())
        })
        .await
        .map_err(snapshot_error)?
        .map_err(snapshot_error)?;
        tracing::info!(
            seqno = header.seqno,
            log_id = %header.last_log_id,
            build_ms = started.elapsed().as_millis() as u64,
            path = %path.display(),
            "built a Raft snapshot"
        );
        Ok(snapshot)
    }
}

impl ReplicaStateMachine {
    /// The header of a snapshot of the state as applied now, if anything is.
    fn header_now(&self) -> Option<TransferHeader> {
        let last_log_id = self.last_applied?;
        let seqno = self.replica.committed_seqno();
        if self.transfers.resume || self.transfers.log.base() > 0 {
            let resume = self.resume_entry(seqno)?;
            return Some(TransferHeader {
                last_log_id,
                last_membership: self.membership.clone(),
                seqno,
                batches: 0,
                controls: Vec::new(),
                resume: Some(resume),
            });
        }
        let controls = self.transfers.reader.controls_through(last_log_id.index);
        let batches = last_log_id.index + 1 - controls.len() as u64;
        Some(TransferHeader {
            last_log_id,
            last_membership: self.membership.clone(),
            seqno,
            batches,
            controls,
            resume: None,
        })
    }

    /// The resume entry of the history at `seqno` (the end of a committed
    /// batch whose checkpoint is still held): what a resume transfer
    /// carries. `None` if the history does not hold it (nothing committed).
    fn resume_entry(&self, seqno: u64) -> Option<stele_ledger::ResumeEntry> {
        let history = self.replica.read_history();
        let frontier = history.frontier_at(seqno)?;
        // The note is held for a batch, or a resume entry, that ends here.
        let note = history.note_ending_at(seqno)?.to_owned();
        let view_starts = history.view_starts_through(seqno);
        Some(stele_ledger::ResumeEntry::new(
            0,
            view_starts,
            &frontier,
            note,
        ))
    }

    /// Records the last batch of `entries` as committed before any of them
    /// is confirmed (`high_water.rs`); a failure stops the node.
    fn raise_high_water(&self, entries: &[SteleEntry]) -> StorageResult<()> {
        let last = entries.iter().rev().find_map(|entry| match &entry.payload {
            EntryPayload::Normal(batch) => Some((entry.log_id, batch)),
            _ => None,
        });
        let Some((log_id, batch)) = last else {
            return Ok(());
        };
        self.replica.raise_high_water(batch).map_err(|error| {
            let reason = format!("recording the committed tree: {error}");
            self.replica.fail(reason.clone());
            std::io::Error::other(format!("applying log id {log_id}: {reason}"))
        })
    }

    /// On start, the state of this node's own newest snapshot `meta`: its log
    /// entries, applied (the log holds them: the snapshot was built from it
    /// or installed into it).
    fn restore_from_log(&mut self, meta: &SteleSnapshotMeta) -> StorageResult<()> {
        let Some(last) = meta.last_log_id else {
            return Ok(());
        };
        if self.transfers.log.log_id_at(last.index) != Some(last) {
            let reason = format!("the log does not hold {last}, the end of its newest snapshot");
            self.replica.fail(reason.clone());
            return Err(snapshot_error(reason));
        }
        self.apply_from_log(last)?;
        // A log that starts at this snapshot holds no membership entry
        // before it: the snapshot's is the one in effect.
        if meta.last_membership.log_id() > self.membership.log_id() {
            self.membership = meta.last_membership.clone();
        }
        self.transfers.log.release_through(last.index);
        tracing::info!(log_id = %last, "applied the log up to the newest snapshot on start");
        Ok(())
    }

    /// Applies log entries after the last applied one up to `last` (a
    /// snapshot whose entries this node's log already holds).
    fn apply_from_log(&mut self, last: SteleLogId) -> StorageResult<()> {
        let mut start = self.last_applied.map_or(0, |id| id.index + 1);
        // The batches the replica already holds committed (replayed, or
        // restored from a KV snapshot) are not read back: applying them
        // would only find them held. The last of them is, to raise the high
        // water to it; the Raft-only entries before it are applied in order.
        let committed = self.replica.committed_seqno();
        let (last_held, controls) =
            self.transfers
                .reader
                .skippable(committed, start, last.index + 1);
        if let Some(resume) = last_held.filter(|&index| index > start) {
            for control in controls {
                self.apply_one(control)?;
            }
            let before = self.transfers.log.log_id_at(resume - 1).ok_or_else(|| {
                snapshot_error(format!("the log holds no entry at index {}", resume - 1))
            })?;
            self.last_applied = Some(before);
            start = resume;
        }
        let entries = self
            .transfers
            .reader
            .read(start, last.index + 1)
            .map_err(|error| snapshot_error(&error))?;
        self.raise_high_water(&entries)?;
        for entry in entries {
            self.apply_one(entry)?;
        }
        Ok(())
    }
}

impl RaftStateMachine<SteleRaft> for ReplicaStateMachine {
    type SnapshotData = TransferData;
    type SnapshotBuilder = TransferBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<SteleLogId>, SteleStoredMembership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    /// Raises the high water over the whole group first, then applies
    /// (confirms) the entries one by one, answering each proposer.
    async fn apply<Strm>(&mut self, entries: Strm) -> StorageResult<()>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<SteleRaft>, std::io::Error>>
            + Unpin
            + openraft::OptionalSend,
    {
        let mut entries = entries;
        let mut group = Vec::new();
        while let Some(item) = entries.next().await {
            group.push(item?);
        }
        let (entries, responders): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        self.raise_high_water(&entries)?;
        for (entry, responder) in entries.into_iter().zip(responders) {
            let applied = self.apply_one(entry)?;
            if let Some(responder) = responder {
                responder.send(applied);
            }
        }
        if let Some(last) = self.last_applied {
            self.transfers.log.release_through(last.index);
        }
        Ok(())
    }

    /// No builder while nothing is applied (there is no state to send),
    /// unless forced (openraft's start, when the log was purged but no
    /// snapshot is kept: the build then fails, as it did before 0.10).
    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        if !force {
            self.last_applied?;
        }
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let header = self.header_now();
        let state = header.as_ref().map_or_else(
            || Err("nothing applied".to_owned()),
            |header| {
                self.replica
                    .read_store()
                    .freeze(header.seqno)
                    .map_err(|error| error.to_string())
            },
        );
        TransferBuilder {
            transfers: self.transfers.clone(),
            header,
            state,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SteleSnapshotMeta,
        snapshot: TransferData,
    ) -> StorageResult<()> {
        let Some(path) = self.incoming.take() else {
            // openraft 0.10 restores a state machine on start from its newest
            // snapshot (one this node built or installed, so its log holds
            // every entry up to it): applying the log up to it instead
            // re-checks those batches against the replayed history, as a
            // start did before.
            return self.restore_from_log(meta);
        };
        let TransferData::File(file) = snapshot else {
            return Err(snapshot_error(
                "a snapshot to send was handed back to install",
            ));
        };
        let mut file = file.into_std().await;
        let stopping = Arc::clone(&self.replica);
        let fail = |error: ConsensusError| {
            let reason = format!("installing the snapshot of {meta}: {error}");
            stopping.fail(reason.clone());
            snapshot_error(reason)
        };
        std::io::Seek::rewind(&mut file)
            .map_err(|error| fail(ConsensusError::Stopped(error.to_string())))?;
        let (reader, header) = TransferReader::open(file, &path).map_err(fail)?;
        if header.meta() != *meta {
            return Err(fail(ConsensusError::Stopped(format!(
                "the received file is the snapshot {}",
                header.snapshot_id()
            ))));
        }
        let (replica, log) = (Arc::clone(&self.replica), self.transfers.log.clone());
        let installed_header = header.clone();
        let started = std::time::Instant::now();
        let kv_snapshots = self.transfers.kv_snapshots.clone();
        let installed = tokio::task::spawn_blocking(move || {
            install(
                &replica,
                &log,
                reader,
                &installed_header,
                kv_snapshots.as_deref(),
            )
        })
        .await
        .map_err(blocking_error)?
        .map_err(fail)?;
        match installed {
            Installed::FromLog => self.apply_from_log(header.last_log_id)?,
            Installed::Resumed { seqno } => tracing::info!(
                seqno,
                log_id = %header.last_log_id,
                install_ms = started.elapsed().as_millis() as u64,
                "caught up from a resume transfer: the ledger resumes at the snapshot"
            ),
            Installed::Transfer { batches, seqno } => tracing::info!(
                batches,
                seqno,
                log_id = %header.last_log_id,
                install_ms = started.elapsed().as_millis() as u64,
                "caught up from a snapshot transfer"
            ),
        }
        self.last_applied = Some(header.last_log_id);
        self.membership = header.last_membership.clone();
        self.transfers
            .log
            .raise_committed(header.last_log_id)
            .map_err(fail)?;
        transfer::keep_received(&path, &header).map_err(fail)?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<SteleSnapshot>> {
        let transfers = self.transfers.clone();
        tokio::task::spawn_blocking(move || {
            let Some((file, header)) = transfer::newest(&transfers.dir) else {
                return Ok(None);
            };
            let path = transfer::kept_path(&transfers.dir, &header);
            snapshot_of(&transfers, file, &path, &header).map(Some)
        })
        .await
        .map_err(blocking_error)?
        .map_err(snapshot_error)
    }
}

/// Where a chunked transfer (`/raft/snapshot`) is received: a new file in
/// the transfer folder (openraft-legacy's chunk receiver writes into it).
impl SnapshotReceiverFactory<SteleRaft> for ReplicaStateMachine {
    type SnapshotReceiver = TransferData;

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<TransferData> {
        let (file, path) = transfer::incoming(&self.transfers.dir).map_err(snapshot_error)?;
        self.incoming = Some(path);
        Ok(TransferData::File(tokio::fs::File::from_std(file)))
    }
}
