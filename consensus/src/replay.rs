//! Rebuilding the KV store and the history from the ledger when a node starts:
//! the ledger is the truth, everything in memory is derived from it.

use stele_history::TransactionId;
use stele_kv::{Store, WriteSet};
use stele_ledger::{BatchEntry, Ledger, SignatureEntry};

use crate::history::HistoryState;
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
/// are not applied (their leaves are still rebuilt), and the snapshot's checkpoint
/// must be the signature the ledger holds after the batch ending at its version.
pub fn replay(
    ledger: &Ledger,
    store: &mut Store,
    history: &mut HistoryState,
    identity: &ServiceIdentity,
    base: Option<LoadedSnapshot>,
    committed: u64,
) -> Result<(), ConsensusError> {
    check_genesis(ledger, identity)?;
    let (base_seqno, base_note) = match base {
        Some(loaded) => {
            let seqno = loaded.snapshot.version();
            *store = Store::from_snapshot(loaded.snapshot);
            (seqno, Some(loaded.note))
        }
        None => (0, None),
    };
    if base_seqno > 0
        && !ledger
            .batches()
            .iter()
            .any(|batch| batch.last_seqno == base_seqno)
    {
        return Err(ConsensusError::Replay {
            seqno: base_seqno,
            reason: "the snapshot does not end at a batch of this ledger".to_owned(),
        });
    }
    for location in ledger.batches() {
        let (batch, signature) = ledger.read_batch(location.first_seqno)?;
        if batch.last_seqno() == base_seqno && base_note.as_deref() != Some(&signature.checkpoint) {
            return Err(ConsensusError::Replay {
                seqno: base_seqno,
                reason: "the snapshot's checkpoint is not the ledger's signature at its seqno"
                    .to_owned(),
            });
        }
        let write_sets = push_logged_batch(&batch, &signature, history, identity)?;
        for (offset, write_set) in write_sets.iter().enumerate() {
            let seqno = batch.first_seqno + offset as u64;
            if seqno > base_seqno {
                store.apply(seqno, write_set)?;
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
    history.push_replayed(
        batch.view,
        &leaf_hashes,
        signature.checkpoint.clone(),
        identity,
    )?;
    Ok(write_sets)
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
    if let Some(loaded) = snapshot_dir.and_then(|dir| crate::snapshot::newest(dir, identity)) {
        let seqno = loaded.snapshot.version();
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
                    "state restored from a snapshot and the ledger suffix"
                );
                return Ok((store, history, Some(seqno)));
            }
            Err(error) => {
                tracing::warn!(seqno, %error, "the snapshot does not fit the ledger; replaying it all");
            }
        }
    }
    let mut store = Store::new();
    let mut history = HistoryState::new();
    replay(ledger, &mut store, &mut history, identity, None, committed)?;
    Ok((store, history, None))
}
