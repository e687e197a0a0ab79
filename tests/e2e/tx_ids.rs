//! End-to-end tests (transaction ids): an id is given to one transaction only.
//!
//! Client threads submit puts on distinct keys with `?wait=false` and record
//! every id they are answered (`Pending`: executed, maybe not yet durable). The
//! node is killed with SIGKILL under them and restarted on the same folder: the
//! restart must start a new view, so an id answered before the crash and lost
//! in it is never given to another transaction. Every recorded id must then be
//! `Committed` holding its own client's write (read back from `/app/kv`), or
//! `Invalid`; and after more writes (past every recorded seqno) the same again,
//! with nothing `Unknown` left and no `Invalid` id turned `Committed`.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use serde_json::json;
use stele_history::TransactionId;
use stele_tests::client::transaction_id;
use stele_tests::{NodeClient, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Client threads submitting at once (more keep more batches in flight).
const CLIENTS: usize = 8;
/// Answers collected in a round before the kill.
const ANSWERS_PER_ROUND: usize = 500;
/// Bound on the wait for those answers.
const LOAD_WAIT_MAX: Duration = Duration::from_secs(60);
/// Kill/restart rounds at least.
const ROUNDS_MIN: usize = 2;
/// Kill/restart rounds at most: past `ROUNDS_MIN`, the test goes on until some
/// answered id was lost in a crash (a kill lands between an answer and its
/// write to the ledger only some of the time, more often on a loaded machine).
const ROUNDS_MAX: usize = 10;
/// Failures listed in a failure message (all are counted).
const FAILURES_SHOWN_MAX: usize = 20;
/// Puts after the restart at most, to carry the log past every recorded seqno.
const CATCH_UP_PUTS_MAX: usize = 20_000;
/// The map every client writes to.
const MAP: &str = "ids";

/// An id the node answered, and the write it stands for.
#[derive(Debug, Clone)]
struct Record {
    id: TransactionId,
    key: String,
    value: String,
}

/// One client: submits puts on its own keys without waiting for commits,
/// until stopped or the node goes away.
fn client_loop(
    client: &NodeClient,
    prefix: &str,
    records: &Mutex<Vec<Record>>,
    answered: &AtomicUsize,
    stop: &AtomicBool,
    enough: &mpsc::Sender<()>,
) {
    for sequence in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("{prefix}-{sequence}");
        let value = format!("value of {key}");
        let body = json!({"ops": [{"op": "put", "map": MAP, "key": key, "value": value}]});
        let Ok(reply) = client.try_post_json("/app/tx?wait=false", &body) else {
            // The node was killed: this one was not answered.
            return;
        };
        let answer: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        let id = answer
            .as_ref()
            .filter(|_| reply.status == 200)
            .and_then(|answer| answer["transaction_id"].as_str())
            .and_then(|text| text.parse::<TransactionId>().ok());
        let Some(id) = id else {
            // Busy or shutting down: nothing was assigned.
            continue;
        };
        records.lock().unwrap().push(Record { id, key, value });
        if answered.fetch_add(1, Ordering::Relaxed) + 1 == ANSWERS_PER_ROUND {
            // At once: an answer goes out before its batch is written, so a
            // kill right after one often lands before the write.
            let _ = enough.send(());
        }
    }
}

/// Runs the clients until `ANSWERS_PER_ROUND` answers, then kills the node
/// under them; returns what they were answered.
fn load_then_kill(node: &mut TestNode, round: usize) -> Vec<Record> {
    let records = Mutex::new(Vec::new());
    let answered = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (enough, answers) = mpsc::channel();
    std::thread::scope(|scope| {
        for client_index in 0..CLIENTS {
            let client = node.client().clone();
            let prefix = format!("r{round}-c{client_index}");
            let (records, answered, stop) = (&records, &answered, &stop);
            let enough = enough.clone();
            scope.spawn(move || client_loop(&client, &prefix, records, answered, stop, &enough));
        }
        // Bounded: on a timeout the kill lands anyway.
        let _ = answers.recv_timeout(LOAD_WAIT_MAX);
        // The clients are still submitting: this kill lands mid-stream.
        node.kill9();
        stop.store(true, Ordering::Relaxed);
    });
    records.into_inner().unwrap()
}

