//! Rebuilding the KV store and the history from the ledger when a node starts:
//! the ledger is the truth, everything in memory is derived from it.

use rayon::prelude::*;
use stele_history::{Checkpoint, Digest, TransactionId};
use stele_kv::{Store, WriteSet};
use stele_ledger::{BatchEntry, Ledger, SignatureEntry};

use crate::history::{BatchSpan, HistoryState};
use crate::identity::ServiceIdentity;
use crate::snapshot::LoadedSnapshot;
use crate::ConsensusError;

/// Checks that `ledger` belongs to `identity` (same origin and public key).
pub fn check_genesis(ledger: &Ledger, identity: &ServiceIdentity) -> Result<(), ConsensusError> {
    let genesis = ledger.genesis();
    if *genesis != identity.genesis() {
        return Err(ConsensusError::Replay {
            seqno: 0,
            reason: format!(
                "the ledger belongs to origin {} with another key; this node's identity is {}",
                genesis.origin,
                identity.origin()
            ),
        });
    }
    Ok(())
}

/// Applies every batch of `ledger` to `store` and `history`, checking each write
/// set's encoding, each commit-evidence digest against `identity`, and each
/// signed checkpoint against the rebuilt tree. Transactions up to `committed`
/// are committed; the rest stay speculative.
///
/// With `base`, the store starts from that snapshot: write sets up to its version
/// are not applied, and the snapshot's checkpoint must be the signature the
/// ledger holds after the batch ending at its version. With the snapshot's
/// tree frontier (version 2 files), the history is restored from it and the
/// ledger's index, and only the batches after it are read: O(suffix).
/// Without one, every leaf is rebuilt from the ledger.
pub fn replay(
    ledger: &Ledger,
    store: &mut Store,
    history: &mut HistoryState,
    identity: &ServiceIdentity,
    base: Option<LoadedSnapshot>,
    committed: u64,
) -> Result<(), ConsensusError> {
    check_genesis(ledger, identity)?;
    let (base_seqno, base_note, frontier) = match base {
        Some(loaded) => {
            let seqno = loaded.snapshot.version();
            *store = Store::from_snapshot(loaded.snapshot);
            (seqno, Some(loaded.note), loaded.frontier)
        }
        None => (0, None, None),
    };
    let batches = ledger.batches();
    // A ledger that resumes at a snapshot without every batch before it
    // (a node that joined from one): the history starts after the last such
    // resume entry, and the state must come from a snapshot at or after it.
    // The last resume entry, even once its gap is filled by fetched
    // batches: the Raft log starts at it (its base), so the state and the
    // history are restored from its snapshot as before the fetch.
    let skipped = ledger.resumptions().last();
    if let Some(resume) = skipped {
        if base_seqno < resume.seqno || frontier.is_none() {
            return Err(ConsensusError::Replay {
                seqno: resume.seqno,
                reason: format!(
                    "the ledger resumes at seqno {} without the batches after seqno {}: the \
                     state needs a (version 2) snapshot at or after it",
                    resume.seqno, resume.held_before
                ),
            });
        }
    }
    let base_position = batches.partition_point(|batch| batch.last_seqno < base_seqno);
    let base_is_resume = skipped.is_some_and(|resume| resume.seqno == base_seqno);
    if base_seqno > 0
        && !base_is_resume
        && batches
            .get(base_position)
            .is_none_or(|batch| batch.last_seqno != base_seqno)
    {
        return Err(ConsensusError::Replay {
            seqno: base_seqno,
            reason: "the snapshot does not end at a batch of this ledger".to_owned(),
        });
    }
    let note_differs = || ConsensusError::Replay {
        seqno: base_seqno,
        reason: "the snapshot's checkpoint is not the ledger's signature at its seqno".to_owned(),
    };
    let mut replay_from = 0;
    if let (Some(frontier), Some(note)) = (frontier.as_ref(), base_note.as_ref()) {
        if base_seqno > 0 {
            let ledger_note = match skipped.filter(|_| base_is_resume) {
                Some(resume) => resume.checkpoint.clone(),
                None => {
                    ledger
                        .read_batch(batches[base_position].first_seqno)?
                        .1
                        .checkpoint
                }
            };
            if ledger_note != *note {
                return Err(note_differs());
            }
            let (skipped_through, first_kept) = match skipped {
                Some(resume) => (
                    Some((resume.seqno, resume.view_starts.as_slice())),
                    batches.partition_point(|batch| batch.last_seqno <= resume.seqno),
                ),
                None => (None, 0),
            };
            let kept_end = if base_is_resume {
                first_kept
            } else {
                base_position + 1
            };
            let spans = batches[first_kept..kept_end].iter().map(|batch| BatchSpan {
                first_seqno: batch.first_seqno,
                last_seqno: batch.last_seqno,
                view: batch.view,
            });
            *history = HistoryState::restore_after(
                skipped_through,
                spans,
                frontier,
                note.clone(),
                identity,
            )?;
            // The batches fetched in front of the first gap since.
            history.filled(ledger.first_gap().map_or(u64::MAX, |gap| gap.held_before));
            replay_from = kept_end;
        }
    }
    // Reading, decoding and checking a batch (its write sets, leaves and
    // signed checkpoint) needs nothing from the batches before it: done in
    // parallel, a window at a time; the tree and the store take them in order.
    for window in batches[replay_from..].chunks(REPLAY_WINDOW_BATCHES) {
        let checked = window
            .par_iter()
            .map(|location| {
                let (batch, signature) = ledger.read_batch(location.first_seqno)?;
                let checked = check_logged_batch(&batch, &signature, identity)?;
                Ok((batch.first_seqno, signature.checkpoint, checked))
            })
            .collect::<Result<Vec<_>, ConsensusError>>()?;
        for (first_seqno, note, checked) in checked {
            let last_seqno = first_seqno + checked.write_sets.len() as u64 - 1;
            if last_seqno == base_seqno && base_note.as_deref() != Some(note.as_str()) {
                return Err(note_differs());
            }
            history.push_opened(checked.view, &checked.leaf_hashes, note, checked.checkpoint)?;
            for (offset, write_set) in checked.write_sets.iter().enumerate() {
                let seqno = first_seqno + offset as u64;
                if seqno > base_seqno {
                    store.apply(seqno, write_set)?;
                }
            }
        }
    }
    // Batches after the commit point stay speculative: a new leader may still
    // truncate them.
    let commit = committed
        .min(store.version())
        .max(store.committed_version());
    store.commit(commit)?;
    Ok(())
}

