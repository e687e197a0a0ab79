//! [`ReplicaCheck`]: the BFT validity hook. A validator prevotes for a
//! proposed batch only after re-executing it on the committed state to the
//! same write sets and root (the follower check of Raft mode); a refusal is a
//! divergence in `/node/state`.

use std::sync::Arc;

use stele_bft::{Height, Validity, Value};
use stele_history::Checkpoint;
use stele_ledger::entry::EntryRef;
use stele_ledger::LEAF_FORMAT_CURRENT;

use super::certificate::batch_of;
use crate::batch::ExecutedBatch;
use crate::replica::Replica;
use crate::sync::lock;

/// The validity hook over this node's replica.
pub(crate) struct ReplicaCheck {
    pub(crate) replica: Arc<Replica>,
    /// Byzantine tests: take every value as valid, unchecked.
    #[cfg(feature = "byzantine")]
    pub(crate) vote_all: bool,
}

impl ReplicaCheck {
    /// Why `value` is not a batch this node can prevote for, if it is not.
    fn refusal(&self, value: &Value) -> Option<String> {
        let batch = match batch_of(value) {
            Ok(batch) => batch,
            Err(reason) => return Some(reason),
        };
        // One encoding per batch: the ledger stores the decoded batch, and a
        // lagging node rebuilds the value from it.
        if EntryRef::Batch(&batch).encode() != value.payload() {
            return Some("the batch's encoding is not canonical".to_owned());
        }
        if batch.leaf_format != LEAF_FORMAT_CURRENT {
            return Some(format!(
                "leaf format {} (BFT mode needs {LEAF_FORMAT_CURRENT}, whose leaves cover the commands)",
                batch.leaf_format
            ));
        }
        let body = value.checkpoint_body();
        let checkpoint = match Checkpoint::parse_body(body) {
            Ok(checkpoint) => checkpoint,
            Err(error) => return Some(format!("the checkpoint body: {error}")),
        };
        if checkpoint.origin != self.replica.identity.origin()
            || checkpoint.view != Some(batch.view)
            || checkpoint.tree_size != batch.last_seqno()
            || checkpoint.body() != body
        {
            return Some(
                "the checkpoint body does not name this service, the batch's view and end"
                    .to_owned(),
            );
        }
        let committed = self.replica.committed_seqno();
        if batch.first_seqno != committed + 1 {
            return Some(format!(
                "the batch starts at seqno {}, the committed state ends at {committed}",
                batch.first_seqno
            ));
        }
        let dispatcher = lock(&self.replica.execution);
        let mut proposed = ExecutedBatch::with_checkpoint(batch, body.to_owned());
        if self.replica.holds(&proposed) {
            return None;
        }
        if let Err(error) = self.replica.rollback_to(committed) {
            return Some(format!("rolling back to the committed state: {error}"));
        }
        proposed.prev_root = self.replica.read_history().root().0;
        self.replica
            .check(&dispatcher, &proposed)
            .err()
            .map(|error| error.to_string())
    }
}

impl Validity for ReplicaCheck {
    fn is_valid(&mut self, height: Height, value: &Value) -> bool {
        #[cfg(feature = "byzantine")]
        if self.vote_all {
            return true;
        }
        match self.refusal(value) {
            None => true,
            Some(reason) => {
                let reason = format!("refused the batch proposed at height {height}: {reason}");
                self.replica.record_divergence(reason);
                false
            }
        }
    }
}
