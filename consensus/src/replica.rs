//! [`Replica`]: the state a node derives from its log — the KV store (committed
//! and speculative versions) and the history (leaves, signed checkpoints) — and
//! the four things done to it:
//!
//! - **execute** (primary): run a batch of commands, fold the leaves into the
//!   history, sign the checkpoint: an [`ExecutedBatch`] to propose;
//! - **check** (follower, before acknowledging): re-execute a proposed batch and
//!   compare every write set, commit-evidence digest and claims digest, then the
//!   root, with the primary's;
//! - **roll back** speculative batches (a truncated log suffix, a lost
//!   leadership);
//! - **confirm** (after commit): the batch's checkpoint must be the one this
//!   node's tree gives; a mismatch then is a determinism bug and stops the node.
//!
//! Speculative state is identified by tree size and root, not by log index: a
//! batch is "already here" when the history holds a batch ending at the same
//! seqno with the same signed checkpoint (same root over the same leaves).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, RwLock};

use stele_dispatcher::{Dispatcher, TxResult};
use stele_frontends::Command;
use stele_history::hash::sha256;
use stele_history::{claims_digest, Digest, TransactionId};
use stele_kv::Store;
use stele_ledger::{has_command_digest, BatchEntry, SignatureEntry, TxRecord, LEAF_FORMAT_CURRENT};

use crate::batch::ExecutedBatch;
use crate::high_water::HighWater;
use crate::history::{HistoryState, TxDigests};
use crate::identity::ServiceIdentity;
use crate::sync::{lock, read, write};
use crate::waiters::Waiters;
use crate::ConsensusError;

/// A deliberate execution fault, for the tests that prove divergence is caught.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// Honest execution.
    #[default]
    None,
    /// As a follower, this node's re-execution changes one write of every batch.
    CorruptFollower,
    /// As the primary, this node changes one write of every batch it proposes.
    CorruptPrimary,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// Batches executed.
    pub batches: AtomicU64,
    /// Transactions executed.
    pub transactions: AtomicU64,
    /// Transactions committed.
    pub committed: AtomicU64,
    /// Batches this node refused because its re-execution disagreed.
    pub divergences: AtomicU64,
    /// Transactions rolled back (speculative batches dropped).
    pub rolled_back: AtomicU64,
    /// Snapshot transfers installed.
    pub snapshots_installed: AtomicU64,
}

/// The derived state of one node, shared by the executor, the follower check,
/// the Raft state machine and readers.
pub struct Replica {
    pub(crate) store: RwLock<Store>,
    pub(crate) history: RwLock<HistoryState>,
    committed_seqno: AtomicU64,
    failure: Mutex<Option<String>>,
    last_divergence: Mutex<Option<String>>,
    pub(crate) identity: ServiceIdentity,
    pub(crate) counters: EngineCounters,
    /// The execution lock: serialises everything that changes the
    /// speculative state (primary execution, follower check, confirm by
    /// re-execution, rollback, snapshot install), and holds the dispatcher
    /// the executing ones share.
    pub(crate) execution: Mutex<Dispatcher>,
    pub(crate) fault: Fault,
    /// Wakes the snapshot thread with a committed seqno.
    pub(crate) snapshots: Mutex<Option<SyncSender<u64>>>,
    pub(crate) snapshot_interval_tx: u64,
    /// Committed leaves the history keeps in memory (`HistoryState::release`).
    history_leaves_kept: u64,
    last_snapshot_seqno: AtomicU64,
    /// Keys in the committed state, as of the last commit (what a snapshot
    /// writes: `raft/compaction.rs` spaces Raft snapshots by it).
    committed_keys: AtomicU64,
    /// Submitters waiting for the commit of their batch.
    pub(crate) waiters: Waiters,
    /// The committed tree recorded on disk (set once the engine has checked
    /// the ledger against it).
    pub(crate) high_water: Mutex<Option<HighWater>>,
}

