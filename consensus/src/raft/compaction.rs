//! When this node builds a Raft snapshot.
//!
//! A snapshot is the committed KV state (`transfer.rs`; the ledger is read
//! from its own files when one is sent), so building one costs time
//! proportional to the state. openraft's `LogsSinceLast(n)` builds one every
//! `n` applied entries, which makes the total cost grow with the state times
//! the number of builds: an idle-ish node (small batches, one entry each)
//! would spend its time writing its state. So openraft's policy is `Never`,
//! and this task triggers a build once the entries applied since the last
//! snapshot reach `snapshot_entries` and half the index of that snapshot:
//! snapshots grow geometrically (x1.5). (KV snapshots, which a restart uses,
//! follow the state's size instead: `snapshot.rs`.)

use openraft::async_runtime::WatchReceiver as _;

use crate::raft::types::SteleRaftHandle;

/// The growth divisor of Raft snapshot intervals: half the entries the last
/// one covered (a Raft snapshot only serves lagging nodes; a restart uses
/// the KV snapshots).
pub(crate) const RAFT_SNAPSHOT_GROWTH: u64 = 2;

/// Whether a snapshot is due: `applied` and `snapshot` are log indices (the
/// last applied entry, the last entry of the newest snapshot), `every` is
/// `snapshot_entries` (0: never).
pub(crate) fn snapshot_due(applied: Option<u64>, snapshot: Option<u64>, every: u64) -> bool {
    // Indices count from 0: a snapshot at index i covers i + 1 entries.
    applied.is_some_and(|applied| {
        crate::snapshot::geometric_due(
            applied + 1,
            snapshot.map_or(0, |index| index + 1),
            every,
            RAFT_SNAPSHOT_GROWTH,
        )
    })
}

/// Triggers snapshot builds as [`snapshot_due`] says, until the Raft engine
/// stops. A trigger while a build runs is ignored by openraft; this waits for
/// the snapshot index to move before triggering again.
pub(crate) async fn trigger_snapshots(raft: SteleRaftHandle, every: u64) {
    let mut metrics = raft.metrics();
    let mut triggered_at: Option<Option<u64>> = None;
    loop {
        let (applied, snapshot) = {
            let current = metrics.borrow_and_update();
            (
                current.last_applied.map(|id| id.index),
                current.snapshot.map(|id| id.index),
            )
        };
        if triggered_at != Some(snapshot) && snapshot_due(applied, snapshot, every) {
            triggered_at = Some(snapshot);
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
    fn snapshots_start_at_the_interval_then_grow_by_half() {
        assert!(!snapshot_due(None, None, 10));
        assert!(!snapshot_due(Some(100), None, 0), "0 means never");
        // The first after `every` entries (indices 0..=9).
        assert!(!snapshot_due(Some(8), None, 10));
        assert!(snapshot_due(Some(9), None, 10));
        // Small snapshots: every `every` entries.
        assert!(!snapshot_due(Some(18), Some(9), 10));
        assert!(snapshot_due(Some(19), Some(9), 10));
        // Past 2 x every: half the covered entries.
        assert!(!snapshot_due(Some(1_000 + 10), Some(999), 10));
        assert!(!snapshot_due(Some(999 + 499), Some(999), 10));
        assert!(snapshot_due(Some(999 + 500), Some(999), 10));
    }

    #[test]
    fn the_builds_add_up_to_at_most_three_times_the_last() {
        let every = 10_000;
        let (mut snapshot, mut copied) = (None, 0u64);
        let last = 5_000_000u64;
        for applied in 0..last {
            if snapshot_due(Some(applied), snapshot, every) {
                copied += applied + 1;
                snapshot = Some(applied);
            }
        }
        assert!(copied <= 3 * last, "copied {copied} entries for {last}");
        assert!(snapshot.is_some_and(|index| index >= last * 2 / 3 - 1));
    }
}
