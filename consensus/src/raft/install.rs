//! Installing a received snapshot transfer (`transfer.rs`): how a new or
//! lagging node catches up from a KV snapshot plus the ledger, without
//! re-executing what it receives, yet checking all of it.
//!
//! Checked before the state is used:
//!
//! - every received batch past this node's commit point: each write set's
//!   encoding, each commit-evidence digest (this service's secret), and its
//!   signed checkpoint against the tree rebuilt from its leaves (the service
//!   key, the size, the root) — the same checks as a restart's replay;
//! - every received batch up to this node's commit point is the one this node
//!   already committed (same signed checkpoint);
//! - the batches are contiguous, the Raft-only entries sit at their recorded
//!   log indices, and the last log id is the snapshot's;
//! - the KV snapshot's SHA-256 trailer, and that its version is the last
//!   received seqno, so it is the state the signed root of that batch covers.
//!
//! What is not re-derived: that the KV snapshot equals the fold of the write
//! sets (that would cost what the snapshot saves). A wrong state cannot forge
//! the ledger, and the first later transaction that reads a wrong value gives
//! a write set the primary's does not match: the follower check refuses it.
//!
//! On any failure the log, the ledger and the history are cut back to this
//! node's commit point and the error stops the Raft engine (fail-stop): a
//! restart recovers from the ledger, which is intact up to that point.

use std::sync::mpsc;

use stele_kv::Store;

use std::path::Path;

use stele_history::HistoryState;
use stele_ledger::ResumeEntry;

use super::log_store::{LogBase, LogWriter};
use super::transfer::{TransferHeader, TransferReader};
use super::types::ExecutedBatch;
use crate::replay::push_logged_batch;
use crate::replica::Replica;
use crate::sync::lock;
use crate::ConsensusError;

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installed {
    /// The log already held the snapshot's last entry: apply it from the log.
    FromLog,
    /// A resume transfer: the ledger resumes at the snapshot (without the
    /// batches between this node's commit point and it), the log starts
    /// after it, and the state and history are the snapshot's.
    Resumed {
        /// The seqno of the installed state.
        seqno: u64,
    },
    /// The log, the ledger and the state now end at the snapshot.
    Transfer {
        /// Batches received and appended past the commit point.
        batches: u64,
        /// The seqno of the installed state.
        seqno: u64,
    },
}

fn refused(seqno: u64, reason: impl Into<String>) -> ConsensusError {
    ConsensusError::Replay {
        seqno,
        reason: format!("snapshot transfer: {}", reason.into()),
    }
}

/// Installs the transfer read by `transfer` (header already read). Blocking:
/// runs on a blocking thread.
///
/// What this node keeps is its log up to the batch ending at its commit point
/// (a committed prefix, so the same as the transfer's). That point is the
/// replica's, which may be ahead of what openraft has applied since a restart
/// (a restart restores KV snapshots taken at committed seqnos).
pub(crate) fn install(
    replica: &Replica,
    log: &LogWriter,
    mut transfer: TransferReader,
    header: &TransferHeader,
    kv_snapshots: Option<&Path>,
) -> Result<Installed, ConsensusError> {
    if log.log_id_at(header.last_log_id.index) == Some(header.last_log_id) {
        return Ok(Installed::FromLog);
    }
    let _execution = lock(&replica.execution);
    let committed = replica.committed_seqno();
    let first_new = log.index_after_seqno(committed).ok_or_else(|| {
        refused(
            committed,
            "no batch of this node's log ends at its commit point",
        )
    })?;
    // Drop the speculative suffix: the snapshot replaces it.
    replica.rollback_to(committed)?;
    log.cut(first_new)?;
    if let Some(resume) = &header.resume {
        return resume_at(
            replica,
            log,
            &mut transfer,
            header,
            resume,
            committed,
            kv_snapshots,
        )
        .map(|()| Installed::Resumed {
            seqno: header.seqno,
        });
    }
    if log.base() > 0 {
        return Err(refused(
            header.seqno,
            "a full transfer (the ledger from seqno 1) to a node whose log starts at a \
             snapshot: give every node the same [cluster] snapshot_transfer",
        ));
    }
    match receive(replica, log, &mut transfer, header, first_new, committed) {
        Ok(batches) => Ok(Installed::Transfer {
            batches,
            seqno: header.seqno,
        }),
        Err(error) => {
            // Back to the commit point, so a restart finds a consistent log.
            if let Err(undo) = replica
                .rollback_to(committed)
                .and_then(|()| log.cut(first_new).map(|_| ()))
            {
                tracing::error!(%undo, "cannot undo a failed snapshot install");
            }
            Err(error)
        }
    }
}