/// The status of `record` on the node: `Committed` only with its own write
/// (the key holds its value, written by exactly this id); `Err` says what is
/// wrong.
fn status_of(client: &NodeClient, record: &Record) -> Result<String, String> {
    let id = record.id;
    let status = client.tx_status(id);
    if status != "Committed" {
        return Ok(status);
    }
    let reply = client.get(&format!("/app/kv/{MAP}/{}", record.key));
    if reply.status != 200 {
        return Err(format!(
            "{id} is Committed, but its write {MAP}/{} is not there: {} {}",
            record.key,
            reply.status,
            reply.text()
        ));
    }
    let body = reply.json();
    let writer = transaction_id(&body["transaction_id"]);
    if body["value"] != record.value.as_str() || writer != id {
        return Err(format!(
            "{id} is Committed, but {MAP}/{} holds {} written by {writer}",
            record.key, body["value"]
        ));
    }
    Ok(status)
}

/// The statuses of every record; fails listing the wrong ones and the records
/// whose status is not among `allowed`.
fn statuses(node: &TestNode, records: &[Record], allowed: &[&str], when: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let mut seen = Vec::with_capacity(records.len());
    for record in records {
        match status_of(node.client(), record) {
            Ok(status) if allowed.contains(&status.as_str()) => seen.push(status),
            Ok(status) => {
                failures.push(format!("{} ({}): {status}", record.id, record.key));
                seen.push(status);
            }
            Err(failure) => {
                failures.push(failure);
                seen.push(String::new());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{when}: {} of {} answered ids are wrong, e.g.:\n{}\nnode log:\n{}",
        failures.len(),
        records.len(),
        failures[..failures.len().min(FAILURES_SHOWN_MAX)].join("\n"),
        node.log_tail()
    );
    seen
}

/// Commits puts until the committed seqno passes `seqno`, each in a view
/// past `view`.
fn commit_past(node: &TestNode, seqno: u64, view: u64, round: usize) {
    for index in 0..CATCH_UP_PUTS_MAX {
        let id = node.put(MAP, &format!("after-{round}-{index}"), "later");
        assert!(
            id.view > view,
            "round {round}: {id} after a restart, not in a view past {view}"
        );
        if id.seqno > seqno {
            return;
        }
    }
    panic!("{CATCH_UP_PUTS_MAX} puts did not carry the log past seqno {seqno}");
}

#[test]
fn an_id_lost_in_a_crash_is_invalid_and_never_given_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(Path::new(BIN), dir.path());
    let mut all: Vec<Record> = Vec::new();
    let mut lost = 0;
    let mut settled = Vec::new();
    let mut views = Vec::new();
    for round in 0..ROUNDS_MAX {
        let records = load_then_kill(&mut node, round);
        assert!(
            !records.is_empty(),
            "round {round}: no answers; log:\n{}",
            node.log_tail()
        );
        all.extend(records);
        node.restart();

        // At once: nothing the clients were answered is held by another write.
        statuses(
            &node,
            &all,
            &["Committed", "Invalid", "Unknown"],
            &format!("round {round}, just after the restart"),
        );
        // Past every answered seqno, in a new view: each is committed with its
        // own write or invalid, for good.
        let highest = all.iter().map(|record| record.id.seqno).max().unwrap();
        let view = all.iter().map(|record| record.id.view).max().unwrap();
        commit_past(&node, highest, view, round);
        views.push(node.commit().unwrap().view);
        let after = statuses(
            &node,
            &all,
            &["Committed", "Invalid"],
            &format!("round {round}, after writes past seqno {highest}"),
        );
        let ids: HashMap<TransactionId, &str> = all
            .iter()
            .zip(&after)
            .map(|(record, status)| (record.id, status.as_str()))
            .collect();
        assert_eq!(
            ids.len(),
            all.len(),
            "round {round}: an id was answered twice"
        );
        lost = after.iter().filter(|status| *status == "Invalid").count();
        eprintln!(
            "round {round}: {} answered ids, {lost} lost in the crashes (Invalid), views {views:?}",
            all.len()
        );
        settled = after;
        if lost > 0 && round + 1 >= ROUNDS_MIN {
            break;
        }
    }
    if lost == 0 {
        // Still checked: every restart was a new view, and every answered id
        // committed with its own write.
        eprintln!("no answered id was lost in {ROUNDS_MAX} kills");
    }
    // Invalid for good: more writes do not turn a lost id into a commit.
    let last = node.commit().unwrap();
    commit_past(&node, last.seqno + 50, last.view - 1, ROUNDS_MAX);
    let end = statuses(&node, &all, &["Committed", "Invalid"], "at the end");
    for ((record, before), now) in all.iter().zip(&settled).zip(&end) {
        assert_eq!(
            before, now,
            "{} ({}) went from {before} to {now}",
            record.id, record.key
        );
    }
    let status = node.terminate();
    assert!(status.success(), "SIGTERM: {status}");
}
