//! A 3-node cluster of real processes on 127.0.0.1: writes commit on the leader
//! and are served, with identical receipts, by every node; kill -9 of the leader
//! under a write stream elects a new one, and every transaction answered
//! `Committed` is on every node afterwards, whose ledgers verify and agree.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use stele_tests::client::{transaction_id, Auth};
use stele_tests::cluster::{put_body, Cluster, ClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_stele");
const NODES: usize = 3;

#[test]
fn writes_commit_everywhere_and_survive_kill_9_of_the_leader() {
    let mut cluster = Cluster::start(Path::new(BIN), &ClusterOptions::default());
    let all = cluster.all();
    let leader = cluster.leader(&all);

    // A write on a follower is refused with a redirect to the leader.
    let follower = (leader + 1) % NODES;
    let reply = cluster.client(follower).try_request(
        reqwest::Method::POST,
        "/app/tx",
        Some(put_body("x", "y").to_string().into_bytes()),
        Some("application/json"),
        &Auth::Token,
    );
    if let Ok(reply) = reply {
        assert!(
            reply.status == 307 || reply.status == 503,
            "a write on a follower: {} {}",
            reply.status,
            reply.text()
        );
    }

    let mut committed = Vec::new();
    for index in 0..20 {
        committed.push(cluster.client(leader).put("m", &format!("k{index}"), "v"));
    }
    let last = *committed.last().unwrap();
    for index in &all {
        cluster.wait_committed(*index, last);
    }
    // Receipts from every node are the same bytes (same leaves, same root, same
    // signed checkpoint).
    let receipt = cluster.client(leader).receipt_text(committed[3]);
    for index in &all {
        assert_eq!(cluster.client(*index).receipt_text(committed[3]), receipt);
    }

    // A write stream on the leader, then kill -9 of the leader mid-stream.
    for index in 0..30 {
        let reply = cluster
            .client(leader)
            .try_post_json("/app/tx", &put_body(&format!("s{index}"), "w"));
        if let Ok(reply) = reply {
            if reply.status == 200 {
                let body = reply.json();
                if body["status"] == "Committed" {
                    committed.push(transaction_id(&body["transaction_id"]));
                }
            }
        }
    }
    cluster.nodes[leader].kill9();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = cluster.leader(&survivors);
    assert_ne!(new_leader, leader);
    for index in 0..20 {
        committed.push(
            cluster
                .client(new_leader)
                .put("m", &format!("after{index}"), "v"),
        );
    }
    cluster.nodes[leader].restart();
    let last = *committed.last().unwrap();
    cluster.assert_committed_everywhere(&all, &committed, last);
    // The same checkpoint at the same commit point: the ledgers agree up to it.
    let checkpoints: Vec<String> = all
        .iter()
        .map(|&index| cluster.client(index).receipt_text(last))
        .collect();
    assert!(checkpoints.windows(2).all(|pair| pair[0] == pair[1]));

    cluster.terminate_and_verify();
}
