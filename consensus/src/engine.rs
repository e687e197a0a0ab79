//! [`Engine`]: the primary's pipeline with one member.
//!
//! One executor thread takes submissions in arrival order, cuts them into batches
//! (up to `batch_entries_max`, or whatever arrived within `batch_wait_us` of the
//! first), executes each batch with the dispatcher, folds the leaves into the
//! history and signs the checkpoint, then hands the batch and its signature to
//! the ledger's group-commit thread and goes on with the next batch. When the
//! fdatasync covering a batch returns, the ledger thread applies the commit rule
//! (one member: durable is committed) and answers the waiting clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stele_dispatcher::{Dispatcher, TxResult};
use stele_frontends::{Command, Outcome};
use stele_history::hash::sha256;
use stele_history::{claims_digest, Digest, Receipt, TransactionId};
use stele_kv::Store;
use stele_ledger::{BatchEntry, GroupCommit, Ledger, SignatureEntry, TxRecord};

use crate::history::{HistoryReadError, HistoryState, TxDigests};
use crate::identity::ServiceIdentity;
use crate::{
    replay, ConsensusError, BATCH_ENTRIES_DEFAULT, BATCH_WAIT_US_DEFAULT, SUBMIT_QUEUE_MAX,
};

/// How the engine batches and executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most commands in one batch.
    pub batch_entries_max: usize,
    /// Longest wait for a batch to fill after its first command, in microseconds.
    pub batch_wait_us: u64,
    /// Frontend workers of the dispatcher.
    pub workers: usize,
    /// The view batches are ordered in (the Raft term, with P5).
    pub view: u64,
    /// Where KV snapshots go (`None`: no snapshots).
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// Committed transactions between snapshots (0: no snapshots).
    pub snapshot_interval_tx: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_entries_max: BATCH_ENTRIES_DEFAULT,
            batch_wait_us: BATCH_WAIT_US_DEFAULT,
            workers: 1,
            view: 1,
            snapshot_dir: None,
            snapshot_interval_tx: 0,
        }
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Never assigned.
    Unknown,
    /// Executed, not yet committed.
    Pending,
    /// Committed.
    Committed,
    /// The seqno belongs to another view.
    Invalid,
}

/// What a submitter is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitResult {
    /// The id assigned.
    pub transaction_id: TransactionId,
    /// True once committed (always, for a submission that asked to wait).
    pub committed: bool,
    /// The response or abort reason.
    pub outcome: Outcome,
}

/// A reply callback: runs on an engine thread, so it must be quick.
pub type Reply = Box<dyn FnOnce(Result<SubmitResult, ConsensusError>) + Send>;

/// One command to order.
pub struct Submission {
    /// The command (already validated by the caller; an invalid one aborts).
    pub command: Command,
    /// Reply only once committed (else as soon as executed).
    pub wait: bool,
    /// Where the result goes.
    pub reply: Reply,
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
}

/// State shared by the executor, the ledger thread and readers.
struct Shared {
    store: RwLock<Store>,
    history: RwLock<HistoryState>,
    committed_seqno: AtomicU64,
    failure: Mutex<Option<String>>,
    identity: ServiceIdentity,
    counters: EngineCounters,
    /// Wakes the snapshot thread with a committed seqno.
    snapshots: Mutex<Option<SyncSender<u64>>>,
    snapshot_interval_tx: u64,
    last_snapshot_seqno: AtomicU64,
}

impl Shared {
    fn fail(&self, reason: String) {
        tracing::error!(%reason, "the engine stops");
        let mut failure = self
            .failure
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        failure.get_or_insert(reason);
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The commit rule of a single member: durable is committed.
    fn commit(&self, seqno: u64, transactions: u64) {
        let mut store = self
            .store
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Err(error) = store.commit(seqno) {
            drop(store);
            self.fail(format!("committing seqno {seqno}: {error}"));
            return;
        }
        drop(store);
        self.committed_seqno.store(seqno, Ordering::Release);
        self.counters
            .committed
            .fetch_add(transactions, Ordering::Relaxed);
        let due = self.snapshot_interval_tx > 0
            && seqno
                >= self.last_snapshot_seqno.load(Ordering::Relaxed) + self.snapshot_interval_tx;
        if due {
            self.last_snapshot_seqno.store(seqno, Ordering::Relaxed);
            let sender = self
                .snapshots
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if let Some(sender) = sender.as_ref() {
                // Full: a snapshot is being written; the next interval takes another.
                let _ = sender.try_send(seqno);
            }
        }
    }

    /// Writes a snapshot of the committed state (on the snapshot thread).
    fn snapshot(&self, dir: &std::path::Path) {
        let taken = {
            let store = self
                .store
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            let version = store.committed_version();
            store.snapshot(version)
        };
        let snapshot = match taken {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::warn!(%error, "cannot take a snapshot");
                return;
            }
        };
        let note = {
            let history = self
                .history
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            history
                .latest_checkpoint(snapshot.version())
                .filter(|batch| batch.last_seqno == snapshot.version())
                .map(|batch| batch.note.clone())
        };
        let Some(note) = note else {
            tracing::warn!(
                seqno = snapshot.version(),
                "no checkpoint ends at the snapshot's seqno"
            );
            return;
        };
        match crate::snapshot::write(dir, &snapshot, &note) {
            Ok(path) => {
                tracing::info!(seqno = snapshot.version(), path = %path.display(), "wrote a snapshot")
            }
            Err(error) => tracing::warn!(%error, "cannot write a snapshot"),
        }
    }
}

