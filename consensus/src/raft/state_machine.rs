//! [`ReplicaStateMachine`]: openraft's state machine = confirm. Applying a
//! committed batch checks that this node's history holds exactly that batch
//! (re-executing it if the speculative state lost it) and commits its
//! transactions; a mismatch after commit is a determinism bug, and the node
//! stops itself rather than serve state it cannot prove.
//!
//! Snapshots are not built or installed yet (the log is never purged, so a
//! lagging or new node catches up from the log); the calls say so.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, StorageError, StorageIOError, StoredMembership,
};

use super::types::{BatchApplied, SteleNode, SteleRaft};
use crate::replica::Replica;

type StorageResult<T> = Result<T, StorageError<u64>>;

/// The state machine of one node: its [`Replica`].
pub struct ReplicaStateMachine {
    replica: Arc<Replica>,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, SteleNode>,
}

impl ReplicaStateMachine {
    /// Starts with nothing applied: openraft re-applies the committed log on
    /// start, which re-checks every committed batch against the replayed history.
    pub(crate) fn new(replica: Arc<Replica>) -> Self {
        ReplicaStateMachine {
            replica,
            last_applied: None,
            membership: StoredMembership::default(),
        }
    }

    // openraft's own error type: its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn apply_one(&mut self, entry: Entry<SteleRaft>) -> StorageResult<BatchApplied> {
        let log_id = entry.log_id;
        self.last_applied = Some(log_id);
        match entry.payload {
            EntryPayload::Blank => Ok(BatchApplied::default()),
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(log_id), membership);
                Ok(BatchApplied::default())
            }
            EntryPayload::Normal(batch) => {
                if let Err(error) = self.replica.confirm(&batch) {
                    let reason = format!(
                        "committed batch at log index {} does not confirm: {error}",
                        log_id.index
                    );
                    self.replica.fail(reason.clone());
                    return Err(StorageIOError::apply(log_id, AnyError::error(reason)).into());
                }
                Ok(BatchApplied {
                    view: batch.batch.view,
                    last_seqno: batch.batch.last_seqno(),
                })
            }
        }
    }
}

/// Refuses to build snapshots (see the module doc).
pub struct NoSnapshots;

impl RaftSnapshotBuilder<SteleRaft> for NoSnapshots {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<SteleRaft>> {
        Err(StorageIOError::write_snapshot(
            None,
            AnyError::error("Raft snapshots are not built: the log is never purged"),
        )
        .into())
    }
}

impl RaftStateMachine<SteleRaft> for ReplicaStateMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, SteleNode>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<BatchApplied>>
    where
        I: IntoIterator<Item = Entry<SteleRaft>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut applied = Vec::new();
        for entry in entries {
            applied.push(self.apply_one(entry)?);
        }
        Ok(applied)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<u64, SteleNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        Err(StorageIOError::write_state_machine(AnyError::error(
            "installing a Raft snapshot is not supported yet: catch up from the log",
        ))
        .into())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<SteleRaft>>> {
        Ok(None)
    }
}
