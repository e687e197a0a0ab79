//! The one error type of this crate.

use stele_frontends::FrontendError;
use stele_kv::KvError;

/// Why a batch could not be executed. On every error the store is left as it was
/// before the batch.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The worker count is 0 or above [`crate::WORKERS_MAX`].
    #[error("{workers} workers requested; between 1 and {max} are allowed")]
    Workers {
        /// What was asked for.
        workers: usize,
        /// The bound.
        max: usize,
    },
    /// The worker pool could not be started.
    #[error("starting the worker pool: {0}")]
    ThreadPool(String),
    /// More commands than [`crate::BATCH_ENTRIES_MAX`].
    #[error("batch of {entries} commands, more than the maximum {max}")]
    BatchTooLarge {
        /// The batch size.
        entries: usize,
        /// The bound.
        max: usize,
    },
    /// A frontend broke an invariant (touched an undeclared key).
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    /// The store refused a write set (e.g. too many speculative versions).
    #[error(transparent)]
    Kv(#[from] KvError),
}
