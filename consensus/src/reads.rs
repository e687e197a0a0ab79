//! The committed reads of an [`Engine`]: KV values, transaction states,
//! receipts, checkpoints and consistency proofs. Each is served from the
//! committed state only, under the store's or the history's read lock, held
//! briefly (the executor and the follower check wait for it to write).

use stele_history::{Digest, Receipt, TransactionId};

use crate::history::HistoryReadError;
use crate::identity::ServiceIdentity;
use crate::submission::TxState;
use crate::Engine;

impl Engine {
    /// The committed value of `key` in `map` and the id of its writer.
    pub fn kv_get(&self, map: &str, key: &str) -> Option<(Vec<u8>, TransactionId)> {
        let (value, seqno) = {
            let store = self.replica.read_store();
            let (value, seqno) = store.get_committed(map, key)?;
            (value.to_vec(), seqno)
        };
        let id = self.replica.read_history().transaction_id(seqno)?;
        Some((value, id))
    }

    /// Runs `read` against the committed state, under the store's read lock
    /// (keep it short: the executor waits for the lock to apply batches). All
    /// the keys `read` looks at are from one committed version.
    pub fn read_committed<R>(&self, read: impl FnOnce(&stele_kv::Committed<'_>) -> R) -> R {
        let store = self.replica.read_store();
        read(&store.committed_view())
    }

    /// The committed state set aside (cheap: shared shards), to walk away from
    /// the store's lock.
    pub fn freeze_committed(&self) -> stele_kv::Frozen {
        let store = self.replica.read_store();
        store
            .freeze(store.committed_version())
            .expect("the committed version is always retained")
    }

    /// Where transaction `id` is.
    pub fn tx_state(&self, id: TransactionId) -> TxState {
        let history = self.replica.read_history();
        let committed = self.committed_seqno();
        match history.batch_of(id.seqno) {
            Some(batch) if batch.view != id.view => TxState::Invalid,
            Some(_) if id.seqno <= committed => TxState::Committed,
            Some(_) => TxState::Pending,
            // Past this node's log. Views never decrease along a Raft log, so
            // an id of a view older than the last committed transaction's
            // can never be committed: a view lost in a crash or a deposition.
            None if history
                .batch_of(committed)
                .is_some_and(|batch| id.view < batch.view) =>
            {
                TxState::Invalid
            }
            None => TxState::Unknown,
        }
    }

    /// Seqno of the last committed transaction.
    pub fn committed_seqno(&self) -> u64 {
        self.replica.committed_seqno()
    }

    /// The last committed transaction.
    pub fn last_committed(&self) -> Option<TransactionId> {
        self.replica
            .read_history()
            .transaction_id(self.committed_seqno())
    }

    /// Seqno of the last executed transaction.
    pub fn executed_seqno(&self) -> u64 {
        self.replica.read_history().size()
    }

    /// The receipt of committed transaction `id`. Its leaf's components are
    /// read back from the ledger (the history keeps only the tree) with no
    /// lock held, then checked against the tree's leaf under the history's
    /// read lock.
    pub fn receipt(&self, id: TransactionId) -> Result<Receipt, HistoryReadError> {
        let committed = self.committed_seqno();
        self.replica.read_history().check_committed(id, committed)?;
        let unavailable = |reason: String| {
            HistoryReadError::Unavailable(format!(
                "transaction {id}'s record could not be read from the ledger: {reason}"
            ))
        };
        let batch = self
            .sequencer
            .logged_batch(id.seqno)
            .map_err(|error| unavailable(error.to_string()))?
            .ok_or_else(|| unavailable("no logged batch holds it".to_owned()))?;
        let digests = batch
            .batch
            .record_of(id.seqno)
            .ok_or_else(|| unavailable("the logged batch read does not hold it".to_owned()))?
            .digests(batch.batch.leaf_format);
        self.replica
            .read_history()
            .receipt(id, committed, &self.replica.identity, &digests)
    }

    /// The latest committed signed checkpoint.
    pub fn checkpoint(&self) -> Option<String> {
        self.replica
            .read_history()
            .latest_checkpoint(self.committed_seqno())
            .map(|batch| batch.note.clone())
    }

    /// The consistency proof between two committed tree sizes.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, HistoryReadError> {
        self.replica
            .read_history()
            .consistency(from, to, self.committed_seqno())
    }

    /// The service identity.
    pub fn identity(&self) -> &ServiceIdentity {
        &self.replica.identity
    }
}
