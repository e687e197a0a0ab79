//! `stele-ledger`: the append-only ledger files, Stele's durable truth.
//!
//! Everything else a node holds (KV state, indexes, snapshots) is derived from
//! these files and can be rebuilt from them. `docs/ledger-format.md` specifies
//! the bytes.
//!
//! The modules:
//!
//! - [`entry`] — what the ledger records: [`Entry`] (genesis, batch, signature)
//!   and [`TxRecord`], CBOR-encoded.
//! - [`frame`] — the chunk header and the `length | CRC32C | payload` frame, and
//!   the scan of a chunk's bytes into frames (telling a torn tail from corruption).
//! - [`chunk`] — chunk file names (`ledger_<first>`, `ledger_<first>-<last>`,
//!   `ledger_<first>-<last>.committed`) and listing a ledger folder.
//! - [`ledger`] — [`Ledger`]: open with recovery, append, fdatasync, truncate,
//!   commit, and reads through an in-memory seqno index.
//! - `recovery` — the scan behind [`Ledger::open`] (private).
//! - [`archive`] — committed chunks moved to `archive/` (a folder or a
//!   mount), still listed, read and verified.
//! - [`chunk_index`] — the index file of a committed chunk, which `open`
//!   reads instead of scanning the chunk.
//! - [`group`] — [`GroupCommit`]: a writer thread that covers many appends with
//!   one fdatasync and reports each append durable only after it.
//! - [`fill`] — filling the seqnos a resume entry skipped: batches fetched
//!   from peers, checked like `stele verify` does, written as committed chunks
//!   in front of the gap and adopted by the running ledger.
//! - [`verify`] — the offline verifier behind `stele verify`.
//! - [`fixture`] — deterministic synthetic ledgers for tests and benchmarks.
//! - [`error`] — [`LedgerError`].
//!
//! Invariants kept:
//!
//! - Seqnos are contiguous from 1; every batch entry is directly followed by the
//!   signature entry over the tree that ends with its last transaction, and both
//!   are written and synced together, so after recovery the ledger ends with a
//!   signature and every transaction in it has a receipt.
//! - A chunk is closed only after a signature entry, so each closed chunk is
//!   self-contained; the open chunk is the only file ever appended to or cut.
//! - A committed chunk never changes; `open` takes its batch locations from
//!   its index file when that matches the chunk's name and length, and scans
//!   it otherwise (reads check each frame's checksum; `stele verify` checks all).
//! - Recovery cuts only a torn tail of the open chunk (a frame that runs past the
//!   end of the file, a last frame whose checksum fails, zero fill, or a batch
//!   whose signature is missing) and reports it; a bad frame anywhere else is an
//!   error naming the file and offset, never a silent truncation.
//! - After an I/O error on write or sync, the ledger refuses every further write
//!   (what reached the disk is unknown) until it is reopened, which recovers, or
//!   [`Ledger::recover_tail`] cuts it back to its last sync (the group writer
//!   does so on a full disk or too many open files, and writes the failed group
//!   again).

pub mod archive;
pub mod chunk;
pub mod chunk_index;
pub mod entry;
pub mod error;
pub mod fill;
pub mod fixture;
pub mod frame;
pub mod group;
pub mod ledger;
mod recovery;
pub mod verify;

pub use entry::{
    has_command_digest, BatchEntry, Entry, Genesis, ResumeEntry, SignatureEntry, TxRecord,
    LEAF_FORMAT_1, LEAF_FORMAT_2, LEAF_FORMAT_CURRENT,
};
pub use error::{Clearable, LedgerError};
pub use fill::{write_filled_chunk, FilledChunk, GapCheck};
pub use group::{Durable, GroupCommit, StorageCondition, StorageHealth};
pub use ledger::{
    read_batch_at, BatchLocation, Ledger, LedgerConfig, Recovery, Resumption, TornTail,
};
pub use verify::{
    verify_ledger, verify_ledger_against, verify_ledger_with, verify_split_ledger, KeySource,
    Progress, Trust, VerifyFailure, VerifySummary,
};

/// Largest frame payload, in bytes. The batcher keeps batches far smaller; a frame
/// claiming more is corrupt (and is never allocated).
pub const ENTRY_BYTES_MAX: usize = 64 << 20;

/// Default size past which the open chunk is closed (after the next signature).
pub const CHUNK_BYTES_DEFAULT: u64 = 64 << 20;

/// Smallest chunk size a configuration may ask for (smaller only multiplies files).
pub const CHUNK_BYTES_MIN: u64 = 4096;

/// Mode of the ledger folder: the ledger is the service's data, for its owner only.
pub const LEDGER_DIR_MODE: u32 = 0o700;

/// Mode of every chunk file (owner read/write only).
pub const CHUNK_FILE_MODE: u32 = 0o600;

/// Most transactions in one batch entry.
pub const BATCH_TXS_MAX: usize = 100_000;

/// Most append requests the group-commit queue holds before appenders wait.
pub const GROUP_QUEUE_MAX: usize = 1024;

/// Most bytes one group writes before it syncs (bounds the latency of the first
/// request of a group behind a flood of later ones).
pub const GROUP_BYTES_MAX: usize = 16 << 20;