/// The running engine. Dropping it (or [`Engine::shutdown`]) finishes the queued
/// submissions, makes them durable and stops the threads.
pub struct Engine {
    shared: Arc<Shared>,
    sender: Option<SyncSender<Submission>>,
    executor: Option<JoinHandle<()>>,
    view: u64,
    restored_from: Option<u64>,
    snapshotter: Option<JoinHandle<()>>,
}

impl Engine {
    /// Rebuilds state from `ledger` and starts the executor and ledger threads.
    pub fn start(
        ledger: Ledger,
        identity: ServiceIdentity,
        config: EngineConfig,
    ) -> Result<Self, ConsensusError> {
        if config.batch_entries_max == 0 || config.batch_entries_max > stele_ledger::BATCH_TXS_MAX {
            return Err(ConsensusError::Config(format!(
                "batch_entries_max must be 1..={}",
                stele_ledger::BATCH_TXS_MAX
            )));
        }
        let dispatcher = Dispatcher::new(config.workers)?;
        let (store, history, restored_from) =
            recover(&ledger, &identity, config.snapshot_dir.as_deref())?;
        let committed = store.version();
        let (snapshot_sender, snapshot_receiver) = sync_channel(1);
        let snapshot_dir = config
            .snapshot_dir
            .clone()
            .filter(|_| config.snapshot_interval_tx > 0);
        let shared = Arc::new(Shared {
            store: RwLock::new(store),
            history: RwLock::new(history),
            committed_seqno: AtomicU64::new(committed),
            failure: Mutex::new(None),
            identity,
            counters: EngineCounters::default(),
            snapshots: Mutex::new(snapshot_dir.as_ref().map(|_| snapshot_sender)),
            snapshot_interval_tx: config.snapshot_interval_tx,
            last_snapshot_seqno: AtomicU64::new(committed),
        });
        let mut snapshotter = None;
        if let Some(dir) = snapshot_dir {
            let snapshot_shared = Arc::downgrade(&shared);
            let thread = std::thread::Builder::new()
                .name("stele-snapshot".to_owned())
                .spawn(move || {
                    while let Ok(_seqno) = snapshot_receiver.recv() {
                        let Some(shared) = snapshot_shared.upgrade() else {
                            break;
                        };
                        shared.snapshot(&dir);
                    }
                })
                .map_err(|error| {
                    ConsensusError::Stopped(format!("spawning the snapshot thread: {error}"))
                })?;
            snapshotter = Some(thread);
        }
        let group = GroupCommit::spawn(ledger)?;
        let (sender, receiver) = sync_channel(SUBMIT_QUEUE_MAX);
        let view = config.view;
        let executor_shared = Arc::clone(&shared);
        let executor = std::thread::Builder::new()
            .name("stele-executor".to_owned())
            .spawn(move || {
                let mut executor = Executor {
                    shared: executor_shared,
                    dispatcher,
                    group,
                    config,
                };
                executor.run(&receiver);
            })
            .map_err(|error| ConsensusError::Stopped(format!("spawning the executor: {error}")))?;
        Ok(Engine {
            shared,
            sender: Some(sender),
            executor: Some(executor),
            view,
            restored_from,
            snapshotter,
        })
    }

    /// The seqno of the snapshot the state was restored from at start, if any.
    pub fn restored_from_snapshot(&self) -> Option<u64> {
        self.restored_from
    }

