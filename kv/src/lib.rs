//! `stele-kv`: versioned, transactional maps.
//!
//! The modules:
//!
//! - [`write_set`] — [`WriteSet`] (the writes and deletes of one transaction, with its
//!   canonical encoding and SHA-256 digest) and [`ReadSet`].
//! - [`tx`] — [`Tx`], one transaction reading through a [`ReadView`] and buffering its
//!   writes in a [`WriteSet`].
//! - [`store`] — [`Store`], the state at the head version plus an undo log for every
//!   speculative version; [`ReadView`] and [`Overlay`] (pending writes over a view);
//!   [`Committed`], the committed state as a view (what reads from clients see);
//!   [`Frozen`], the state at one version set aside cheaply (a clone of the state
//!   shares it) to be turned into a [`Snapshot`] away from the store's lock.
//! - `state` — the state itself: (map, key) -> value in sharded copy-on-write hash
//!   tables, so a clone costs a few thousand reference counts (one per shard).
//! - `entry` — what an entry holds: its name (`map || key`) and value, each
//!   inline when short, shared (`Arc`) beyond.
//! - [`snapshot`] — [`Snapshot`], the state at one version as deterministic bytes,
//!   written to a file as a stream (no second copy of the state in memory).
//! - [`encoding`] — the length-prefixed byte layout shared by digests and snapshots
//!   (specified in `docs/execution.md`).
//! - [`error`] — [`KvError`].
//!
//! Invariants kept:
//!
//! - Versions are contiguous: version `v` is applied only on top of `v - 1`; an
//!   aborted transaction still occupies its version with an empty write set.
//! - `committed_version <= version`, and every version in
//!   `committed_version + 1 ..= version` can be rolled back exactly (the undo log
//!   holds the previous value of every key it wrote); nothing at or before the
//!   committed version can be.
//! - Equal states give equal snapshot bytes and digests; equal write sets give equal
//!   canonical bytes and digests (everything is ordered by map, then key, byte-wise).

pub mod encoding;
mod entry;
pub mod error;
pub mod snapshot;
mod state;
pub mod store;
pub mod tx;
pub mod write_set;

pub use error::KvError;
pub use snapshot::Snapshot;
pub use store::{Committed, Frozen, Overlay, ReadView, Store};
pub use tx::Tx;
pub use write_set::{ReadSet, WriteSet};

/// A position in the transaction order: the seqno of the transaction that produced
/// it. Seqnos start at 1; version 0 is the empty state before any transaction.
pub type Version = u64;

/// Largest map name the store accepts, in bytes (a hard ceiling; the frontends
/// enforce tighter limits on client input before execution).
pub const MAP_NAME_BYTES_MAX: usize = 1024;

/// Largest key the store accepts, in bytes.
pub const KEY_BYTES_MAX: usize = 4096;

/// Largest value the store accepts, in bytes.
pub const VALUE_BYTES_MAX: usize = 1 << 20;

/// Most versions that may be applied past the committed version before the store
/// refuses more: the undo log is memory, so it is bounded; consensus commits long
/// before this in normal operation.
pub const SPECULATIVE_VERSIONS_MAX: u64 = 1 << 22;
