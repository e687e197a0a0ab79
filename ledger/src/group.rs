//! [`GroupCommit`]: one writer thread, many appenders, one fdatasync per group.
//!
//! The thread takes the first waiting request, then every append already queued
//! (up to [`GROUP_BYTES_MAX`](crate::GROUP_BYTES_MAX) bytes), writes them all,
//! syncs once, and only then completes each of them. So an appender is told its
//! batch is durable only after the fdatasync that covers it has returned, and under
//! load one sync covers many batches.
//!
//! A group that fails on a [`Clearable`] cause (a full disk, too many open
//! files) is neither reported nor given up: the writer sets the
//! [`StorageHealth`] condition (the engine then refuses new writes with the
//! reason), takes the ledger back to its last sync ([`Ledger::recover_tail`]),
//! waits with a growing backoff and writes the group again, until it succeeds;
//! then the condition clears and the group completes as usual. Any other I/O
//! error fails the group, and the ledger takes no more writes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::archive::ArchiveMove;
use crate::chunk::ChunkName;
use crate::error::Clearable;
use crate::{
    BatchEntry, BatchLocation, Ledger, LedgerError, SignatureEntry, GROUP_BYTES_MAX,
    GROUP_QUEUE_MAX,
};

/// First wait before a group that failed on a clearable cause is written again.
pub const STORAGE_RETRY_FIRST_MS: u64 = 20;

/// Longest wait between two attempts (the wait doubles up to it).
pub const STORAGE_RETRY_MAX_MS: u64 = 1_000;

/// Why writes are held back now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCondition {
    /// The cause.
    pub kind: Clearable,
    /// The failed operation, for humans (path, call, OS error).
    pub reason: String,
}

impl std::fmt::Display for StorageCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cause = match self.kind {
            Clearable::Full => "no space left for the ledger",
            Clearable::Descriptors => "too many open files",
        };
        write!(f, "{cause} ({})", self.reason)
    }
}

/// What the writer thread shares with the engine: the current condition, and
/// the shutdown flag that ends a retry loop.
#[derive(Debug, Default)]
pub struct StorageHealth {
    condition: Mutex<Option<StorageCondition>>,
    stopping: AtomicBool,
}

impl StorageHealth {
    /// The condition holding writes back, if any.
    pub fn condition(&self) -> Option<StorageCondition> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StorageCondition>> {
        self.condition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(&self, kind: Clearable, reason: String) {
        let mut condition = self.lock();
        if condition.is_none() {
            tracing::warn!(
                ?kind,
                %reason,
                "ledger writes fail on a condition that can clear: new writes are refused, the failed ones are retried until it clears"
            );
        }
        *condition = Some(StorageCondition { kind, reason });
    }

    fn clear(&self) {
        if self.lock().take().is_some() {
            tracing::warn!("the ledger writes again: the storage condition cleared");
        }
    }
}

/// What an appender is told once its batch is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Where the batch is.
    pub location: BatchLocation,
    /// The durable seqno after the sync that covered it (at least its last seqno).
    pub durable_seqno: u64,
}

/// A completion callback: runs on the writer thread, so it must be quick (send on
/// a channel, wake a task).
pub type Completion<T> = Box<dyn FnOnce(Result<T, LedgerError>) + Send>;

enum Request {
    Append {
        batch: BatchEntry,
        signature: SignatureEntry,
        done: Completion<Durable>,
    },
    Truncate {
        last_kept_seqno: u64,
        done: Completion<()>,
    },
    Commit {
        seqno: u64,
        done: Completion<()>,
    },
    /// Resume after the last batch at a snapshot (`Ledger::append_resume`).
    Resume {
        resume: Box<crate::ResumeEntry>,
        done: Completion<crate::Resumption>,
    },
    /// Commit what is durable up to `seqno`, not waited for.
    CommitDurable {
        seqno: u64,
    },
    /// The committed chunks to archive (`archive.rs`).
    Archivable {
        keep_live: usize,
        done: Completion<Vec<ArchiveMove>>,
    },
    /// A filled chunk to take in (`fill.rs`).
    Adopt {
        filled: Box<crate::FilledChunk>,
        done: Completion<crate::Resumption>,
    },
    /// The first gap, if any.
    FirstGap {
        done: Completion<Option<crate::Resumption>>,
    },
    /// A chunk is in the archive: drop its live copy.
    Archived {
        name: ChunkName,
        path: PathBuf,
        done: Completion<()>,
    },
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    syncs: AtomicU64,
}

