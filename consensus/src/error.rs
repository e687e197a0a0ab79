//! The error type of this crate: [`ConsensusError`]. Its retryable part, what
//! a submitter is told, is [`SubmitError`](crate::SubmitError).

/// What can stop the engine or refuse a request.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// A refusal the submitter can retry (later, or at another node).
    #[error(transparent)]
    Submit(#[from] crate::SubmitError),
    /// The engine has stopped (shut down, or failed on an earlier error).
    #[error("the node is not accepting transactions: {0}")]
    Stopped(String),
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] stele_ledger::LedgerError),
    /// Execution failed (an internal invariant).
    #[error(transparent)]
    Dispatch(#[from] stele_dispatcher::DispatchError),
    /// History (Merkle tree, signing) failed.
    #[error(transparent)]
    History(stele_history::HistoryError),
    /// The KV store refused a write set.
    #[error(transparent)]
    Kv(#[from] stele_kv::KvError),
    /// The ledger does not replay to what it says (a root differs, an entry does
    /// not decode): the node refuses to start on it.
    #[error("ledger replay failed at seqno {seqno}: {reason}")]
    Replay {
        /// Where.
        seqno: u64,
        /// What.
        reason: String,
    },
    /// A configuration value out of range.
    #[error("configuration: {0}")]
    Config(String),
    /// The Raft log storage (meta file, ledger reads) failed.
    #[error("raft log storage at {}: {reason}", path.display())]
    RaftStorage {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
    /// This node's re-execution of a batch disagrees with the primary's.
    #[error("divergence at seqno {seqno}: {reason}")]
    Divergence {
        /// The first transaction concerned.
        seqno: u64,
        /// What differs.
        reason: String,
    },
    /// The Raft engine failed or refused.
    #[error("raft: {0}")]
    Raft(String),
    /// The BFT ordering (its write-ahead log, its core) failed or refused.
    #[error("bft: {0}")]
    Bft(String),
    /// An operation did not finish in time (and was undone as it says).
    #[error("timed out: {0}")]
    Timeout(String),
}

/// A history error, except a failed replay, which stays [`ConsensusError::Replay`]
/// as when the history lived in this crate.
impl From<stele_history::HistoryError> for ConsensusError {
    fn from(error: stele_history::HistoryError) -> Self {
        match error {
            stele_history::HistoryError::Replay { seqno, reason } => {
                ConsensusError::Replay { seqno, reason }
            }
            other => ConsensusError::History(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_history::HistoryError;

    #[test]
    fn a_failed_history_replay_stays_a_replay_error() {
        let replay = HistoryError::Replay {
            seqno: 4,
            reason: "a rollback must end at a batch boundary".to_owned(),
        };
        let error = ConsensusError::from(replay.clone());
        assert_eq!(error.to_string(), replay.to_string());
        assert!(matches!(error, ConsensusError::Replay { seqno: 4, .. }));
        let other = HistoryError::MalformedNote("no signature lines");
        assert!(matches!(
            ConsensusError::from(other),
            ConsensusError::History(_)
        ));
    }
}
