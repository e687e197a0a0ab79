//! When this node builds a Raft snapshot.
//!
//! A snapshot is the committed KV state (`transfer.rs`; the ledger is read
//! from its own files when a full transfer is sent, and not sent at all in a
//! resume transfer), so building one costs time proportional to the state.
//! openraft's `LogsSinceLast(n)` would build one every `n` applied entries,
//! which makes the total cost the state times the number of builds. So
//! openraft's policy is `Never`, and this task triggers a build once
//! `snapshot_entries` entries were applied since the last one *and* the
//! committed transactions since it reach a quarter of the state's keys (the
//! KV snapshots' rule, `snapshot::state_due`): at most 4 keys written per
//! transaction, and at constant state a snapshot every `snapshot_entries`
//! entries however long the log, so a node that joins from one replays at
//! most that many entries after it.

use std::sync::Arc;

use openraft::async_runtime::WatchReceiver as _;

use crate::raft::types::SteleRaftHandle;
use crate::replica::Replica;

/// Whether a snapshot is due: `applied` and `snapshot` are log indices (the
/// last applied entry, the last entry of the newest snapshot), `every` is
/// `snapshot_entries` (0: never); `committed` and `snapshot_seqno` the
/// committed seqno now and at the newest snapshot, `keys` the state's keys.
pub(crate) fn snapshot_due(
    applied: Option<u64>,
    snapshot: Option<u64>,
    every: u64,
    (committed, snapshot_seqno, keys): (u64, u64, u64),
) -> bool {
    // Indices count from 0: a snapshot at index i covers i + 1 entries.
    applied.is_some_and(|applied| {
        let covered = snapshot.map_or(0, |index| index + 1);
        every > 0
            && (applied + 1).saturating_sub(covered) >= every
            && crate::snapshot::state_due(committed, snapshot_seqno, 1, keys)
    })
}

/// Triggers snapshot builds as [`snapshot_due`] says, until the Raft engine
/// stops. A trigger while a build runs is ignored by openraft; this waits for
/// the snapshot index to move before triggering again.
pub(crate) async fn trigger_snapshots(raft: SteleRaftHandle, every: u64, replica: Arc<Replica>) {
    let mut metrics = raft.metrics();
    let mut triggered_at: Option<Option<u64>> = None;
    // The committed seqno when the newest snapshot was triggered (0 at start:
    // the first snapshot waits for `every` entries only).
    let mut snapshot_seqno = 0;
    loop {
        let (applied, snapshot) = {
            let current = metrics.borrow_and_update();
            (
                current.last_applied.map(|id| id.index),
                current.snapshot.map(|id| id.index),
            )
        };
        let state = (
            replica.committed_seqno(),
            snapshot_seqno,
            replica.committed_keys(),
        );
        if triggered_at != Some(snapshot) && snapshot_due(applied, snapshot, every, state) {
            triggered_at = Some(snapshot);
            snapshot_seqno = state.0;
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::snapshot_due;

    #[test]
    fn snapshots_come_every_interval_at_constant_state() {
        let small = |committed| (committed, 0, 200);
        assert!(!snapshot_due(None, None, 10, small(0)));
        assert!(
            !snapshot_due(Some(100), None, 0, small(1_000)),
            "0 means never"
        );
        // The first after `every` entries (indices 0..=9).
        assert!(!snapshot_due(Some(8), None, 10, small(90)));
        assert!(snapshot_due(Some(9), None, 10, small(100)));
        // However long the log: every `every` entries.
        let later = (5_000_000, 4_999_900, 200);
        assert!(!snapshot_due(Some(1_000_008), Some(999_999), 10, later));
        assert!(snapshot_due(Some(1_000_009), Some(999_999), 10, later));
    }

    #[test]
    fn a_larger_state_spaces_them_by_a_quarter_of_its_keys() {
        // 400 k keys: at least 100 k transactions between two.
        let keys = 400_000;
        assert!(!snapshot_due(
            Some(5_000),
            Some(1_000),
            10,
            (150_000, 60_000, keys)
        ));
        assert!(snapshot_due(
            Some(5_000),
            Some(1_000),
            10,
            (160_000, 60_000, keys)
        ));
    }

    #[test]
    fn the_builds_write_at_most_four_keys_per_transaction() {
        // Every transaction adds a key; 15 per entry.
        let (mut snapshot, mut snapshot_seqno, mut written) = (None, 0u64, 0u64);
        let last = 300_000u64;
        for applied in 0..last {
            let committed = (applied + 1) * 15;
            if snapshot_due(
                Some(applied),
                snapshot,
                100,
                (committed, snapshot_seqno, committed),
            ) {
                written += committed;
                snapshot = Some(applied);
                snapshot_seqno = committed;
            }
        }
        let transactions = last * 15;
        assert!(
            written <= 5 * transactions,
            "wrote {written} keys for {transactions}"
        );
        assert!(snapshot_seqno >= transactions * 3 / 4, "{snapshot_seqno}");
    }
}
