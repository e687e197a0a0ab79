//! BFT-mode clusters (`cluster-init --mode bft`): their options, a write that
//! follows the proposer wherever it is, the validators' file, and `stele
//! verify --validators` of every ledger.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use stele_history::TransactionId;

use crate::client::{transaction_id, Auth};
use crate::cluster::{put_body, Cluster, ClusterOptions};
use crate::{describe_output, run_cli};

/// Four validators with short round timeouts (a silent proposer is replaced
/// within seconds).
pub fn bft_options() -> ClusterOptions {
    ClusterOptions {
        nodes: 4,
        init_args: vec!["--mode".to_owned(), "bft".to_owned()],
        cluster_settings:
            "bft_propose_timeout_ms = 1000\nbft_vote_timeout_ms = 500\nbft_timeout_delta_ms = 250\n"
                .to_owned(),
        ..ClusterOptions::default()
    }
}

/// Longest wait for a write to be taken and committed by some proposer.
pub const WRITE_WAIT: Duration = Duration::from_secs(90);

/// Writes `key` through whichever of `running` proposes, following the
/// redirects (the proposer may be down, or change while the write waits);
/// returns the node that took it and the committed transaction's id.
pub fn write_committed(cluster: &Cluster, running: &[usize], key: &str) -> (usize, TransactionId) {
    let deadline = Instant::now() + WRITE_WAIT;
    let body = put_body(key, "v").to_string().into_bytes();
    loop {
        for &index in running {
            let reply = cluster.client(index).try_request(
                reqwest::Method::POST,
                "/app/tx",
                Some(body.clone()),
                Some("application/json"),
                &Auth::Token,
            );
            if let Ok(reply) = reply {
                if reply.status == 200 {
                    let answer = reply.json();
                    if answer["status"] == "Committed" {
                        return (index, transaction_id(&answer["transaction_id"]));
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no proposer among {running:?} committed {key} within {WRITE_WAIT:?}; states: {:?}",
            running
                .iter()
                .map(|index| cluster.state(*index))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /node/validators` of node index `index`, written to a file in the
/// cluster's folder.
pub fn validators_file(cluster: &Cluster, index: usize) -> PathBuf {
    let validators = cluster
        .client(index)
        .get_public("/node/validators")
        .expect_json(200);
    assert_eq!(
        validators["validators"].as_array().map(Vec::len),
        Some(cluster.nodes.len())
    );
    let path = cluster.dir().join("validators.json");
    std::fs::write(&path, validators.to_string()).expect("writing validators.json");
    path
}

/// Stops the nodes of `indexes` that run and checks their ledgers with
/// `stele verify --validators`: each must verify, and all must end with the
/// same signed tree (the line naming its size and root).
pub fn verify_all(cluster: &mut Cluster, indexes: &[usize], validators: &Path) {
    let mut heads = Vec::new();
    let bin = cluster.bin().to_owned();
    for &index in indexes {
        let node = &mut cluster.nodes[index];
        if node.pid().is_some() {
            node.terminate();
        }
        let ledger = node.ledger_dir();
        let output = run_cli(
            &bin,
            &[
                "verify",
                ledger.to_str().expect("a UTF-8 path"),
                "--validators",
                validators.to_str().expect("a UTF-8 path"),
            ],
        );
        assert!(output.status.success(), "{}", describe_output(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let head = stdout
            .lines()
            .find(|line| line.contains("root"))
            .unwrap_or_default()
            .to_owned();
        heads.push(head);
    }
    assert!(
        heads.windows(2).all(|pair| pair[0] == pair[1]),
        "the ledgers end differently: {heads:?}"
    );
}

/// The divergences node index `index` reports (0 if it does not answer).
pub fn divergences(cluster: &Cluster, index: usize) -> u64 {
    cluster
        .state(index)
        .and_then(|state| state["divergences"].as_u64())
        .unwrap_or(0)
}

/// A receipt's root, proof and certified text (its note without the
/// signature lines, which differ between nodes: each keeps the first > 2/3
/// of the precommits it saw).
pub fn certified_part(receipt: &str) -> (Value, Value, String) {
    let value: Value = serde_json::from_str(receipt).expect("a receipt is JSON");
    let note = value["checkpoint"].as_str().unwrap_or_default().to_owned();
    let text = note.split("\n\n").next().unwrap_or_default().to_owned();
    (value["root"].clone(), value["proof"].clone(), text)
}