impl Replica {
    /// State rebuilt from the ledger, committed up to `committed_seqno`.
    pub(crate) fn new(
        store: Store,
        history: HistoryState,
        identity: ServiceIdentity,
        dispatcher: Dispatcher,
        fault: Fault,
        snapshot_interval_tx: u64,
        history_leaves_kept: u64,
    ) -> Self {
        let committed = store.committed_version();
        Replica {
            store: RwLock::new(store),
            history: RwLock::new(history),
            committed_seqno: AtomicU64::new(committed),
            failure: Mutex::new(None),
            last_divergence: Mutex::new(None),
            identity,
            counters: EngineCounters::default(),
            execution: Mutex::new(dispatcher),
            fault,
            snapshots: Mutex::new(None),
            snapshot_interval_tx,
            history_leaves_kept,
            last_snapshot_seqno: AtomicU64::new(committed),
            committed_keys: AtomicU64::new(0),
            waiters: Waiters::default(),
            high_water: Mutex::new(None),
        }
    }

    /// Stops the node from serving: every later submission is refused with
    /// `reason`.
    pub(crate) fn fail(&self, reason: String) {
        tracing::error!(%reason, "the engine stops");
        lock(&self.failure).get_or_insert(reason);
    }

    /// Why the node stopped, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// The last batch this node refused, and why.
    pub(crate) fn last_divergence(&self) -> Option<String> {
        lock(&self.last_divergence).clone()
    }

