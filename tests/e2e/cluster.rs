//! A 3-node cluster of real processes on 127.0.0.1: writes commit on the leader
//! and are served, with identical receipts, by every node; kill -9 of the leader
//! under a write stream elects a new one, and every transaction answered
//! `Committed` is on every node afterwards, whose ledgers verify and agree.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use stele_history::TransactionId;
use stele_tests::client::{transaction_id, Auth, NodeClient};
use stele_tests::node::{NodeConfig, TestNode};
use stele_tests::{describe_output, run_cli};

const BIN: &str = env!("CARGO_BIN_EXE_stele");
const NODES: u64 = 3;
const LEADER_WAIT: Duration = Duration::from_secs(60);

struct Cluster {
    nodes: Vec<TestNode>,
    _dir: tempfile::TempDir,
}

/// A base port unlikely to collide with another test run on this machine.
fn base_port() -> u16 {
    20_000 + u16::try_from(std::process::id() % 20_000).unwrap()
}

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let base = base_port();
    let output = run_cli(
        Path::new(BIN),
        &[
            "cluster-init",
            "--dir",
            dir.path().to_str().unwrap(),
            "--nodes",
            &NODES.to_string(),
            "--base-port",
            &base.to_string(),
        ],
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    let nodes = (1..=NODES)
        .map(|id| {
            let mut config = NodeConfig::new(Path::new(BIN), &dir.path().join(format!("node{id}")));
            config.listen = format!("127.0.0.1:{}", base + u16::try_from(id - 1).unwrap());
            let toml: PathBuf = dir.path().join(format!("node{id}.toml"));
            config.extra_args = vec!["--config".to_owned(), toml.display().to_string()];
            TestNode::start_with(config)
        })
        .collect();
    Cluster { nodes, _dir: dir }
}

impl Cluster {
    /// The index of the node every running node agrees is the leader.
    fn leader(&self, running: &[usize]) -> usize {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leaders: Vec<Option<u64>> = running
                .iter()
                .map(|&index| {
                    let state = self.nodes[index]
                        .client()
                        .try_request(reqwest::Method::GET, "/node/state", None, None, &Auth::None)
                        .ok()
                        .map(|reply| reply.json());
                    state.and_then(|state| state["leader"].as_u64())
                })
                .collect();
            if let Some(Some(leader)) = leaders.first() {
                let index = usize::try_from(*leader - 1).unwrap();
                if leaders.iter().all(|seen| *seen == Some(*leader)) && running.contains(&index) {
                    return index;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {running:?}: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self, index: usize) -> &NodeClient {
        self.nodes[index].client()
    }
}

fn put_body(key: &str, value: &str) -> serde_json::Value {
    json!({ "ops": [{"op": "put", "map": "m", "key": key, "value": value}] })
}

/// Waits until `id` is committed on node `index`.
fn wait_committed(cluster: &Cluster, index: usize, id: TransactionId) {
    let seen = cluster
        .client(index)
        .poll_until_committed(id, 600, Duration::from_millis(50));
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Committed"),
        "{id} on node {}: {seen:?}\n{}",
        index + 1,
        cluster.nodes[index].log_tail()
    );
}

#[test]
fn writes_commit_everywhere_and_survive_kill_9_of_the_leader() {
    let mut cluster = start_cluster();
    let all: Vec<usize> = (0..NODES as usize).collect();
    let leader = cluster.leader(&all);

    // A write on a follower is refused with a redirect to the leader.
    let follower = (leader + 1) % NODES as usize;
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
        wait_committed(&cluster, *index, last);
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
    for index in &all {
        wait_committed(&cluster, *index, last);
        for id in &committed {
            assert_eq!(
                cluster.client(*index).tx_status(*id),
                "Committed",
                "{id} on node {}",
                index + 1
            );
        }
    }
    // The same checkpoint at the same commit point: the ledgers agree up to it.
    let checkpoints: Vec<String> = all
        .iter()
        .map(|&index| cluster.client(index).receipt_text(last))
        .collect();
    assert!(checkpoints.windows(2).all(|pair| pair[0] == pair[1]));

    let key = cluster.client(0).public_key_hex();
    for node in &mut cluster.nodes {
        node.terminate();
        let ledger = node.ledger_dir();
        let output = run_cli(
            Path::new(BIN),
            &["verify", ledger.to_str().unwrap(), "--key", &key],
        );
        assert!(output.status.success(), "{}", describe_output(&output));
    }
}
