//! The one error type of this crate (the offline verifier reports through
//! [`crate::VerifyFailure`], which names a position rather than an operation).

use std::path::{Path, PathBuf};

/// What can go wrong with the ledger files.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An operating-system call failed.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done, e.g. "fdatasync".
        operation: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Bytes that are not a valid ledger, where a crash cannot have left them.
    #[error("{} at byte {offset}: {reason}", file.display())]
    Corrupt {
        /// The chunk file.
        file: PathBuf,
        /// Offset of the bad frame or header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// `create` found ledger files already there.
    #[error("{} already holds a ledger", .0.display())]
    AlreadyExists(PathBuf),
    /// `open` found no ledger.
    #[error("{} holds no ledger (no ledger_1 chunk)", .0.display())]
    NotFound(PathBuf),
    /// An earlier write or sync failed: what reached the disk is unknown, so the
    /// ledger takes no more writes until it is reopened (which recovers).
    #[error("the ledger is stopped after an earlier I/O error; reopen it to recover")]
    Poisoned,
    /// An append whose first seqno does not follow the last one.
    #[error("batch starts at seqno {first_seqno}, expected {expected}")]
    NotNext {
        /// The batch's first seqno.
        first_seqno: u64,
        /// The only acceptable one.
        expected: u64,
    },
    /// A batch of the wrong shape.
    #[error("bad batch: {reason}")]
    BadBatch {
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry whose encoding is larger than [`crate::ENTRY_BYTES_MAX`].
    #[error("entry of {bytes} bytes, more than the maximum {max}")]
    EntryTooLarge {
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// A truncation to a seqno that is not the end of a batch.
    #[error("seqno {seqno} is not the last seqno of a batch; the ledger truncates whole batches")]
    NotABatchBoundary {
        /// The seqno asked for.
        seqno: u64,
    },
    /// A truncation below the committed seqno, or a commit past the durable one.
    #[error("seqno {seqno} is outside {low}..={high}")]
    SeqnoOutOfRange {
        /// The seqno asked for.
        seqno: u64,
        /// The lowest allowed.
        low: u64,
        /// The highest allowed.
        high: u64,
    },
    /// A read of a seqno the ledger does not hold.
    #[error("no transaction with seqno {0} in the ledger")]
    UnknownSeqno(u64),
    /// A read of a seqno a resume entry skips: the ledger resumes after it
    /// (a node that joined from a snapshot, before it fetched the batches).
    #[error("seqno {seqno} is not in this ledger yet: it resumes at seqno {resumes_at} after seqno {after_seqno} (the batches between are fetched from peers)")]
    NotHeld {
        /// The seqno asked for.
        seqno: u64,
        /// The last seqno held before the skipped ones.
        after_seqno: u64,
        /// The seqno the ledger resumes at.
        resumes_at: u64,
    },
    /// A resume entry that does not describe a tree.
    #[error("bad resume entry: {0}")]
    BadResume(String),
    /// Fetched batches that do not fill the ledger's first gap, or fail its
    /// checks (`fill.rs`).
    #[error("cannot fill the skipped seqnos: {0}")]
    BadFill(String),
    /// A configuration value out of range.
    #[error("ledger configuration: {0}")]
    Config(String),
    /// The group-commit writer has stopped.
    #[error("the ledger writer has stopped")]
    WriterStopped,
}

/// A cause of failed writes that clears without a restart (an operator frees
/// space, another process closes files): the ledger writer waits and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clearable {
    /// No space left on the device, or the disk quota is used up.
    Full,
    /// Too many open files, in this process or in the system.
    Descriptors,
}

/// `EMFILE` and `ENFILE` on Linux (no `std::io::ErrorKind` names them).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

impl LedgerError {
    /// The clearable cause of this error, if it is one. Anything else that
    /// fails a write (EIO, a missing file) is taken as permanent.
    pub fn clearable(&self) -> Option<Clearable> {
        let LedgerError::Io { source, .. } = self else {
            return None;
        };
        match (source.kind(), source.raw_os_error()) {
            (std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded, _) => {
                Some(Clearable::Full)
            }
            (_, Some(EMFILE | ENFILE)) => Some(Clearable::Descriptors),
            _ => None,
        }
    }

    /// Wraps an I/O error with the path and the operation.
    pub fn io(path: &Path, operation: &'static str, source: std::io::Error) -> Self {
        LedgerError::Io {
            path: path.to_owned(),
            operation,
            source,
        }
    }
}
