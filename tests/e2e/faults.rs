//! Deliberate execution faults in a 3-node cluster of real processes (the
//! test-only `STELE_TEST_FAULT` switch, which adds one write to the first
//! transaction of a batch):
//!
//! - a follower whose re-execution is corrupted refuses the batch, reports the
//!   divergence on `/node/state`, and never acknowledges (nor logs) it, while
//!   the two healthy nodes go on committing;
//! - a primary whose execution is corrupted is deposed by its followers, and
//!   its bad entry is rolled back everywhere: the transaction id it handed out
//!   is never committed on any node, and every ledger verifies and agrees.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use stele_tests::client::transaction_id;
use stele_tests::cluster::{put_body, Cluster, ClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_stele");
const DIVERGENCE_WAIT: Duration = Duration::from_secs(30);

fn fault(node: u64, fault: &str) -> (u64, String, String) {
    (node, "STELE_TEST_FAULT".to_owned(), fault.to_owned())
}

/// Waits (bounded) until node index `index` reports at least one divergence;
/// returns its `/node/state`.
fn wait_divergence(cluster: &Cluster, index: usize) -> serde_json::Value {
    let deadline = Instant::now() + DIVERGENCE_WAIT;
    loop {
        if let Some(state) = cluster.state(index) {
            if state["divergences"].as_u64().unwrap_or(0) > 0 {
                return state;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {} reported no divergence: {:?}\n{}",
            index + 1,
            cluster.state(index),
            cluster.nodes[index].log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_corrupted_follower_refuses_the_batch_and_never_acknowledges_it() {
    let options = ClusterOptions {
        env: vec![fault(3, "corrupt-follower")],
        // Node 3 must follow to re-execute: it does not win the first election.
        slow_elections: vec![3],
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let leader = cluster.leader(&[0, 1]);
    assert_ne!(leader, 2);
    let healthy = [0, 1];

    let committed: Vec<_> = (0..10)
        .map(|index| cluster.client(leader).put("m", &format!("k{index}"), "v"))
        .collect();
    let state = wait_divergence(&cluster, 2);
    let reason = state["last_divergence"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "no divergence reason: {state}");

    let last = *committed.last().unwrap();
    for index in healthy {
        cluster.wait_committed(index, last);
    }
    // More writes still commit with the corrupted node refusing everything.
    let after = cluster.leader(&healthy);
    let later = cluster.client(after).put("m", "later", "v");
    for index in healthy {
        cluster.wait_committed(index, later);
    }
    let receipt = cluster.client(0).receipt_text(later);
    assert_eq!(cluster.client(1).receipt_text(later), receipt);

    // Node 3 acknowledged none of it: nothing committed there, nothing logged.
    let state = cluster.state(2).unwrap();
    assert!(
        state["ledger_seqno"].as_u64().unwrap() < committed[0].seqno,
        "node 3 logged a batch it refused: {state}"
    );
    for id in committed.iter().chain([&later]) {
        assert_ne!(cluster.client(2).tx_status(*id), "Committed", "{id}");
    }
    cluster.terminate_and_verify();
}

#[test]
fn a_corrupted_primary_is_deposed_and_its_entry_rolled_back_everywhere() {
    let options = ClusterOptions {
        env: vec![fault(1, "corrupt-primary")],
        // Node 1 wins the first election: the corrupted node leads.
        slow_elections: vec![2, 3],
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let all = cluster.all();
    assert_eq!(cluster.leader(&all), 0, "node 1 should lead first");

    // Executed (and answered Pending) by the corrupted primary, then refused.
    let reply = cluster
        .client(0)
        .post_json("/app/tx?wait=false", &put_body("bad", "x"))
        .expect_json(200);
    assert_eq!(reply["status"], "Pending", "{reply}");
    let bad = transaction_id(&reply["transaction_id"]);

    for index in [1, 2] {
        let state = wait_divergence(&cluster, index);
        assert!(
            state["last_divergence"]
                .as_str()
                .is_some_and(|reason| !reason.is_empty()),
            "{state}"
        );
    }
    // The followers refuse node 1's term and elect one of themselves.
    let deadline = Instant::now() + DIVERGENCE_WAIT;
    let leader = loop {
        let leader = cluster.leader(&all);
        if leader != 0 {
            break leader;
        }
        assert!(
            Instant::now() < deadline,
            "the corrupted primary was not deposed: {:?}",
            cluster.state(1)
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // The new leader fills the bad entry's seqno with other transactions.
    let committed: Vec<_> = (0..5)
        .map(|index| {
            cluster
                .client(leader)
                .put("m", &format!("good{index}"), "v")
        })
        .collect();
    let last = *committed.last().unwrap();
    for index in &all {
        cluster.wait_committed(*index, last);
    }
    assert!(last.seqno >= bad.seqno);
    for index in &all {
        let status = cluster.client(*index).tx_status(bad);
        assert!(
            status == "Invalid" || status == "Unknown",
            "the corrupted primary's {bad} on node {}: {status}",
            index + 1
        );
        cluster
            .client(*index)
            .get("/app/kv/m/bad")
            .expect_status(404);
    }
    let receipt = cluster.client(leader).receipt_text(last);
    for index in &all {
        assert_eq!(cluster.client(*index).receipt_text(last), receipt);
    }
    cluster.terminate_and_verify();
}