/// The writer thread's handle. Dropping it (or [`GroupCommit::shutdown`]) lets the
/// thread finish the queued requests and stop.
pub struct GroupCommit {
    /// The ledger folder (its archive is inside).
    dir: PathBuf,
    sender: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<Ledger>>,
    counters: Arc<Counters>,
    health: Arc<StorageHealth>,
}

impl GroupCommit {
    /// Starts the writer thread, which owns `ledger` until shutdown.
    pub fn spawn(ledger: Ledger) -> Result<Self, LedgerError> {
        let dir = ledger.dir().to_owned();
        let (sender, receiver) = sync_channel(GROUP_QUEUE_MAX);
        let counters = Arc::new(Counters::default());
        let health = Arc::new(StorageHealth::default());
        let thread_counters = Arc::clone(&counters);
        let thread_health = Arc::clone(&health);
        let thread = std::thread::Builder::new()
            .name("stele-ledger".to_owned())
            .spawn(move || run(ledger, &receiver, &thread_counters, &thread_health))
            .map_err(|source| LedgerError::io(std::path::Path::new("."), "spawn writer", source))?;
        Ok(GroupCommit {
            dir,
            sender: Some(sender),
            thread: Some(thread),
            counters,
            health,
        })
    }

    fn send(&self, request: Request) -> Result<(), LedgerError> {
        let sender = self.sender.as_ref().ok_or(LedgerError::WriterStopped)?;
        // Blocks while GROUP_QUEUE_MAX requests wait: back-pressure on appenders.
        sender.send(request).map_err(|_| LedgerError::WriterStopped)
    }

    /// Queues an append; `done` runs once it is durable (or failed).
    pub fn append(
        &self,
        batch: BatchEntry,
        signature: SignatureEntry,
        done: impl FnOnce(Result<Durable, LedgerError>) + Send + 'static,
    ) -> Result<(), LedgerError> {
        self.send(Request::Append {
            batch,
            signature,
            done: Box::new(done),
        })
    }

    /// Appends and waits until durable.
    pub fn append_blocking(
        &self,
        batch: BatchEntry,
        signature: SignatureEntry,
    ) -> Result<Durable, LedgerError> {
        self.call(|done| Request::Append {
            batch,
            signature,
            done,
        })
    }

    /// Truncates after every earlier request is done, and waits.
    pub fn truncate_blocking(&self, last_kept_seqno: u64) -> Result<(), LedgerError> {
        self.call(|done| Request::Truncate {
            last_kept_seqno,
            done,
        })
    }

    /// Appends a resume entry after every earlier request is done (durable
    /// when it returns), and waits.
    pub fn resume_blocking(
        &self,
        resume: crate::ResumeEntry,
    ) -> Result<crate::Resumption, LedgerError> {
        self.call(|done| Request::Resume {
            resume: Box::new(resume),
            done,
        })
    }

    /// Marks `seqno` committed after every earlier request is done, and waits.
    pub fn commit_blocking(&self, seqno: u64) -> Result<(), LedgerError> {
        self.call(|done| Request::Commit { seqno, done })
    }

    /// Marks the transactions up to `seqno` that are durable committed, after
    /// every earlier request, without waiting (a replica that knows them
    /// committed before its own copy is synced marks them at a later call).
    /// A failure is logged: the marks are names and index files, not data.
    pub fn commit_durable(&self, seqno: u64) -> Result<(), LedgerError> {
        self.send(Request::CommitDurable { seqno })
    }

