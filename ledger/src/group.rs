//! [`GroupCommit`]: one writer thread, many appenders, one fdatasync per group.
//!
//! The thread takes the first waiting request, then every append already queued
//! (up to [`GROUP_BYTES_MAX`](crate::GROUP_BYTES_MAX) bytes), writes them all,
//! syncs once, and only then completes each of them. So an appender is told its
//! batch is durable only after the fdatasync that covers it has returned, and under
//! load one sync covers many batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::{
    BatchEntry, BatchLocation, Ledger, LedgerError, SignatureEntry, GROUP_BYTES_MAX,
    GROUP_QUEUE_MAX,
};

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
    sender: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<Ledger>>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Starts the writer thread, which owns `ledger` until shutdown.
    pub fn spawn(ledger: Ledger) -> Result<Self, LedgerError> {
        let (sender, receiver) = sync_channel(GROUP_QUEUE_MAX);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("stele-ledger".to_owned())
            .spawn(move || run(ledger, &receiver, &thread_counters))
            .map_err(|source| LedgerError::io(std::path::Path::new("."), "spawn writer", source))?;
        Ok(GroupCommit {
            sender: Some(sender),
            thread: Some(thread),
            counters,
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

    /// Marks `seqno` committed after every earlier request is done, and waits.
    pub fn commit_blocking(&self, seqno: u64) -> Result<(), LedgerError> {
        self.call(|done| Request::Commit { seqno, done })
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

    /// Finishes the queued requests, stops the thread and hands the ledger back.
    pub fn shutdown(mut self) -> Result<Ledger, LedgerError> {
        self.sender = None;
        let thread = self.thread.take().ok_or(LedgerError::WriterStopped)?;
        thread.join().map_err(|_| LedgerError::WriterStopped)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // A panic on the writer thread has already been reported by the hook.
            let _ = thread.join();
        }
    }
}

/// The writer loop: one group per iteration.
fn run(mut ledger: Ledger, receiver: &Receiver<Request>, counters: &Counters) -> Ledger {
    let mut waiting: Vec<(Completion<Durable>, Result<BatchLocation, LedgerError>)> = Vec::new();
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
            group_bytes += batch
                .txs
                .iter()
                .map(|tx| tx.command.len() + tx.write_set.len() + 64)
                .sum::<usize>();
            waiting.push((done, ledger.append(&batch, &signature)));
            counters.appends.fetch_add(1, Ordering::Relaxed);
            if group_bytes >= GROUP_BYTES_MAX {
                break;
            }
            // Empty or disconnected: the group ends here either way.
            next = receiver.try_recv().ok();
        }
        if !waiting.is_empty() {
            complete_group(&mut ledger, &mut waiting, counters);
        }
        match next {
            Some(Request::Truncate {
                last_kept_seqno,
                done,
            }) => done(ledger.truncate(last_kept_seqno)),
            Some(Request::Commit { seqno, done }) => done(ledger.commit(seqno)),
            Some(Request::Append { .. }) | None => {}
        }
    }
    // Every sender is gone: make what was written durable before handing back.
    if ledger.last_seqno() > ledger.durable_seqno() {
        let _ = ledger.sync();
    }
    ledger
}

/// One sync for the whole group, then every completion.
fn complete_group(
    ledger: &mut Ledger,
    waiting: &mut Vec<(Completion<Durable>, Result<BatchLocation, LedgerError>)>,
    counters: &Counters,
) {
    let synced = ledger.sync();
    counters.syncs.fetch_add(1, Ordering::Relaxed);
    for (done, appended) in waiting.drain(..) {
        let result = match (appended, &synced) {
            (Ok(location), Ok(durable_seqno)) => Ok(Durable {
                location,
                durable_seqno: *durable_seqno,
            }),
            (Err(error), _) => Err(error),
            // The write went out but its sync failed: not durable.
            (Ok(_), Err(_)) => Err(LedgerError::Poisoned),
        };
        done(result);
    }
}