/// Installs a resume transfer after this node's commit point `committed`
/// (the log and the ledger are cut back to it): checks the resume entry (its
/// checkpoint is the service's and signs the root its frontier makes, at the
/// state's seqno), then writes, each durable before the next, a KV snapshot
/// of the state (what a restart starts from), the ledger's resume entry, and
/// the log's new base; then takes the state and the history. A crash between
/// two steps leaves the node as before the install: a KV snapshot past the
/// ledger's end is not used by a restart, and a resume entry past the log's
/// base is undone when the log opens (`log_store::settle`); the leader then
/// sends the snapshot again.
fn resume_at(
    replica: &Replica,
    log: &LogWriter,
    transfer: &mut TransferReader,
    header: &TransferHeader,
    resume: &ResumeEntry,
    committed: u64,
    kv_snapshots: Option<&Path>,
) -> Result<(), ConsensusError> {
    let seqno = header.seqno;
    if seqno <= committed {
        return Err(refused(
            seqno,
            format!(
                "a resume transfer at seqno {seqno}, not past this node's commit point {committed}"
            ),
        ));
    }
    let frontier = resume
        .frontier()
        .map_err(|reason| refused(seqno, format!("its resume entry: {reason}")))?;
    let history = HistoryState::resumed(
        &frontier,
        &resume.view_starts,
        resume.checkpoint.clone(),
        &replica.identity,
    )
    .map_err(|error| refused(seqno, format!("its resume entry: {error}")))?;
    let root = history.root();
    let state = transfer.state()?;
    if state.version() != seqno {
        return Err(refused(
            seqno,
            format!("the state is at seqno {}", state.version()),
        ));
    }
    let dir = kv_snapshots.ok_or_else(|| {
        refused(
            seqno,
            "this node keeps no KV snapshots to restart a resumed ledger from",
        )
    })?;
    crate::snapshot::write(dir, &state, &resume.checkpoint, &frontier)
        .map_err(|error| refused(seqno, format!("writing its KV snapshot: {error}")))?;
    log.resume_ledger(ResumeEntry {
        after_seqno: committed,
        ..resume.clone()
    })?;
    log.rebase(LogBase {
        last_log_id: header.last_log_id,
        seqno,
        root: *root.as_bytes(),
    })?;
    *replica.write_history() = history;
    replica.install_state(Store::from_snapshot(state));
    Ok(())
}

/// Appends the received entries past `first_new` to the log, checking them,
/// then installs the state. Returns the batches appended.
fn receive(
    replica: &Replica,
    log: &LogWriter,
    transfer: &mut TransferReader,
    header: &TransferHeader,
    first_new: u64,
    committed: u64,
) -> Result<u64, ConsensusError> {
    let state = transfer.state()?;
    if state.version() != header.seqno {
        return Err(refused(
            header.seqno,
            format!("the state is at seqno {}", state.version()),
        ));
    }
    let mut controls = header.controls.iter().peekable();
    let (mut index, mut position, mut appended) = (0_u64, 0_u64, 0_u64);
    let mut durable: Option<mpsc::Receiver<Result<(), std::io::Error>>> = None;
    loop {
        while let Some(control) = controls.next_if(|control| control.batches_before == position) {
            if control.entry.log_id.index != index {
                return Err(refused(
                    0,
                    format!(
                        "Raft entry {} recorded at log index {index}",
                        control.entry.log_id
                    ),
                ));
            }
            if index >= first_new {
                log.append_control(control.entry.clone())?;
            }
            index += 1;
        }
        let Some((batch, signature)) = transfer.next_batch()? else {
            break;
        };
        let last = batch.last_seqno();
        if index < first_new {
            // Committed here already: it must be this node's own batch.
            let same = last <= committed
                && replica.holds_checkpoint(last, batch.view, &signature.checkpoint);
            if !same {
                return Err(refused(
                    last,
                    "a batch this node committed differs from the snapshot's",
                ));
            }
        } else {
            let mut history = replica.write_history();
            if batch.first_seqno != history.size() + 1 || batch.view != signature.view {
                return Err(refused(
                    batch.first_seqno,
                    format!(
                        "batch starting at seqno {} (view {}, signature view {}) after seqno {}",
                        batch.first_seqno,
                        batch.view,
                        signature.view,
                        history.size()
                    ),
                ));
            }
            let prev_root = history.root().0;
            push_logged_batch(&batch, &signature, &mut history, &replica.identity)?;
            drop(history);
            let (sender, receiver) = mpsc::sync_channel(1);
            log.queue(
                index,
                ExecutedBatch {
                    batch,
                    signature,
                    prev_root,
                },
                Some(Box::new(move |result| {
                    // The receiver waits below unless the install already failed.
                    let _ = sender.send(result);
                })),
            )?;
            // Every append completes in order: only the last one is waited for.
            durable = Some(receiver);
            appended += 1;
        }
        index += 1;
        position += 1;
    }
    check_end(replica, log, header, controls.len(), position)?;
    if let Some(receiver) = durable {
        receiver
            .recv()
            .map_err(|_| refused(header.seqno, "the ledger writer stopped"))?
            .map_err(|error| refused(header.seqno, format!("ledger append: {error}")))?;
    }
    replica.install_state(Store::from_snapshot(state));
    Ok(appended)
}

/// The transfer must end exactly at the snapshot's last log id and seqno.
fn check_end(
    replica: &Replica,
    log: &LogWriter,
    header: &TransferHeader,
    controls_left: usize,
    batches: u64,
) -> Result<(), ConsensusError> {
    let size = replica.read_history().size();
    let problem = if controls_left > 0 {
        Some(format!("{controls_left} Raft entries past the last batch"))
    } else if batches != header.batches {
        Some(format!(
            "{batches} batches, the header says {}",
            header.batches
        ))
    } else if size != header.seqno {
        Some(format!("the batches end at seqno {size}"))
    } else if log.log_id_at(header.last_log_id.index) != Some(header.last_log_id)
        || log.len() != header.last_log_id.index + 1
    {
        Some(format!(
            "the log does not end at the snapshot's last log id {}",
            header.last_log_id
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(refused(header.seqno, problem)),
        None => Ok(()),
    }
}
