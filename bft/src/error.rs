//! The crate's error types: [`BftError`] for consensus, [`WalError`] for the
//! on-disk write-ahead log (it carries IO errors, so it is not `Clone`).

use std::io;
use std::path::PathBuf;

use crate::context::{Height, ValidatorId, ValueId};

/// What can go wrong in `stele-bft`: a refused input (validator set, value,
/// message bytes, certificate) or a recovery that must stop the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BftError {
    /// A validator set must hold at least one validator.
    #[error("the validator set is empty")]
    EmptyValidatorSet,
    /// Validator ids are addresses: two entries may not share one.
    #[error("validator {0} appears twice in the validator set")]
    DuplicateValidator(ValidatorId),
    /// Two validators share a public key: a precommit's note text does not
    /// name its signer, so the key's signature would count for both.
    #[error("validator {0} has the public key of another validator in the set")]
    DuplicateKey(ValidatorId),
    /// A validator with no power could never count towards a quorum.
    #[error("validator {0} has zero voting power")]
    ZeroPower(ValidatorId),
    /// Malachite multiplies powers by 3 (`ThresholdParam::is_met`) and panics
    /// on overflow, so the total must stay at or below `u64::MAX / 3`.
    #[error("total voting power exceeds u64::MAX / 3")]
    PowerOverflow,
    /// The node's own id is not in the validator set it was given.
    #[error("validator {0} is not in the validator set")]
    NotAValidator(ValidatorId),
    /// The node's signing key does not match its entry in the validator set.
    #[error("the signing key of validator {0} does not match its public key in the set")]
    KeyMismatch(ValidatorId),
    /// A certificate names another value than the one checked.
    #[error("the certificate is for value {found}, not {expected}")]
    CertificateValueMismatch {
        /// The value the caller expected.
        expected: ValueId,
        /// The value the certificate names.
        found: ValueId,
    },
    /// A certificate names a signer twice.
    #[error("validator {0} signs the certificate twice")]
    DuplicateSigner(ValidatorId),
    /// A certificate names a signer outside the validator set.
    #[error("validator {0} signs the certificate but is not in the validator set")]
    UnknownSigner(ValidatorId),
    /// A certificate signature does not verify.
    #[error("the signature of validator {0} in the certificate does not verify")]
    BadSignature(ValidatorId),
    /// The signers of a certificate hold at most 2/3 of the voting power.
    #[error("the signers hold {signed} of {total} voting power, not more than 2/3")]
    NotEnoughPower {
        /// Power of the valid, distinct signers.
        signed: u64,
        /// Total power of the validator set.
        total: u64,
    },
    /// A value's checkpoint body is not a well-formed note body (see
    /// [`crate::Value::new`]).
    #[error("malformed value: {0}")]
    MalformedValue(String),
    /// Bytes that are not a [`crate::Message`] or [`crate::Decision`] this
    /// version reads.
    #[error("malformed message: {0}")]
    MalformedMessage(String),
    /// Replaying the write-ahead log re-derived a message that differs from the
    /// one recorded: the node must stop rather than sign a conflicting vote.
    #[error("write-ahead log replay diverged at height {height}: {detail}")]
    ReplayDivergence {
        /// The height being replayed.
        height: Height,
        /// Malachite's description of the divergence.
        detail: String,
    },
}

/// What can go wrong with the on-disk write-ahead log ([`crate::wal`]) and
/// its entry encoding ([`crate::codec`]). Any of these on `append` or `sync`
/// must stop the node: a vote sent without its durable entry could be signed
/// again differently after a restart.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file-system call failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done (`"open"`, `"write"`, ...).
        op: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The log is damaged where a torn write cannot explain it (before its
    /// last frame, or a checksummed frame that does not decode).
    #[error("{path} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where the damaged header or frame starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The entry holds an input the write-ahead log does not record.
    #[error("cannot encode a write-ahead log entry: {0}")]
    Encode(String),
    /// The bytes are not an entry this version can read.
    #[error("cannot decode a write-ahead log entry: {0}")]
    Decode(String),
    /// An encoded entry is larger than [`crate::wal::WAL_ENTRY_BYTES_MAX`].
    #[error("a write-ahead log entry of {size} bytes is over the maximum of {max}")]
    EntryTooLarge {
        /// The encoded size.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// The entry belongs to another height than the log's: the host must
    /// `reset` the log when a new height starts.
    #[error("the entry is for height {entry} but the log holds height {wal}")]
    WrongHeight {
        /// The log's height.
        wal: Height,
        /// The entry's height.
        entry: Height,
    },
    /// An earlier write or sync failed, so the file's end is unknown; reopen it
    /// (which cuts a torn frame) after the node restarts.
    #[error("an earlier write or sync of {path} failed; the log must be reopened")]
    Failed {
        /// The log file.
        path: PathBuf,
    },
}
