//! [`Sequencer`]: the seam between the replica core and an ordering protocol.
//!
//! The core (intake, executor, [`Replica`], waiters, history, KV snapshots,
//! replay) executes batches and keeps the speculative state; a protocol
//! orders the executed batches and tells the core what became of them. The
//! Raft backend (`raft/`) is one; the in-memory twin (`sequencer/twin.rs`,
//! tests only) is another, and a BFT backend plugs in the same way.
//!
//! The two directions:
//!
//! - core -> protocol, this trait: who leads in which view, propose a batch
//!   (in order, without waiting), the logged batches after a point (to settle
//!   the speculative state), membership, linearizable reads, status, stop;
//! - protocol -> core, [`Replica`]'s methods: `check_proposed` (re-execute a
//!   proposed batch before acknowledging it), `truncated` (a logged batch was
//!   cut: roll it back), `raise_high_water` then `apply_committed` (a batch
//!   committed: confirm it and answer its waiters), `install_state` (a
//!   snapshot transfer).
//!
//! What every backend keeps: a batch is proposed in the view it was executed
//! in, by the node that leads that view; a node acknowledges only batches it
//! checked and made durable; committed batches are applied in log order and
//! never truncated.
//!
//! [`Replica`]: crate::replica::Replica

#[cfg(test)]
pub(crate) mod twin;

use std::future::Future;
use std::pin::Pin;

use crate::batch::ExecutedBatch;
use crate::members::{Members, SteleNode};
use crate::{ConsensusError, SubmitError};

/// A boxed future: the trait's async methods, callable through `dyn Sequencer`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who leads, as the protocol last learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The leader (primary) of `view`, if known.
    pub leader: Option<u64>,
    /// The current view (Raft term).
    pub view: u64,
    /// The leader's client address, if known.
    pub address: Option<String>,
}

impl Leadership {
    /// The refusal for a write at a node that does not lead.
    pub fn not_leader(&self) -> SubmitError {
        SubmitError::NotLeader {
            leader: self.leader,
            address: self.address.clone(),
        }
    }
}

/// This node's role in the protocol and what it knows of the leader, for
/// `/node/state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatus {
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub role: String,
    /// The current view (Raft term).
    pub term: u64,
    /// The leader's id, if known.
    pub leader: Option<u64>,
    /// The leader's address, if known.
    pub leader_address: Option<String>,
}

/// Protocol -> core: called with the last seqno this node's ledger made
/// durable (the intake cuts batches by it).
pub(crate) type OnDurable = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// How a proposal ended: `Ok` once the batch committed and the core applied
/// it (its waiters are answered by then), or why it did not commit here.
/// Called exactly once, on a protocol task: it must be quick.
pub type ProposalDone = Box<dyn FnOnce(Result<(), SubmitError>) + Send>;

/// What the replica core needs from an ordering protocol.
pub trait Sequencer: Send + Sync {
    /// Who leads, in which view.
    fn leadership(&self) -> Leadership;

    /// A write was refused here because this node does not lead: a protocol
    /// that idles between batches may take it as a sign of demand.
    fn demand(&self) {}

    /// Proposes `batch` (executed in `batch.batch.view` on top of everything
    /// proposed before) after the ones proposed before it, and returns without
    /// waiting for its commit; `done` learns the end. An `Err` means the
    /// protocol cannot go on (it is fatal), and `done` is not called.
    fn propose(&self, batch: ExecutedBatch, done: ProposalDone) -> Result<(), ConsensusError>;

    /// The batches in this node's log after seqno `seqno`, in order (what the
    /// speculative state must hold after a change of view).
    fn logged_after(&self, seqno: u64) -> Result<Vec<ExecutedBatch>, ConsensusError>;

    /// The batch in this node's log that holds seqno `seqno`, or `None` past
    /// its end: receipts read a transaction's leaf from it (the history keeps
    /// only the tree in memory).
    fn logged_batch(&self, seqno: u64) -> Result<Option<ExecutedBatch>, ConsensusError>;

    /// Role, view and leader.
    fn status(&self) -> OrderStatus;

    /// The voters and the learners.
    fn members(&self) -> Members;

    /// Adds node `id` as a voter once it has caught up (only the leader can).
    fn add_member(&self, id: u64, node: SteleNode) -> BoxFuture<'_, Result<(), ConsensusError>>;

    /// Removes voter `id` (only the leader can).
    fn remove_member(&self, id: u64) -> BoxFuture<'_, Result<(), ConsensusError>>;

    /// Waits until this node has applied everything committed when the call
    /// started, so that a read after it is linearizable.
    fn ensure_linearizable(&self) -> BoxFuture<'_, Result<(), ConsensusError>>;

    /// Why the protocol cannot go on, if it cannot (not set by a shutdown).
    fn fatal(&self) -> Option<String>;

    /// Stops the protocol; proposals not ended are ended with an error.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