/// Batches read and checked in parallel at a time by a replay.
const REPLAY_WINDOW_BATCHES: usize = 256;

/// A logged batch checked on its own ([`check_logged_batch`]), ready to be
/// folded into the history in order.
pub struct CheckedBatch {
    /// Its view.
    pub view: u64,
    /// Its leaves.
    pub leaf_hashes: Vec<Digest>,
    /// Its write sets, decoded.
    pub write_sets: Vec<WriteSet>,
    /// Its signed checkpoint, opened with the service key.
    pub checkpoint: Checkpoint,
}

/// Checks one logged batch — each write set's encoding, each commit-evidence
/// digest against `identity` — and folds its leaves into `history`, which
/// checks the signed checkpoint against the tree (same origin, size and root).
/// Returns the write sets, for the caller to apply or not.
pub fn push_logged_batch(
    batch: &BatchEntry,
    signature: &SignatureEntry,
    history: &mut HistoryState,
    identity: &ServiceIdentity,
) -> Result<Vec<WriteSet>, ConsensusError> {
    let checked = check_logged_batch(batch, signature, identity)?;
    history.push_opened(
        checked.view,
        &checked.leaf_hashes,
        signature.checkpoint.clone(),
        checked.checkpoint,
    )?;
    Ok(checked.write_sets)
}

/// What [`push_logged_batch`] checks without the history: the write sets'
/// encoding, the commit-evidence digests, and the signed checkpoint's
/// signature (its size and root are checked when it is pushed).
pub fn check_logged_batch(
    batch: &BatchEntry,
    signature: &SignatureEntry,
    identity: &ServiceIdentity,
) -> Result<CheckedBatch, ConsensusError> {
    let mut write_sets = Vec::with_capacity(batch.txs.len());
    let mut leaf_hashes = Vec::with_capacity(batch.txs.len());
    for (index, tx) in batch.txs.iter().enumerate() {
        let id = batch.transaction_id(index);
        let fail = |reason: String| ConsensusError::Replay {
            seqno: id.seqno,
            reason,
        };
        write_sets.push(
            WriteSet::from_canonical_bytes(&tx.write_set)
                .map_err(|error| fail(format!("write set: {error}")))?,
        );
        let evidence = identity.commit_evidence(id);
        if evidence.digest().0 != tx.commit_evidence_digest {
            return Err(fail(
                "commit evidence digest differs: another commit secret".to_owned(),
            ));
        }
        let leaf_format = batch.leaf_format;
        // From format 2 the leaf covers the recorded command, so a rewritten
        // command fails the checkpoint check below.
        leaf_hashes.push(tx.leaf_hash(leaf_format));
    }
    let checkpoint = identity
        .open_checkpoint(&signature.checkpoint)
        .map_err(|error| ConsensusError::Replay {
            seqno: batch.last_seqno(),
            reason: format!("the batch's signed checkpoint: {error}"),
        })?;
    Ok(CheckedBatch {
        view: batch.view,
        leaf_hashes,
        write_sets,
        checkpoint,
    })
}

/// The id of the last transaction in `history`.
pub fn last_id(history: &HistoryState) -> Option<TransactionId> {
    history.transaction_id(history.size())
}

/// The state rebuilt from the ledger, from the newest valid snapshot if there is
/// one (falling back to a full replay if the snapshot does not fit the ledger).
pub(crate) fn recover(
    ledger: &Ledger,
    identity: &ServiceIdentity,
    snapshot_dir: Option<&std::path::Path>,
    committed: u64,
) -> Result<(Store, HistoryState, Option<u64>), ConsensusError> {
    let started = std::time::Instant::now();
    let candidates = snapshot_dir
        .into_iter()
        .flat_map(|dir| crate::snapshot::valid_newest_first(dir, identity));
    for loaded in candidates {
        let seqno = loaded.snapshot.version();
        let tree = if loaded.frontier.is_some() {
            "restored from the snapshot"
        } else {
            "rebuilt from the ledger (a version 1 snapshot)"
        };
        let loaded_ms = started.elapsed().as_millis() as u64;
        let mut store = Store::new();
        let mut history = HistoryState::new();
        match replay(
            ledger,
            &mut store,
            &mut history,
            identity,
            Some(loaded),
            committed,
        ) {
            Ok(()) => {
                tracing::info!(
                    seqno,
                    tree,
                    snapshot_load_ms = loaded_ms,
                    total_ms = started.elapsed().as_millis() as u64,
                    "state restored from a snapshot and the ledger suffix"
                );
                return Ok((store, history, Some(seqno)));
            }
            Err(error) => {
                tracing::warn!(seqno, %error, "the snapshot does not fit the ledger; trying an older one, then the whole ledger");
            }
        }
    }
    let mut store = Store::new();
    let mut history = HistoryState::new();
    replay(ledger, &mut store, &mut history, identity, None, committed)?;
    Ok((store, history, None))
}