    pub(crate) fn record_divergence(&self, reason: String) {
        tracing::warn!(%reason, "refused a batch: re-execution disagrees with the primary");
        self.counters.divergences.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_divergence) = Some(reason);
    }

    /// Seqno of the last committed transaction.
    /// Keys in the committed state as of the last commit.
    pub(crate) fn committed_keys(&self) -> u64 {
        self.committed_keys.load(Ordering::Relaxed)
    }

    pub(crate) fn committed_seqno(&self) -> u64 {
        self.committed_seqno.load(Ordering::Acquire)
    }

    pub(crate) fn read_store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        read(&self.store)
    }

    fn write_store(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        write(&self.store)
    }

    pub(crate) fn read_history(&self) -> std::sync::RwLockReadGuard<'_, HistoryState> {
        read(&self.history)
    }

    pub(crate) fn write_history(&self) -> std::sync::RwLockWriteGuard<'_, HistoryState> {
        write(&self.history)
    }

    /// Primary: executes `commands` as the next batch of `view`, folds the leaves
    /// into the history and signs the checkpoint. The caller holds `execution`.
    pub(crate) fn execute(
        &self,
        dispatcher: &Dispatcher,
        view: u64,
        commands: &[Command],
    ) -> Result<(ExecutedBatch, Vec<TxResult>), ConsensusError> {
        let prev_root = self.read_history().root();
        let mut results = dispatcher.execute(&mut self.write_store(), commands)?;
        if self.fault == Fault::CorruptPrimary {
            corrupt(&mut results);
        }
        let (records, leaf_hashes) = self.leaves(view, LEAF_FORMAT_CURRENT, commands, &results);
        let note = self
            .write_history()
            .push_batch(view, &leaf_hashes, &self.identity)?
            .to_owned();
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .transactions
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        self.debug_assert_aligned();
        let batch = ExecutedBatch {
            batch: BatchEntry {
                view,
                first_seqno: results.first().map_or(0, |result| result.seqno),
                txs: records,
                leaf_format: LEAF_FORMAT_CURRENT,
            },
            signature: SignatureEntry {
                view,
                checkpoint: note,
            },
            prev_root: prev_root.0,
        };
        Ok((batch, results))
    }

    /// The ledger records and leaf hashes of executed transactions,
    /// with leaves in `leaf_format` (a follower matches the primary's batch).
    fn leaves(
        &self,
        view: u64,
        leaf_format: u8,
        commands: &[Command],
        results: &[TxResult],
    ) -> (Vec<TxRecord>, Vec<Digest>) {
        let mut records = Vec::with_capacity(results.len());
        let mut leaf_hashes = Vec::with_capacity(results.len());
        for (command_of, result) in commands.iter().zip(results) {
            let id = TransactionId {
                view,
                seqno: result.seqno,
            };
            let evidence_digest = self.identity.commit_evidence(id).digest();
            let command = encode_command(command_of);
            let tx = TxDigests {
                write_set_digest: Digest(result.write_set_digest),
                claims_digest: claims_digest(claims_of(command_of)),
                command_digest: has_command_digest(leaf_format).then(|| sha256(&command)),
            };
            leaf_hashes.push(tx.leaf_hash(&evidence_digest));
            records.push(TxRecord {
                command,
                write_set: result.write_set.canonical_bytes(),
                claims_digest: tx.claims_digest.0,
                commit_evidence_digest: evidence_digest.0,
            });
        }
        (records, leaf_hashes)
    }

    /// True if the history holds exactly `batch` (a batch ending at its last
    /// seqno with the same signed checkpoint).
    pub(crate) fn holds(&self, batch: &ExecutedBatch) -> bool {
        self.holds_checkpoint(
            batch.batch.last_seqno(),
            batch.batch.view,
            &batch.signature.checkpoint,
        )
    }

    /// True if the history holds a batch of `view` ending at `last` whose signed
    /// checkpoint is `note`. The notes of old committed batches are released
    /// (`HistoryState::release`); for those, a committed batch of the same view
    /// ending there is the one: committed log entries never change (Raft's log
    /// matching), and this one was compared when it was checked or replayed;
    /// so is one before where a resumed history starts.
    pub(crate) fn holds_checkpoint(&self, last: u64, view: u64, note: &str) -> bool {
        let history = self.read_history();
        match history.note_ending_at(last) {
            Some(held) => held == note,
            // Before where a history resumed at a snapshot starts: committed
            // (the snapshot was), of the view the view starts give.
            None if last <= history.starts_after() => history
                .transaction_id(last)
                .is_some_and(|held| held.view == view),
            None => {
                last <= self.committed_seqno()
                    && history
                        .batch_ending_at(last)
                        .is_some_and(|held| held.view == view)
            }
        }
    }

    /// Follower: re-executes `batch` on top of the current speculative state
    /// (which must end right before it) and compares everything with the
    /// primary's. On a mismatch nothing stays applied and the reason is returned.
    /// The caller holds `execution`.
    pub(crate) fn check(
        &self,
        dispatcher: &Dispatcher,
        batch: &ExecutedBatch,
    ) -> Result<(), ConsensusError> {
        let first = batch.batch.first_seqno;
        let before = first.saturating_sub(1);
        let diverge = |reason: String| ConsensusError::Divergence {
            seqno: first,
            reason,
        };
        let size = self.read_history().size();
        if size != before {
            return Err(diverge(format!(
                "this node's history ends at seqno {size}, the batch starts at {first}"
            )));
        }
        if self.read_history().root().0 != batch.prev_root {
            return Err(diverge(
                "the batch does not extend this node's Merkle root".to_owned(),
            ));
        }
        let commands = decode_commands(&batch.batch).map_err(diverge)?;
        let mut results = dispatcher.execute(&mut self.write_store(), &commands)?;
        if self.fault == Fault::CorruptFollower {
            corrupt(&mut results);
        }
        let view = batch.batch.view;
        let (records, leaf_hashes) =
            self.leaves(view, batch.batch.leaf_format, &commands, &results);
        let compared = compare(&records, &batch.batch.txs, first).and_then(|()| {
            Ok(self.write_history().push_replayed(
                view,
                &leaf_hashes,
                batch.signature.checkpoint.clone(),
                &self.identity,
            )?)
        });
        if let Err(error) = compared {
            self.write_store().rollback(before)?;
            self.write_history().truncate(before)?;
            return Err(diverge(error.to_string()));
        }
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .transactions
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        self.debug_assert_aligned();
        Ok(())
    }

    /// Drops every speculative transaction after `seqno` (never a committed
    /// one). The caller holds `execution`.
    pub(crate) fn rollback_to(&self, seqno: u64) -> Result<(), ConsensusError> {
        let committed = self.committed_seqno();
        if seqno < committed {
            return Err(ConsensusError::Divergence {
                seqno,
                reason: format!("refusing to roll back below the commit point {committed}"),
            });
        }
        let size = self.read_history().size();
        if size <= seqno {
            return Ok(());
        }
        self.write_store().rollback(seqno)?;
        self.write_history().truncate(seqno)?;
        self.counters
            .rolled_back
            .fetch_add(size - seqno, Ordering::Relaxed);
        self.debug_assert_aligned();
        tracing::info!(
            from = size,
            to = seqno,
            "rolled back speculative transactions"
        );
        Ok(())
    }

    /// The speculative state's two halves end at the same seqno: the store's
    /// newest version is the history's size.
    fn debug_assert_aligned(&self) {
        debug_assert_eq!(
            self.read_store().version(),
            self.read_history().size(),
            "the KV store and the history end at the same seqno"
        );
    }

    /// Protocol -> core: a proposed batch, before this node acknowledges it.
    /// Held already (this node executed or checked it): nothing to do. Else
    /// whatever speculative state follows the point it extends is rolled back
    /// and the batch is re-executed and compared ([`Replica::check`]). The
    /// caller holds `execution`.
    pub(crate) fn check_proposed(
        &self,
        dispatcher: &Dispatcher,
        batch: &ExecutedBatch,
    ) -> Result<(), ConsensusError> {
        if self.holds(batch) {
            return Ok(());
        }
        self.rollback_to(batch.batch.first_seqno.saturating_sub(1))?;
        self.check(dispatcher, batch)
    }

    /// Protocol -> core: a logged batch was cut from the log (never a
    /// committed one): if this node holds it, it and what follows are rolled
    /// back. A failure stops the node.
    pub(crate) fn truncated(&self, batch: &ExecutedBatch) {
        let _execution = lock(&self.execution);
        if self.holds(batch) {
            let keep = batch.batch.first_seqno.saturating_sub(1);
            if let Err(error) = self.rollback_to(keep) {
                self.fail(format!("rolling back a truncated batch: {error}"));
            }
        }
    }

    /// Protocol -> core: `batch` committed. It is confirmed ([`Replica::confirm`])
    /// and its waiting submitters are answered. The caller has raised the high
    /// water to it or past it ([`Replica::raise_high_water`]). A failure is
    /// fatal: the node stops itself (a determinism bug or a lost batch).
    pub(crate) fn apply_committed(&self, batch: &ExecutedBatch) -> Result<(), ConsensusError> {
        if let Err(error) = self.confirm(batch) {
            let reason = format!(
                "the committed batch at seqno {} does not confirm: {error}",
                batch.batch.first_seqno
            );
            self.fail(reason.clone());
            return Err(ConsensusError::Stopped(reason));
        }
        self.waiters
            .committed(batch.batch.view, batch.batch.first_seqno);
        Ok(())
    }

    /// Before a group of committed batches is confirmed (made visible): records
    /// the tree ending with `last`, the last of them, as committed, durably
    /// (see `high_water`). Its checkpoint is opened with the service key, so
    /// only a size and root the service signed are recorded.
    pub(crate) fn raise_high_water(&self, last: &ExecutedBatch) -> Result<(), ConsensusError> {
        let mut high_water = lock(&self.high_water);
        let Some(high_water) = high_water.as_mut() else {
            return Ok(());
        };
        if last.batch.last_seqno() <= high_water.size() {
            return Ok(());
        }
        let checkpoint = self.identity.open_checkpoint(&last.signature.checkpoint)?;
        high_water.raise(checkpoint.tree_size, checkpoint.root)
    }

    /// After commit: `batch` must be in the history (re-executed here if the
    /// speculative state lost it); then its transactions are committed.
    pub(crate) fn confirm(&self, batch: &ExecutedBatch) -> Result<(), ConsensusError> {
        let last = batch.batch.last_seqno();
        let held = self.holds(batch);
        if last <= self.committed_seqno() && held {
            return Ok(());
        }
        if !held {
            let dispatcher = lock(&self.execution);
            tracing::info!(
                seqno = batch.batch.first_seqno,
                "re-executing a committed batch missing from the speculative state"
            );
            self.rollback_to(batch.batch.first_seqno.saturating_sub(1))?;
            self.check(&dispatcher, batch)?;
        }
        self.commit(last, batch.batch.txs.len() as u64);
        Ok(())
    }

    /// After a snapshot install: the state becomes `store`, committed at its
    /// version, where the history (rebuilt from the received ledger) ends.
    /// The caller holds `execution`.
    pub(crate) fn install_state(&self, store: Store) {
        let seqno = store.committed_version();
        *self.write_store() = store;
        self.committed_seqno.store(seqno, Ordering::Release);
        self.last_snapshot_seqno.store(seqno, Ordering::Relaxed);
        self.counters
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Commits up to `seqno`: reads see it, snapshots may be taken at it.
    fn commit(&self, seqno: u64, transactions: u64) {
        debug_assert!(
            seqno >= self.committed_seqno(),
            "the commit point only moves forward"
        );
        let keys = {
            let mut store = self.write_store();
            if let Err(error) = store.commit(seqno) {
                drop(store);
                self.fail(format!("committing seqno {seqno}: {error}"));
                return;
            }
            store.len() as u64
        };
        self.committed_keys.store(keys, Ordering::Relaxed);
        let before = self.committed_seqno.swap(seqno, Ordering::AcqRel);
        // Freeing history memory takes the history's write lock: once per
        // RELEASE_EVERY_TX committed transactions, not per batch.
        if seqno / RELEASE_EVERY_TX != before / RELEASE_EVERY_TX {
            self.write_history()
                .release(seqno, self.history_leaves_kept);
        }
        self.counters
            .committed
            .fetch_add(transactions, Ordering::Relaxed);
        let due = crate::snapshot::state_due(
            seqno,
            self.last_snapshot_seqno.load(Ordering::Relaxed),
            self.snapshot_interval_tx,
            keys,
        );
        if due {
            self.last_snapshot_seqno.store(seqno, Ordering::Relaxed);
            if let Some(sender) = lock(&self.snapshots).as_ref() {
                // Full: a snapshot is being written; the next interval takes another.
                let _ = sender.try_send(seqno);
            }
        }
    }
}

