//! The one error type of this crate.

use crate::Version;

/// What can go wrong in the versioned store. Every variant is a rejected request or
/// rejected input; none leaves the store changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// `apply` was given a version that does not directly follow the head.
    #[error("version {version} is not the next version (expected {expected})")]
    VersionNotNext {
        /// The version that was offered.
        version: Version,
        /// The only version that can be applied next.
        expected: Version,
    },
    /// A rollback, commit or snapshot named a version outside the retained range.
    #[error("version {version} is outside the retained range {committed}..={head}")]
    VersionOutOfRange {
        /// The version that was asked for.
        version: Version,
        /// The last globally committed version (nothing before it is retained).
        committed: Version,
        /// The head version.
        head: Version,
    },
    /// Too many uncommitted versions are held.
    #[error("more than {max} speculative versions past the committed version")]
    SpeculativeVersionsExceeded {
        /// The bound, [`crate::SPECULATIVE_VERSIONS_MAX`].
        max: u64,
    },
    /// A map name, key or value is larger than the store accepts.
    #[error("{field} is {bytes} bytes, more than the maximum {max}")]
    EntryTooLarge {
        /// `"map"`, `"key"` or `"value"`.
        field: &'static str,
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// Snapshot bytes whose trailing SHA-256 does not match their contents.
    #[error("snapshot digest mismatch: the bytes are corrupt")]
    SnapshotDigestMismatch,
    /// Snapshot or write-set bytes that do not follow the documented layout.
    #[error("malformed encoding: {reason}")]
    Malformed {
        /// Which rule was broken.
        reason: &'static str,
    },
}