    /// Queues a submission; refuses at once if the queue is full or the engine
    /// has stopped.
    pub fn submit(&self, submission: Submission) -> Result<(), ConsensusError> {
        if let Some(reason) = self.shared.failure() {
            return Err(ConsensusError::Stopped(reason));
        }
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| ConsensusError::Stopped("shutting down".to_owned()))?;
        sender.try_send(submission).map_err(|error| match error {
            TrySendError::Full(_) => ConsensusError::Busy(SUBMIT_QUEUE_MAX),
            TrySendError::Disconnected(_) => ConsensusError::Stopped("shutting down".to_owned()),
        })
    }

    /// The committed value of `key` in `map` and the id of its writer.
    pub fn kv_get(&self, map: &str, key: &str) -> Option<(Vec<u8>, TransactionId)> {
        let (value, seqno) = {
            let store = self.read_store();
            let (value, seqno) = store.get_committed(map, key)?;
            (value.to_vec(), seqno)
        };
        let id = self.read_history().transaction_id(seqno)?;
        Some((value, id))
    }

    /// Where transaction `id` is.
    pub fn tx_state(&self, id: TransactionId) -> TxState {
        let history = self.read_history();
        match history.batch_of(id.seqno) {
            None => TxState::Unknown,
            Some(batch) if batch.view != id.view => TxState::Invalid,
            Some(_) if id.seqno <= self.committed_seqno() => TxState::Committed,
            Some(_) => TxState::Pending,
        }
    }

    /// Seqno of the last committed transaction.
    pub fn committed_seqno(&self) -> u64 {
        self.shared.committed_seqno.load(Ordering::Acquire)
    }

    /// The last committed transaction.
    pub fn last_committed(&self) -> Option<TransactionId> {
        self.read_history().transaction_id(self.committed_seqno())
    }

    /// Seqno of the last executed transaction.
    pub fn executed_seqno(&self) -> u64 {
        self.read_history().size()
    }

    /// The receipt of committed transaction `id`.
    pub fn receipt(&self, id: TransactionId) -> Result<Receipt, HistoryReadError> {
        self.read_history()
            .receipt(id, self.committed_seqno(), &self.shared.identity)
    }

    /// The latest committed signed checkpoint.
    pub fn checkpoint(&self) -> Option<String> {
        self.read_history()
            .latest_checkpoint(self.committed_seqno())
            .map(|batch| batch.note.clone())
    }

    /// The consistency proof between two committed tree sizes.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, HistoryReadError> {
        self.read_history()
            .consistency(from, to, self.committed_seqno())
    }

    /// The service identity.
    pub fn identity(&self) -> &ServiceIdentity {
        &self.shared.identity
    }

    /// The view.
    pub fn view(&self) -> u64 {
        self.view
    }

    /// The counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.shared.counters
    }

    /// Why the engine stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    fn read_store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.shared
            .store
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn read_history(&self) -> std::sync::RwLockReadGuard<'_, HistoryState> {
        self.shared
            .history
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Stops taking submissions, finishes and syncs the queued ones, stops the
    /// threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.sender = None;
        if let Some(executor) = self.executor.take() {
            if executor.join().is_err() {
                tracing::error!("the executor thread panicked");
            }
        }
        // Let a snapshot being written finish, then stop its thread.
        self.shared
            .snapshots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(snapshotter) = self.snapshotter.take() {
            if snapshotter.join().is_err() {
                tracing::error!("the snapshot thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The state rebuilt from the ledger, from the newest valid snapshot if there is
/// one (falling back to a full replay if the snapshot does not fit the ledger).
fn recover(
    ledger: &Ledger,
    identity: &ServiceIdentity,
    snapshot_dir: Option<&std::path::Path>,
) -> Result<(Store, HistoryState, Option<u64>), ConsensusError> {
    if let Some(loaded) = snapshot_dir.and_then(|dir| crate::snapshot::newest(dir, identity)) {
        let seqno = loaded.snapshot.version();
        let mut store = Store::new();
        let mut history = HistoryState::new();
        match replay::replay(ledger, &mut store, &mut history, identity, Some(loaded)) {
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
    replay::replay(ledger, &mut store, &mut history, identity, None)?;
    Ok((store, history, None))
}

/// The executor thread's state.
struct Executor {
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
    group: GroupCommit,
    config: EngineConfig,
}

impl Executor {
    fn run(&mut self, receiver: &Receiver<Submission>) {
        while let Some(batch) = self.next_batch(receiver) {
            self.process(batch);
        }
        // Every sender is gone: the group-commit thread syncs what it holds when
        // it is dropped with the executor.
    }

    /// Blocks for the first submission, then takes more until the batch is full
    /// or `batch_wait_us` has passed. `None` once every sender is gone.
    fn next_batch(&self, receiver: &Receiver<Submission>) -> Option<Vec<Submission>> {
        let first = receiver.recv().ok()?;
        let mut batch = Vec::with_capacity(self.config.batch_entries_max.min(1024));
        batch.push(first);
        let deadline = Instant::now() + Duration::from_micros(self.config.batch_wait_us);
        while batch.len() < self.config.batch_entries_max {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(submission) => batch.push(submission),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        Some(batch)
    }

    fn process(&mut self, batch: Vec<Submission>) {
        if let Some(reason) = self.shared.failure() {
            for submission in batch {
                (submission.reply)(Err(ConsensusError::Stopped(reason.clone())));
            }
            return;
        }
        let (commands, replies): (Vec<Command>, Vec<(bool, Reply)>) = batch
            .into_iter()
            .map(|submission| (submission.command, (submission.wait, submission.reply)))
            .unzip();
        match self.execute(&commands) {
            Ok((entry, signature, results)) => {
                self.make_durable(entry, signature, results, replies)
            }
            Err(error) => {
                let reason = format!("executing a batch: {error}");
                self.shared.fail(reason.clone());
                for (_, reply) in replies {
                    reply(Err(ConsensusError::Stopped(reason.clone())));
                }
            }
        }
    }

    /// Executes, folds into the history, signs: the batch and signature entries.
    fn execute(
        &self,
        commands: &[Command],
    ) -> Result<(BatchEntry, SignatureEntry, Vec<TxResult>), ConsensusError> {
        let results = {
            let mut store = self
                .shared
                .store
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            self.dispatcher.execute(&mut store, commands)?
        };
        let view = self.config.view;
        let identity = &self.shared.identity;
        let mut records = Vec::with_capacity(results.len());
        let mut digests = Vec::with_capacity(results.len());
        let mut leaf_hashes = Vec::with_capacity(results.len());
        for (command, result) in commands.iter().zip(&results) {
            let id = TransactionId {
                view,
                seqno: result.seqno,
            };
            let evidence_digest = sha256(identity.commit_evidence(id).to_string().as_bytes());
            let tx = TxDigests {
                write_set_digest: Digest(result.write_set_digest),
                claims_digest: claims_digest(claims_of(command)),
            };
            leaf_hashes.push(tx.leaf_hash(&evidence_digest));
            digests.push(tx);
            records.push(TxRecord {
                command: encode_command(command),
                write_set: result.write_set.canonical_bytes(),
                claims_digest: tx.claims_digest.0,
                commit_evidence_digest: evidence_digest.0,
            });
        }
        let note = {
            let mut history = self
                .shared
                .history
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            history
                .push_batch(view, &digests, &leaf_hashes, identity)?
                .note
                .clone()
        };
        self.shared.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.shared
            .counters
            .transactions
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        let entry = BatchEntry {
            view,
            first_seqno: results.first().map_or(0, |result| result.seqno),
            txs: records,
        };
        let signature = SignatureEntry {
            view,
            checkpoint: note,
        };
        Ok((entry, signature, results))
    }

    /// Replies to the submitters that did not ask to wait, and hands the batch to
    /// the ledger; the others are answered when it is durable.
    fn make_durable(
        &mut self,
        entry: BatchEntry,
        signature: SignatureEntry,
        results: Vec<TxResult>,
        replies: Vec<(bool, Reply)>,
    ) {
        let view = entry.view;
        let last_seqno = entry.last_seqno();
        let transactions = results.len() as u64;
        let mut waiting = Vec::new();
        for (result, (wait, reply)) in results.into_iter().zip(replies) {
            let answer = SubmitResult {
                transaction_id: TransactionId {
                    view,
                    seqno: result.seqno,
                },
                committed: false,
                outcome: result.outcome,
            };
            if wait {
                waiting.push((answer, reply));
            } else {
                reply(Ok(answer));
            }
        }
        let shared = Arc::clone(&self.shared);
        let appended = self
            .group
            .append(entry, signature, move |durable| match durable {
                Ok(_) => {
                    shared.commit(last_seqno, transactions);
                    for (mut answer, reply) in waiting {
                        answer.committed = true;
                        reply(Ok(answer));
                    }
                }
                Err(error) => {
                    let reason = format!("the ledger failed: {error}");
                    shared.fail(reason.clone());
                    for (_, reply) in waiting {
                        reply(Err(ConsensusError::Stopped(reason.clone())));
                    }
                }
            });
        if let Err(error) = appended {
            self.shared
                .fail(format!("the ledger writer stopped: {error}"));
        }
    }
}

/// The claims of a command, if it carries any.
fn claims_of(command: &Command) -> Option<&str> {
    match command {
        Command::Transaction(transaction) => transaction.claims.as_deref(),
        Command::Logging(_) | Command::SmallBank(_) => None,
    }
}

/// The command as stored in the ledger: CBOR.
fn encode_command(command: &Command) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(command, &mut bytes)
        .expect("serializing a command into a Vec cannot fail");
    bytes
}