    /// Moves the committed chunks but the newest `keep_live` to the archive
    /// (`archive.rs`), one at a time: each is copied and synced off the
    /// writer thread, which then only drops the live copy. Blocking; returns
    /// how many chunks moved.
    pub fn archive_pass(&self, keep_live: usize) -> Result<usize, LedgerError> {
        crate::archive::remove_unfinished(&self.dir);
        let moves = self.call(|done| Request::Archivable { keep_live, done })?;
        for moving in &moves {
            let path = crate::archive::copy_to_archive(&self.dir, moving)?;
            let name = moving.name;
            self.call(|done| Request::Archived { name, path, done })?;
        }
        Ok(moves.len())
    }

    /// Takes a filled chunk (written with [`crate::write_filled_chunk`]) into
    /// the ledger after every earlier request, and waits: the first gap as it
    /// now is.
    pub fn adopt_blocking(
        &self,
        filled: crate::FilledChunk,
    ) -> Result<crate::Resumption, LedgerError> {
        self.call(|done| Request::Adopt {
            filled: Box::new(filled),
            done,
        })
    }

    /// The ledger's first gap (seqnos a resume entry skips and no filled
    /// chunk holds yet), if a chunk can fill it ([`crate::Ledger::fillable_gap`]).
    pub fn first_gap_blocking(&self) -> Result<Option<crate::Resumption>, LedgerError> {
        self.call(|done| Request::FirstGap { done })
    }

    /// Sends the request `make` builds around a completion, and waits for it.
    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Completion<T>) -> Request,
    ) -> Result<T, LedgerError> {
        let (sender, receiver) = sync_channel(1);
        self.send(make(Box::new(move |result| {
            // The waiter only goes away if its thread died; nothing to tell then.
            let _ = sender.send(result);
        })))?;
        receiver.recv().map_err(|_| LedgerError::WriterStopped)?
    }

    /// Batches appended so far.
    pub fn appends(&self) -> u64 {
        self.counters.appends.load(Ordering::Relaxed)
    }

    /// fdatasyncs made so far.
    pub fn syncs(&self) -> u64 {
        self.counters.syncs.load(Ordering::Relaxed)
    }

    /// The writer's health: the condition holding writes back, if any.
    pub fn health(&self) -> Arc<StorageHealth> {
        Arc::clone(&self.health)
    }

    /// Finishes the queued requests, stops the thread and hands the ledger back.
    /// A group being retried on a full disk is given up (reported failed: it
    /// never became durable).
    pub fn shutdown(mut self) -> Result<Ledger, LedgerError> {
        self.health.stopping.store(true, Ordering::Release);
        self.sender = None;
        let thread = self.thread.take().ok_or(LedgerError::WriterStopped)?;
        thread.join().map_err(|_| LedgerError::WriterStopped)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.health.stopping.store(true, Ordering::Release);
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // A panic on the writer thread has already been reported by the hook.
            let _ = thread.join();
        }
    }
}

/// One append of a group, kept until it is durable: a group that failed on a
/// clearable cause is written again from these.
struct Pending {
    batch: BatchEntry,
    signature: SignatureEntry,
    done: Completion<Durable>,
    appended: Result<BatchLocation, LedgerError>,
}

/// The writer loop: one group per iteration.
fn run(
    mut ledger: Ledger,
    receiver: &Receiver<Request>,
    counters: &Counters,
    health: &StorageHealth,
) -> Ledger {
    let mut waiting: Vec<Pending> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        let mut group_bytes = 0usize;
        // Write the appends of the group; stop at anything else.
        loop {
            let Some(Request::Append {
                batch,
                signature,
                done,
            }) = next.take_if(|request| matches!(request, Request::Append { .. }))
            else {
                break;
            };
            group_bytes += batch.approx_bytes();
            let appended = ledger.append(&batch, &signature);
            waiting.push(Pending {
                batch,
                signature,
                done,
                appended,
            });
            counters.appends.fetch_add(1, Ordering::Relaxed);
            if group_bytes >= GROUP_BYTES_MAX {
                break;
            }
            // Empty or disconnected: the group ends here either way.
            next = receiver.try_recv().ok();
        }
        if !waiting.is_empty() {
            complete_group(&mut ledger, &mut waiting, counters, health);
        }
        match next {
            Some(Request::Truncate {
                last_kept_seqno,
                done,
            }) => done(ledger.truncate(last_kept_seqno)),
            Some(Request::Commit { seqno, done }) => done(ledger.commit(seqno)),
            Some(Request::Resume { resume, done }) => done(ledger.append_resume(&resume)),
            Some(Request::CommitDurable { seqno }) => {
                let seqno = seqno.min(ledger.durable_seqno());
                if seqno > ledger.committed_seqno() {
                    if let Err(error) = ledger.commit(seqno) {
                        tracing::warn!(%error, seqno, "cannot mark the ledger committed");
                    }
                }
            }
            Some(Request::Archivable { keep_live, done }) => {
                done(Ok(ledger.archivable(keep_live)));
            }
            Some(Request::Archived { name, path, done }) => done(ledger.archived(&name, &path)),
            Some(Request::Adopt { filled, done }) => done(ledger.adopt_filled(*filled)),
            Some(Request::FirstGap { done }) => done(Ok(ledger.fillable_gap().cloned())),
            Some(Request::Append { .. }) | None => {}
        }
    }
    // Every sender is gone: make what was written durable before handing back.
    if ledger.last_seqno() > ledger.durable_seqno() {
        let _ = ledger.sync();
    }
    ledger
}

