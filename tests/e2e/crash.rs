//! End-to-end tests (crash): the durability proof.
//!
//! Four client threads submit transactions on distinct keys, waiting for each
//! commit, and record every one answered `Committed`. After a few hundred commits
//! the node is killed with SIGKILL while they are still submitting, then restarted
//! on the same data folder. Every recorded transaction must then be there: `/node/tx`
//! says `Committed`, `/app/kv` returns its value written by exactly that id (keys are
//! never rewritten), and its receipt verifies against the service key. After a
//! graceful stop, `stele verify` passes on the ledger folder. Three rounds, each
//! checking the transactions of all earlier rounds too; once with the default
//! configuration, once with frequent KV snapshots and no old leaves in memory.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use stele_history::{Digest, Receipt, TransactionId, VerifyingKey};
use stele_tests::client::transaction_id;
use stele_tests::{describe_output, run_cli, NodeClient, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Kill/restart rounds.
const ROUNDS: usize = 3;
/// Client threads submitting at once.
const CLIENTS: usize = 4;
/// Commits answered in a round before the kill.
const COMMITS_PER_ROUND: usize = 300;
/// Bound on the wait for those commits: polls of the counter, `LOAD_POLL` apart.
const LOAD_POLLS_MAX: usize = 6_000;
const LOAD_POLL: Duration = Duration::from_millis(10);
/// Threads that check the recovered transactions.
const CHECKERS: usize = 4;
/// Failures listed in a failure message (all are counted).
const FAILURES_SHOWN_MAX: usize = 20;
/// The map every client writes to.
const MAP: &str = "crash";

/// A transaction the node answered `Committed`.
#[derive(Debug, Clone)]
struct Record {
    id: TransactionId,
    key: String,
    value: String,
}

/// What the clients of one round saw.
struct Load {
    records: Vec<Record>,
    /// Answers that were neither a commit nor a lost connection.
    problems: Vec<String>,
}

/// One client: submits puts on its own keys until stopped or the node goes away.
fn client_loop(
    client: &NodeClient,
    round: usize,
    client_index: usize,
    records: &Mutex<Vec<Record>>,
    problems: &Mutex<Vec<String>>,
    committed: &AtomicUsize,
    stop: &AtomicBool,
) {
    for sequence in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("r{round}-c{client_index}-{sequence}");
        let value = format!("value of {key}");
        let body = json!({"ops": [{"op": "put", "map": MAP, "key": key, "value": value}]});
        let reply = match client.try_post_json("/app/tx", &body) {
            Ok(reply) => reply,
            // Refused or reset: the node was killed. Whatever was in flight may or
            // may not have committed; it was not answered, so it is not recorded.
            Err(_) => return,
        };
        let answer: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        let status = answer.as_ref().map(|answer| &answer["status"]);
        let id = answer
            .as_ref()
            .and_then(|answer| answer["transaction_id"].as_str())
            .and_then(|text| text.parse::<TransactionId>().ok());
        match (reply.status, status, id) {
            (200, Some(status), Some(id)) if status == "Committed" => {
                records.lock().unwrap().push(Record { id, key, value });
                committed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                problems.lock().unwrap().push(format!(
                    "client {client_index}, {key}: {} {}",
                    reply.status,
                    reply.text()
                ));
                return;
            }
        }
    }
}

/// Runs the clients until `COMMITS_PER_ROUND` commits were answered (or a client
/// stopped, or the bound ran out), then kills the node under them.
fn load_then_kill(node: &mut TestNode, round: usize) -> Load {
    let records = Mutex::new(Vec::new());
    let problems = Mutex::new(Vec::new());
    let committed = AtomicUsize::new(0);
    let running = AtomicUsize::new(CLIENTS);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for client_index in 0..CLIENTS {
            let client = node.client().clone();
            let (records, problems, committed, running, stop) =
                (&records, &problems, &committed, &running, &stop);
            scope.spawn(move || {
                client_loop(
                    &client,
                    round,
                    client_index,
                    records,
                    problems,
                    committed,
                    stop,
                );
                running.fetch_sub(1, Ordering::Relaxed);
            });
        }
        for _ in 0..LOAD_POLLS_MAX {
            if committed.load(Ordering::Relaxed) >= COMMITS_PER_ROUND
                || running.load(Ordering::Relaxed) < CLIENTS
            {
                break;
            }
            std::thread::sleep(LOAD_POLL);
        }
        // The clients are still submitting: this kill lands mid-stream.
        node.kill9();
        stop.store(true, Ordering::Relaxed);
    });
    Load {
        records: records.into_inner().unwrap(),
        problems: problems.into_inner().unwrap(),
    }
}

/// Checks one recorded transaction on the restarted node; `Err` says what is wrong.
fn check_record(client: &NodeClient, key: &VerifyingKey, record: &Record) -> Result<(), String> {
    let id = record.id;
    let reply = client.get_public(&format!("/node/tx?transaction_id={id}"));
    let status = reply.json();
    if reply.status != 200 || status["status"] != "Committed" {
        return Err(format!(
            "{id} ({}): /node/tx -> {} {status}",
            record.key, reply.status
        ));
    }
    let reply = client.get(&format!("/app/kv/{MAP}/{}", record.key));
    if reply.status != 200 {
        return Err(format!(
            "{id}: /app/kv/{MAP}/{} -> {} {}",
            record.key,
            reply.status,
            reply.text()
        ));
    }
    let body = reply.json();
    if body["value"] != record.value.as_str() {
        return Err(format!("{id}: {} holds {}", record.key, body["value"]));
    }
    let writer = transaction_id(&body["transaction_id"]);
    if writer != id {
        return Err(format!("{id}: {} was written by {writer}", record.key));
    }
    let reply = client.get(&format!("/node/receipt?transaction_id={id}"));
    if reply.status != 200 {
        return Err(format!(
            "{id}: /node/receipt -> {} {}",
            reply.status,
            reply.text()
        ));
    }
    let receipt: Receipt = serde_json::from_slice(&reply.body)
        .map_err(|error| format!("{id}: the receipt does not parse: {error}"))?;
    if receipt.transaction_id != id {
        return Err(format!(
            "{id}: the receipt is of {}",
            receipt.transaction_id
        ));
    }
    receipt
        .verify(key)
        .map_err(|error| format!("{id}: the receipt does not verify: {error}"))?;
    Ok(())
}

