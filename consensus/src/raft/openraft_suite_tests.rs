//! openraft's own storage test suite (`openraft::testing::log::Suite`) run
//! against [`LedgerLogStore`] and [`ReplicaStateMachine`], test by test.
//!
//! The suite writes only blank and membership entries: it exercises the meta
//! file's (control) path, never the ledger's batches, which
//! `log_store_tests.rs` and the simulation cover. Tests that do not fit
//! Stele's design are listed in [`SKIPPED`] with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::{Ledger, LedgerConfig};
use tempfile::TempDir;

use crate::raft::state_machine::{ReplicaStateMachine, Transfers};
use crate::raft::types::SteleRaft;
use crate::raft::LedgerLogStore;
use crate::replica::Replica;

struct Builder;

impl StoreBuilder<SteleRaft, LedgerLogStore, ReplicaStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LedgerLogStore, ReplicaStateMachine), StorageError<SteleRaft>> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let writer = FixtureWriter::new(7);
        let ledger = Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis())
            .expect("a new ledger");
        let store = LedgerLogStore::open(ledger).expect("the log store opens");
        let replica = Arc::new(Replica::fresh_for_tests("suite.example/log"));
        let transfers = Transfers {
            dir: dir.path().join("transfers"),
            reader: store.reader(),
            log: store.log_writer(),
            resume: false,
            kv_snapshots: None,
        };
        std::fs::create_dir_all(&transfers.dir).expect("the transfer folder");
        let state_machine = ReplicaStateMachine::new(replica, transfers);
        Ok((dir, store, state_machine))
    }
}

type StoreSuite = Suite<SteleRaft, LedgerLogStore, ReplicaStateMachine, Builder, TempDir>;

const GAP: &str = "the log starts past index 0 or skips indices; slot i is log index i over the ledger, so the store refuses a gap (a storage error)";

const APPLIED_UNLOGGED: &str = "it applies entries it never wrote to the log, then builds a snapshot; a Stele snapshot is sent with the log's own batches up to its last log id, so a build past the log's end is refused (a storage error)";

const LOGICAL_PURGE: &str = "the purge is logical: purged entries stay readable (the ledger keeps every batch), the test expects them gone";

/// The suite's tests that do not fit Stele's design, and why.
const SKIPPED: &[(&str, &str)] = &[
    ("last_membership_in_log", GAP),
    ("last_membership_in_log_multi_step", GAP),
    ("get_membership_from_log_and_empty_sm", GAP),
    ("get_membership_from_log_le_sm_last_applied", GAP),
    ("get_membership_from_log_gt_sm_last_applied_1", GAP),
    ("get_membership_from_log_gt_sm_last_applied_2", GAP),
    ("get_initial_state_membership_from_sm_inlog_is_smaller", GAP),
    ("get_initial_state_membership_from_log_insm_is_smaller", GAP),
    ("get_initial_state_last_log_lt_sm", GAP),
    ("get_initial_state_inverted_log_order", GAP),
    ("get_initial_state_conflict_at_same_index", GAP),
    ("get_initial_state_re_apply_committed", GAP),
    ("try_get_log_entry", LOGICAL_PURGE),
    ("get_log_id", LOGICAL_PURGE),
    ("purge_logs_upto_0", LOGICAL_PURGE),
    ("purge_logs_upto_5", LOGICAL_PURGE),
    ("purge_logs_upto_20", LOGICAL_PURGE),
    ("append_to_log", LOGICAL_PURGE),
    (
        "get_initial_state_membership_from_empty_log_and_sm",
        APPLIED_UNLOGGED,
    ),
    ("snapshot_meta", APPLIED_UNLOGGED),
    (
        "get_initial_state_log_ids",
        "it purges a log with nothing applied and no snapshot, so openraft's start forces a \
         snapshot build; a Stele snapshot is a transfer file of the applied state: none to build",
    ),
    (
        "transfer_snapshot",
        "it applies entries it never wrote to the log, and installs a snapshot it never \
         received (no `begin_receiving_snapshot`); a Stele snapshot names the log's batches, \
         and an install without a transfer is the start-time restore from the log",
    ),
];

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        /// Runs every suite test not in [`SKIPPED`] on a fresh store; returns
        /// the failures, by name.
        async fn run_suite() -> BTreeMap<&'static str, String> {
            let mut failures = BTreeMap::new();
            $(
                let name = stringify!($name);
                if !SKIPPED.iter().any(|(skipped, _)| *skipped == name) {
                    let (_dir, store, state_machine) = Builder.build().await.expect("a store");
                    let outcome = tokio::spawn(async move {
                        StoreSuite::$name(store, state_machine).await
                    })
                    .await;
                    match outcome {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            failures.insert(name, error.to_string());
                        }
                        Err(panic) => {
                            failures.insert(name, format!("panicked: {panic}"));
                        }
                    }
                }
            )*
            failures
        }
    };
}

suite_tests!(
    last_membership_in_log_initial,
    last_membership_in_log,
    last_membership_in_log_multi_step,
    get_membership_initial,
    get_membership_from_log_and_empty_sm,
    get_membership_from_empty_log_and_sm,
    get_membership_from_log_le_sm_last_applied,
    get_membership_from_log_gt_sm_last_applied_1,
    get_membership_from_log_gt_sm_last_applied_2,
    get_initial_state_without_init,
    get_initial_state_membership_from_empty_log_and_sm,
    get_initial_state_membership_from_sm_inlog_is_smaller,
    get_initial_state_membership_from_log_insm_is_smaller,
    get_initial_state_with_state,
    get_initial_state_last_log_gt_sm,
    get_initial_state_last_log_lt_sm,
    get_initial_state_inverted_log_order,
    get_initial_state_conflict_at_same_index,
    get_initial_state_log_ids,
    get_initial_state_re_apply_committed,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    leader_bounded_stream,
    entries_stream,
    try_get_log_entry,
    log_reader_reads_new_entries,
    initial_logs,
    get_log_state,
    get_log_id,
    last_id_in_log,
    last_applied_state,
    purge_logs_upto_0,
    purge_logs_upto_5,
    purge_logs_upto_20,
    delete_logs_after_11,
    delete_logs_after_5,
    delete_logs_after_0,
    delete_logs_after_none,
    append_to_log,
    snapshot_meta,
    snapshot_meta_optional,
    apply_single,
    apply_multiple,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    // Not run: `transfer_snapshot` (see SKIPPED).
    let failures = run_suite().await;
    for (name, error) in &failures {
        eprintln!("suite test {name} failed: {error}");
    }
    assert!(failures.is_empty(), "failed: {:?}", failures.keys());
}
