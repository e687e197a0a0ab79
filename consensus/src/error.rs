//! The one error type of this crate.

/// What can stop the engine or refuse a request.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The submission queue is full.
    #[error("the node is busy: {0} submissions are waiting")]
    Busy(usize),
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
    /// Writes go to the leader; this node is not it.
    #[error("this node is not the leader{}", leader_hint(*leader, address.as_deref()))]
    NotLeader {
        /// The leader's node id, if known.
        leader: Option<u64>,
        /// The leader's client address (`host:port`), if known.
        address: Option<String>,
    },
    /// The Raft engine failed or refused.
    #[error("raft: {0}")]
    Raft(String),
    /// An operation did not finish in time (and was undone as it says).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The ledger cannot write for a cause that clears by itself (a full disk,
    /// too many open files): new writes are refused until it does; the node
    /// goes on serving reads and resumes writing without a restart.
    #[error("{0}; writes are refused until it clears, then resume by themselves")]
    Storage(stele_ledger::StorageCondition),
}

fn leader_hint(leader: Option<u64>, address: Option<&str>) -> String {
    match (leader, address) {
        (Some(id), Some(address)) => format!("; the leader is node {id} at {address}"),
        (Some(id), None) => format!("; the leader is node {id}"),
        _ => "; no leader is known yet (an election is under way)".to_owned(),
    }
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

impl ConsensusError {
    /// A copy to hand to each of several waiting submitters (the variants that
    /// carry library errors become `Stopped` with their message).
    pub fn clone_for_reply(&self) -> ConsensusError {
        match self {
            ConsensusError::Busy(count) => ConsensusError::Busy(*count),
            ConsensusError::NotLeader { leader, address } => ConsensusError::NotLeader {
                leader: *leader,
                address: address.clone(),
            },
            ConsensusError::Stopped(reason) => ConsensusError::Stopped(reason.clone()),
            ConsensusError::Storage(condition) => ConsensusError::Storage(condition.clone()),
            other => ConsensusError::Stopped(other.to_string()),
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