/// Checks every record on `CHECKERS` threads; fails listing what is wrong.
fn check_all(node: &TestNode, key: &VerifyingKey, records: &[Record], round: usize) {
    let failures = Mutex::new(Vec::new());
    let chunk = records.len().div_ceil(CHECKERS).max(1);
    std::thread::scope(|scope| {
        for part in records.chunks(chunk) {
            let client = node.client().clone();
            let failures = &failures;
            scope.spawn(move || {
                for record in part {
                    if let Err(failure) = check_record(&client, key, record) {
                        failures.lock().unwrap().push(failure);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "round {round}: {} of {} committed transactions are missing or wrong after kill -9 \
         and restart, e.g.:\n{}",
        failures.len(),
        records.len(),
        failures
            .iter()
            .take(FAILURES_SHOWN_MAX)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn committed_transactions_survive_kill_9_and_the_ledger_verifies() {
    survive_kill_9(None, false);
}

/// The same with KV snapshots every 50 transactions or more, no old leaves
/// in memory, and small chunks moved to the archive as soon as they are
/// committed (all but the newest): kills land during and between snapshot
/// builds and archive moves, restarts restore the tree from a snapshot's
/// frontier and replay only the suffix, and the receipts of older rounds read
/// their leaves back from archived chunks.
#[test]
fn committed_transactions_survive_kill_9_with_snapshots_leaves_on_disk_and_an_archive() {
    survive_kill_9(
        Some(
            "snapshot_interval_tx = 50\n[ledger]\nleaves_in_memory = 0\n\
             chunk_bytes = 16384\ncommitted_chunks_live = 1\n",
        ),
        true,
    );
}

fn survive_kill_9(config: Option<&str>, archived: bool) {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(BIN);
    let mut node_config = stele_tests::NodeConfig::new(bin, &dir.path().join("data"));
    if let Some(config) = config {
        let path = dir.path().join("stele.toml");
        std::fs::write(&path, config).unwrap();
        node_config.extra_args = vec!["--config".to_owned(), path.display().to_string()];
    }
    let mut node = TestNode::start_with(node_config);
    let key = node.public_key();
    let key_hex = Digest(key.to_bytes()).to_hex();
    let ledger = node.ledger_dir();
    let ledger = ledger.to_str().unwrap();
    let mut all: Vec<Record> = Vec::new();

    for round in 0..ROUNDS {
        if round > 0 {
            node.restart();
        }
        let load = load_then_kill(&mut node, round);
        assert!(
            load.problems.is_empty(),
            "round {round}: answers other than a commit before the kill:\n{}",
            load.problems.join("\n")
        );
        assert!(
            load.records.len() >= COMMITS_PER_ROUND,
            "round {round}: only {} commits answered before the bound; node log:\n{}",
            load.records.len(),
            node.log_tail()
        );
        // Ids are assigned once: later rounds only go forward.
        let previous_max = all.iter().map(|record| record.id).max();
        if let Some(previous_max) = previous_max {
            let lowest = load.records.iter().map(|record| record.id).min().unwrap();
            assert!(
                lowest.seqno > previous_max.seqno,
                "round {round}: {lowest} reuses a seqno up to {previous_max}"
            );
        }
        let (lowest, highest) = (
            load.records.iter().map(|record| record.id).min().unwrap(),
            load.records.iter().map(|record| record.id).max().unwrap(),
        );
        eprintln!(
            "round {round}: {} commits answered ({lowest} ..= {highest}), then kill -9",
            load.records.len()
        );
        all.extend(load.records);
        let seqnos: HashSet<u64> = all.iter().map(|record| record.id.seqno).collect();
        assert_eq!(
            seqnos.len(),
            all.len(),
            "two commits answered with one seqno"
        );

        node.restart();
        assert_eq!(node.public_key(), key, "the service key changed on restart");
        let newest = all.iter().map(|record| record.id).max().unwrap();
        let commit = node.commit().expect("a commit after restart");
        assert!(
            commit.seqno >= newest.seqno,
            "round {round}: the recovered commit {commit} is behind the answered {newest}"
        );
        check_all(&node, &key, &all, round);
        eprintln!(
            "round {round}: restarted at commit {commit}; all {} answered commits present",
            all.len()
        );

        let status = node.terminate();
        assert!(status.success(), "round {round}: SIGTERM: {status}");
        let output = run_cli(bin, &["verify", ledger, "--key", &key_hex]);
        assert!(
            output.status.success(),
            "round {round}: stele verify: {}",
            describe_output(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("ledger OK"),
            "round {round}: {}",
            describe_output(&output)
        );
    }
    if archived {
        let archive = Path::new(ledger).join(stele_ledger::archive::ARCHIVE_DIR);
        let chunks = std::fs::read_dir(&archive)
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert!(chunks > 0, "no chunk was moved to {}", archive.display());
        eprintln!("{chunks} chunks in the archive");
    }
}