/// One sync for the whole group, then every completion; on a clearable
/// failure, the group is written again (with backoff) until it goes through.
fn complete_group(
    ledger: &mut Ledger,
    waiting: &mut Vec<Pending>,
    counters: &Counters,
    health: &StorageHealth,
) {
    let mut backoff_ms = STORAGE_RETRY_FIRST_MS;
    loop {
        let synced = ledger.sync();
        counters.syncs.fetch_add(1, Ordering::Relaxed);
        // The first failure is the cause; later appends only saw the ledger
        // stopped by it.
        let cause = waiting
            .iter()
            .find_map(|pending| pending.appended.as_ref().err())
            .or(synced.as_ref().err());
        let clearable = cause.and_then(|error| Some((error.clearable()?, error.to_string())));
        let failed = cause.is_some();
        let Some((kind, reason)) = clearable else {
            if !failed {
                health.clear();
            }
            finish_group(waiting, synced);
            return;
        };
        if health.stopping.load(Ordering::Acquire) {
            finish_group(waiting, synced);
            return;
        }
        health.enter(kind, reason);
        // Back to the last sync, retried while that too fails clearably.
        loop {
            std::thread::sleep(Duration::from_millis(backoff_ms));
            backoff_ms = (backoff_ms * 2).min(STORAGE_RETRY_MAX_MS);
            match ledger.recover_tail() {
                Ok(()) => break,
                Err(error)
                    if error.clearable().is_some() && !health.stopping.load(Ordering::Acquire) =>
                {
                    tracing::warn!(%error, "cannot take the ledger back to its last sync yet");
                }
                Err(error) => {
                    let mut error = Some(error);
                    for pending in waiting.drain(..) {
                        (pending.done)(Err(error.take().unwrap_or(LedgerError::Poisoned)));
                    }
                    return;
                }
            }
        }
        for pending in waiting.iter_mut() {
            let first_seqno = pending.batch.first_seqno;
            pending.appended = if first_seqno <= ledger.durable_seqno() {
                // Made durable before the failure (a sync that went through
                // and a rename after it that did not).
                ledger.locate(first_seqno)
            } else {
                ledger.append(&pending.batch, &pending.signature)
            };
        }
    }
}

/// Completes every append of the group with its outcome.
fn finish_group(waiting: &mut Vec<Pending>, synced: Result<u64, LedgerError>) {
    let (durable_seqno, mut sync_error) = match synced {
        Ok(durable_seqno) => (Some(durable_seqno), None),
        Err(error) => (None, Some(error)),
    };
    for pending in waiting.drain(..) {
        let result = match (pending.appended, durable_seqno) {
            (Ok(location), Some(durable_seqno)) => Ok(Durable {
                location,
                durable_seqno,
            }),
            (Err(error), _) => Err(error),
            // The write went out but its sync failed: not durable. The first
            // is told why (the cause reaches the log), the others that the
            // ledger stopped.
            (Ok(_), None) => Err(sync_error.take().unwrap_or(LedgerError::Poisoned)),
        };
        (pending.done)(result);
    }
}
