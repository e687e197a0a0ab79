//! What a client hands the engine and what it is told: [`Submission`],
//! [`SubmitResult`], [`TxState`] and the retryable [`SubmitError`].

use stele_frontends::{Command, Outcome};
use stele_history::TransactionId;

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Never assigned.
    Unknown,
    /// Executed, not yet committed.
    Pending,
    /// Committed.
    Committed,
    /// The seqno belongs to another view.
    Invalid,
}

/// What a submitter is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitResult {
    /// The id assigned.
    pub transaction_id: TransactionId,
    /// True once committed (always, for a submission that asked to wait).
    pub committed: bool,
    /// The response or abort reason.
    pub outcome: Outcome,
}

/// A reply callback: runs on an engine thread, so it must be quick.
pub type Reply = Box<dyn FnOnce(Result<SubmitResult, SubmitError>) + Send>;

/// One command to order.
pub struct Submission {
    /// The command (already validated by the caller; an invalid one aborts).
    pub command: Command,
    /// Reply only once committed (else as soon as executed).
    pub wait: bool,
    /// Where the result goes.
    pub reply: Reply,
}

/// Why a submission was refused or not carried through. Every one is
/// retryable: later, or at another node. None of them means the submission
/// was committed, and none means it can never be (an engine's fatal errors
/// are [`ConsensusError`](crate::ConsensusError)s; a submitter caught by one
/// is told [`SubmitError::Stopped`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The submission queue is full.
    #[error("the node is busy: {waiting} submissions are waiting")]
    Busy {
        /// Submissions queued.
        waiting: usize,
    },
    /// Too many executed transactions wait for commit (followers down or
    /// slow): the primary takes no new batch until some commit.
    #[error(
        "the node is overloaded: {uncommitted} executed transactions wait for commit \
         (followers down or slow)"
    )]
    Overloaded {
        /// Executed transactions not yet committed.
        uncommitted: u64,
    },
    /// Writes go to the leader; this node is not it.
    #[error("this node is not the leader{}", leader_hint(*leader, address.as_deref()))]
    NotLeader {
        /// The leader's node id, if known.
        leader: Option<u64>,
        /// The leader's client address (`host:port`), if known.
        address: Option<String>,
    },
    /// The engine has stopped (shut down, or failed on an earlier error).
    #[error("the node is not accepting transactions: {0}")]
    Stopped(String),
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

impl SubmitError {
    /// What a submitter caught by an engine error is told: a retryable error
    /// as it is, any other as the engine having stopped, with its reason.
    pub fn from_engine(error: &crate::ConsensusError) -> SubmitError {
        match error {
            crate::ConsensusError::Submit(submit) => submit.clone(),
            other => SubmitError::Stopped(other.to_string()),
        }
    }
}