#[cfg(test)]
impl Replica {
    /// An empty replica of a test service named `origin` (fixed keys, one
    /// worker, honest, no snapshots), for the tests that drive the core.
    pub(crate) fn fresh_for_tests(origin: &str) -> Replica {
        let identity = ServiceIdentity::new(
            origin,
            stele_history::SigningKey::from_bytes(&[5; 32]),
            [6; 32],
        )
        .expect("a valid origin");
        Replica::new(
            Store::new(),
            HistoryState::new(),
            identity,
            Dispatcher::new(1).expect("one worker"),
            Fault::None,
            0,
            stele_history::state::LEAVES_COMMITTED_KEPT_DEFAULT,
        )
    }
}

/// Committed transactions between two releases of history memory
/// (`HistoryState::release`).
const RELEASE_EVERY_TX: u64 = 1024;

/// The deliberate fault: one extra write in the first transaction of a batch.
fn corrupt(results: &mut [TxResult]) {
    if let Some(first) = results.first_mut() {
        first
            .write_set
            .put("stele.fault", "injected", b"corrupted".to_vec());
        first.write_set_digest = first.write_set.digest();
    }
}

/// Compares this node's records of a batch with the primary's, transaction by
/// transaction, naming the first difference.
fn compare(ours: &[TxRecord], theirs: &[TxRecord], first: u64) -> Result<(), ConsensusError> {
    if ours.len() != theirs.len() {
        return Err(ConsensusError::Divergence {
            seqno: first,
            reason: format!("{} results for {} transactions", ours.len(), theirs.len()),
        });
    }
    for (offset, (ours, theirs)) in ours.iter().zip(theirs).enumerate() {
        let what = if ours.write_set != theirs.write_set {
            "write set"
        } else if ours.commit_evidence_digest != theirs.commit_evidence_digest {
            "commit evidence digest"
        } else if ours.claims_digest != theirs.claims_digest {
            "claims digest"
        } else {
            continue;
        };
        return Err(ConsensusError::Divergence {
            seqno: first + offset as u64,
            reason: format!("the {what} differs from the primary's"),
        });
    }
    Ok(())
}

/// The commands of a batch as the ledger stores them (CBOR).
pub(crate) fn decode_commands(batch: &BatchEntry) -> Result<Vec<Command>, String> {
    batch
        .txs
        .iter()
        .enumerate()
        .map(|(offset, tx)| {
            ciborium::from_reader(tx.command.as_slice()).map_err(|error| {
                format!(
                    "command at seqno {} does not decode: {error}",
                    batch.first_seqno + offset as u64
                )
            })
        })
        .collect()
}

/// The claims of a command, if it carries any.
fn claims_of(command: &Command) -> Option<&str> {
    match command {
        Command::Transaction(transaction) => transaction.claims.as_deref(),
        Command::Logging(_) | Command::SmallBank(_) | Command::Redis(_) => None,
    }
}

/// The command as stored in the ledger: CBOR.
fn encode_command(command: &Command) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(command, &mut bytes)
        .expect("serializing a command into a Vec cannot fail");
    bytes
}
