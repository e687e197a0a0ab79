//! `stele-dispatcher`: deterministic parallel execution of an ordered batch.
//!
//! The modules:
//!
//! - [`schedule`] — [`Schedule`], the split of a batch into waves over the commands'
//!   declared key sets: a transaction runs one wave after the latest earlier
//!   transaction that shares a key with it, so no two transactions of a wave share a
//!   key.
//! - [`dispatcher`] — [`Dispatcher`], which runs the waves on a rayon pool of N
//!   frontend workers over a batch overlay, merges the results back into batch order
//!   and applies the write sets to the store, each at its seqno;
//!   [`execute_serial`], the serial reference engine (what N = 1 runs).
//! - [`error`] — [`DispatchError`].
//!
//! Invariant: for every N, the responses, abort reasons, write sets, digests and final
//! state are byte-identical to serial execution of the batch in order. Why it holds:
//! a transaction touches only its declared keys; every earlier transaction sharing a
//! key with it is in an earlier wave (so its writes are in the overlay when it runs),
//! and every later one is in a later wave (so its writes are not).
//!
//! An aborted transaction still occupies its seqno, with an empty write set, so the
//! seqnos of a batch are `store.version() + 1 ..= store.version() + batch.len()`.

pub mod dispatcher;
pub mod error;
pub mod schedule;

pub use dispatcher::{execute_serial, Dispatcher, TxResult};
pub use error::DispatchError;
pub use schedule::Schedule;

/// Most commands in one batch.
pub const BATCH_ENTRIES_MAX: usize = 100_000;

/// Most frontend workers (threads) one dispatcher may start.
pub const WORKERS_MAX: usize = 256;

/// A wave with fewer transactions than this runs on the calling thread: handing one
/// transaction to the pool costs more than running it (this is what keeps a fully
/// contended batch, one transaction per wave, as fast as serial execution).
pub const PARALLEL_WAVE_TXS_MIN: usize = 4;

/// A batch whose waves hold fewer transactions than this on average runs serially
/// (reusing the key sets already computed): with so little parallelism, the overlay
/// and the hand-offs to the pool cost more than the extra workers gain. Both paths
/// give identical results, so this is purely a speed choice.
pub const PARALLEL_MEAN_WAVE_TXS_MIN: usize = 8;

/// How many transactions the contention test lets a batch's start run "behind" the
/// mean before it gives up on parallelism (so a fully contended batch is detected
/// after about this many / `PARALLEL_MEAN_WAVE_TXS_MIN` transactions, and a batch
/// that starts with a few conflicts is not).
pub const CONTENTION_SLACK_TXS: usize = 64;
