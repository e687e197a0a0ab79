//! Membership changes in a cluster of real processes: a fourth node, started
//! with `join = true`, is added through `POST /admin/members` on the leader. It
//! catches up as a learner by replicating the whole log, re-executing and
//! checking every batch, then votes. A follower is then removed with
//! `DELETE /admin/members/{id}`: the others go on without it, and once removed
//! it can no longer talk to them (its peer key is dropped with it).
//!
//! With the log compacted into snapshots, a follower that was down and a new
//! node catch up from a snapshot transfer instead (a KV snapshot plus the
//! ledger up to it, checked as it is installed).

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use stele_history::{Digest, SigningKey};
use stele_tests::client::Auth;
use stele_tests::cluster::{Cluster, ClusterOptions};
use stele_tests::Method;

const BIN: &str = env!("CARGO_BIN_EXE_stele");
const BEFORE_JOIN_TX: usize = 200;

fn voter_ids(members: &serde_json::Value) -> Vec<u64> {
    members["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|voter| voter["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_node_joins_catches_up_and_votes_and_a_removed_one_is_shut_out() {
    let options = ClusterOptions {
        joining: 1,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let founders = cluster.all();
    let leader = cluster.leader(&founders);
    let mut committed = Vec::new();
    for index in 0..BEFORE_JOIN_TX {
        committed.push(cluster.client(leader).put("m", &format!("k{index}"), "v"));
    }

    // Bad requests change nothing.
    let reply = cluster
        .client(leader)
        .try_request(Method::GET, "/admin/members", None, None, &Auth::Token)
        .unwrap();
    assert_eq!(reply.status, 401, "a user token is not the admin token");
    let bad_key = json!({"id": 9, "address": "127.0.0.1:1", "public_key": "00"});
    let reply = cluster.admin(leader, Method::POST, "/admin/members", Some(&bad_key));
    assert_eq!(reply.expect_error(400), "InvalidArgument");
    let reply = cluster.admin(leader, Method::DELETE, "/admin/members/9", None);
    assert_eq!(reply.expect_error(400), "InvalidArgument");
    let reply = cluster.admin(leader, Method::DELETE, "/admin/members/x", None);
    assert_eq!(reply.expect_error(400), "InvalidPath");
    let members = cluster
        .admin(leader, Method::GET, "/admin/members", None)
        .expect_json(200);
    assert_eq!(voter_ids(&members), vec![1, 2, 3], "{members}");

    // Node 4 joins: a learner until it has caught up, then a voter.
    let joiner = cluster.start_joining();
    let state = cluster.state(joiner).unwrap();
    assert_eq!(state["leader"], serde_json::Value::Null, "{state}");
    let started = Instant::now();
    let members = cluster.add_member(leader, 4);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(voter_ids(&members), vec![1, 2, 3, 4], "{members}");
    eprintln!(
        "node 4 caught up with {} transactions in {seconds:.2} s ({:.0} tx/s)",
        committed.last().unwrap().seqno,
        committed.last().unwrap().seqno as f64 / seconds
    );
    // A follower refuses membership changes, naming the leader (the leader as
    // it is now: an election during the join may have moved it).
    let leader = cluster.leader(&founders);
    let follower = (leader + 1) % founders.len();
    let reply = cluster.admin(follower, Method::DELETE, "/admin/members/4", None);
    assert_eq!(reply.status, 307, "{}", reply.text());

    for index in 0..20 {
        committed.push(
            cluster
                .client(leader)
                .put("m", &format!("after{index}"), "v"),
        );
    }
    let all = cluster.all();
    let last = *committed.last().unwrap();
    cluster.assert_committed_everywhere(&all, &committed, last);
    let receipt = cluster.client(leader).receipt_text(last);
    for index in &all {
        assert_eq!(cluster.client(*index).receipt_text(last), receipt);
    }
    assert!(all.contains(&joiner));

    // Remove a founder that does not lead, then stop it: three voters remain,
    // node 4 among them, and they commit without it.
    let removed = follower;
    let members = cluster.admin(
        leader,
        Method::DELETE,
        &format!("/admin/members/{}", removed + 1),
        None,
    );
    let members = members.expect_json(200);
    assert!(
        !voter_ids(&members).contains(&(removed as u64 + 1)),
        "{members}"
    );
    cluster.nodes[removed].kill9();
    let remaining: Vec<usize> = all.iter().copied().filter(|&i| i != removed).collect();
    let leader = cluster.leader(&remaining);
    for index in 0..20 {
        committed.push(
            cluster
                .client(leader)
                .put("m", &format!("removed{index}"), "v"),
        );
    }
    // Restarted, the removed node campaigns with its stale membership: the
    // others refuse its messages (its key is no longer pinned) and go on.
    cluster.nodes[removed].restart();
    for index in 0..20 {
        committed.push(
            cluster
                .client(leader)
                .put("m", &format!("shut{index}"), "v"),
        );
    }
    let leader_after = cluster.leader(&remaining);
    assert_ne!(leader_after, removed);
    let last = *committed.last().unwrap();
    for index in &remaining {
        cluster.wait_committed(*index, last);
    }
    assert_ne!(cluster.client(removed).tx_status(last), "Committed");
    cluster.terminate_and_verify();
}

/// How long the test below lets a new member take to catch up, in
/// milliseconds (`[cluster] learner_catch_up_timeout_ms`).
const LEARNER_TIMEOUT_MS: u64 = 2_000;

/// A node that cannot be reached (nothing listens on port 1) is added to a
/// young cluster: it never acknowledges the log, so it is never made a voter.
/// The call answers 504 `Timeout` once the timeout passed, the learner is
/// removed again, the membership is as before and the cluster still commits.
#[test]
fn an_unreachable_member_times_out_and_the_cluster_stays_writable() {
    let options = ClusterOptions {
        cluster_settings: format!("learner_catch_up_timeout_ms = {LEARNER_TIMEOUT_MS}\n"),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let founders = cluster.all();
    let leader = cluster.leader(&founders);
    cluster.client(leader).put("m", "before", "v");
    let before = cluster
        .admin(leader, Method::GET, "/admin/members", None)
        .expect_json(200);

    let key = SigningKey::from_bytes(&[42; 32]).verifying_key();
    let body =
        json!({"id": 9, "address": "127.0.0.1:1", "public_key": Digest(key.to_bytes()).to_hex()});
    let started = Instant::now();
    let reply = cluster.admin(leader, Method::POST, "/admin/members", Some(&body));
    let waited = started.elapsed();
    assert_eq!(reply.expect_error(504), "Timeout", "{}", reply.text());
    let (_, message) = reply.error_envelope().unwrap();
    assert!(message.contains("node 9"), "{message}");
    assert!(
        waited >= Duration::from_millis(LEARNER_TIMEOUT_MS),
        "answered after {waited:?}, before the timeout"
    );

    cluster.client(leader).put("m", "after", "v");
    let after = cluster
        .admin(leader, Method::GET, "/admin/members", None)
        .expect_json(200);
    assert_eq!(after, before, "the membership changed");
    cluster.terminate_and_verify();
}

/// Longest wait for the ledger's upkeep to archive a committed chunk.
const ARCHIVE_WAIT: Duration = Duration::from_secs(30);

/// Longest wait for the background fetch of a resumed ledger.
const FETCH_WAIT: Duration = Duration::from_secs(60);

/// `[cluster]` settings that make the leader compact its log often: a
/// snapshot every 8 applied entries, 2 entries kept behind it.
const FREQUENT_SNAPSHOTS: &str = "snapshot_entries = 8\nlog_entries_kept = 2\n";

/// Puts 20 values in `map`, kills a follower, puts 60 more (each its own
/// batch: many snapshots while it is down), restarts it and waits until it
/// caught up, then starts and adds the joining node 4 and waits until it
/// caught up too; both must have installed a snapshot. Returns the leader,
/// the lagging node, the new node and the ids committed.
fn lag_and_join_from_snapshots(
    cluster: &mut Cluster,
    map: &str,
) -> (usize, usize, usize, Vec<stele_history::TransactionId>) {
    let founders = cluster.all();
    let leader = cluster.leader(&founders);
    let mut committed = Vec::new();
    for index in 0..20 {
        committed.push(cluster.client(leader).put(map, &format!("a{index}"), "1"));
    }
    let lagging = (leader + 1) % founders.len();
    cluster.nodes[lagging].kill9();
    for index in 0..60 {
        committed.push(cluster.client(leader).put(map, &format!("b{index}"), "2"));
    }
    // openraft 0.10 purges a log only while no replication to any node has it
    // in flight, and its stream to the down node holds everything after the
    // node's last match until a send fails: stay down for a few of the
    // leader's retries (500 ms apart), so that it purges and has to send a
    // snapshot. (With a shorter outage the node catches up from the log.)
    std::thread::sleep(Duration::from_millis(2_000));
    cluster.nodes[lagging].restart();
    let last = *committed.last().unwrap();
    cluster.wait_committed(lagging, last);
    let state = cluster.state(lagging).unwrap();
    assert!(
        state["snapshots_installed"].as_u64().unwrap() >= 1,
        "the lagging node caught up from the log, not a snapshot: {state}"
    );
    let joiner = cluster.start_joining();
    let members = cluster.add_member(leader, 4);
    assert_eq!(voter_ids(&members), vec![1, 2, 3, 4], "{members}");
    cluster.wait_committed(joiner, last);
    let state = cluster.state(joiner).unwrap();
    assert!(
        state["snapshots_installed"].as_u64().unwrap() >= 1,
        "the new node caught up from the log, not a snapshot: {state}"
    );
    (leader, lagging, joiner, committed)
}

/// With the log compacted into snapshots and `snapshot_transfer = "full"`, a
/// follower that was down meanwhile and a new node both catch up from a full
/// snapshot transfer (a KV snapshot plus the ledger, checked as it is
/// installed) instead of from the log; afterwards
/// they hold every committed transaction, serve the same values and receipts,
/// and their ledgers verify. The chunks are small and every committed one
/// but the newest moves to the archive, so the transfers are read from
/// archived chunks.
#[test]
fn a_lagging_and_a_new_node_catch_up_from_a_snapshot() {
    let options = ClusterOptions {
        joining: 1,
        cluster_settings: format!("{FREQUENT_SNAPSHOTS}snapshot_transfer = \"full\"\n"),
        ledger_settings: "chunk_bytes = 4096\ncommitted_chunks_live = 1\n".to_owned(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let (leader, lagging, joiner, mut committed) = lag_and_join_from_snapshots(&mut cluster, "m");

    // Both go on from the snapshot: later batches are re-executed and checked
    // on top of the installed state.
    for index in 0..10 {
        committed.push(cluster.client(leader).put("m", &format!("c{index}"), "3"));
    }
    let all = cluster.all();
    let last = *committed.last().unwrap();
    cluster.assert_committed_everywhere(&all, &committed, last);
    for path in ["/app/kv/m/a0", "/app/kv/m/b59", "/app/kv/m/c9"] {
        let expected = cluster.client(leader).get(path).expect_json(200);
        for index in [lagging, joiner] {
            assert_eq!(
                cluster.client(index).get(path).expect_json(200),
                expected,
                "{path}"
            );
        }
    }
    for id in [committed[0], committed[40], last] {
        let receipt = cluster.client(leader).receipt_text(id);
        for index in [lagging, joiner] {
            assert_eq!(
                cluster.client(index).receipt_text(id),
                receipt,
                "receipt of {id}"
            );
        }
    }
    // Every node kept its snapshots without a copy of its ledger: a kept
    // snapshot is the state only (a send reads the ledger's own chunks), a
    // received one was cut to it once its batches were in the ledger.
    let mut kept = 0;
    for index in cluster.all() {
        let dir = cluster.nodes[index].ledger_dir().join("raft-snapshots");
        for entry in std::fs::read_dir(&dir).expect("the snapshot folder") {
            let path = entry.expect("a folder entry").path();
            let file = std::fs::File::open(&path).expect("a kept snapshot");
            let head = stele_consensus::raft::transfer::head_length(&file, &path)
                .expect("a snapshot's head");
            let length = file.metadata().expect("its length").len();
            assert_eq!(length, head, "{} holds ledger batches", path.display());
            kept += 1;
        }
    }
    assert!(kept >= 2, "snapshots were built and kept: {kept}");
    // The upkeep marks the commit point and archives once a second, also
    // when no write comes: wait for it (bounded; not a timing assertion).
    let archive = cluster.nodes[leader].ledger_dir().join("archive");
    let waited = Instant::now();
    let archived = loop {
        let count = std::fs::read_dir(&archive)
            .map(|entries| entries.count())
            .unwrap_or(0);
        if count > 0 || waited.elapsed() > ARCHIVE_WAIT {
            break count;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        archived > 0,
        "the leader moved no chunk to {}",
        archive.display()
    );
    cluster.terminate_and_verify();
}

/// With `snapshot_transfer = "resume"` (and `fetch_skipped = false`: keep
/// the suffix), a follower that was down and a new node catch up from a
/// resume transfer: the KV state and the tree's frontier at the snapshot,
/// without the ledger before it. Both serve reads, writes and the receipts
/// of what follows at once; a receipt of a transaction before the snapshot
/// is 503 on them (with the reason), and their ledgers verify from the
/// signed checkpoint they resume at, naming what they skip. A kill -9 of the
/// new node and a restart bring it back from its ledger and the KV snapshot
/// the install wrote.
#[test]
fn a_lagging_and_a_new_node_resume_at_a_snapshot_without_the_history() {
    let options = ClusterOptions {
        joining: 1,
        cluster_settings: format!(
            "{FREQUENT_SNAPSHOTS}snapshot_transfer = \"resume\"\nfetch_skipped = false\n"
        ),
        ledger_settings: "chunk_bytes = 4096\n".to_owned(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let (leader, _, joiner, mut committed) = lag_and_join_from_snapshots(&mut cluster, "r");
    for index in 0..10 {
        committed.push(cluster.client(leader).put("r", &format!("c{index}"), "3"));
    }
    let all = cluster.all();
    let last = *committed.last().unwrap();
    cluster.assert_committed_everywhere(&all, &committed[committed.len() - 10..], last);
    for path in ["/app/kv/r/a0", "/app/kv/r/b59", "/app/kv/r/c9"] {
        let expected = cluster.client(leader).get(path).expect_json(200);
        assert_eq!(
            cluster.client(joiner).get(path).expect_json(200),
            expected,
            "{path}"
        );
    }
    // What follows the snapshot has the leader's receipts; what precedes it
    // is not on the new node yet: 503, saying why.
    assert_eq!(
        cluster.client(joiner).receipt_text(last),
        cluster.client(leader).receipt_text(last)
    );
    let early = committed[0];
    assert_eq!(cluster.client(joiner).tx_status(early), "Committed");
    let reply = cluster
        .client(joiner)
        .get(&format!("/node/receipt?transaction_id={early}"));
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(
        reply.text().contains("joined from a snapshot"),
        "{}",
        reply.text()
    );

    // A kill -9 and a restart: back from the KV snapshot and the ledger after it.
    cluster.nodes[joiner].kill9();
    cluster.nodes[joiner].restart();
    committed.push(cluster.client(leader).put("r", "d0", "4"));
    let last = *committed.last().unwrap();
    cluster.wait_committed(joiner, last);
    assert_eq!(
        cluster.client(joiner).get("/app/kv/r/d0").expect_json(200),
        cluster.client(leader).get("/app/kv/r/d0").expect_json(200)
    );

    let key = cluster.client(leader).public_key_hex();
    let ledger = cluster.nodes[joiner].ledger_dir();
    let output = stele_tests::run_cli(
        Path::new(BIN),
        &["verify", ledger.to_str().unwrap(), "--key", &key],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("are not in this ledger"), "{stdout}");
    cluster.terminate_and_verify();
}

/// With `snapshot_transfer = "resume"` and `fetch_skipped` (the defaults), the
/// nodes that resumed at a snapshot fetch the batches before it from their
/// peers in the background, checked against the signed checkpoints: the new
/// node is killed (-9) right after it joined, maybe mid-fetch, and restarted;
/// then `/node/state` stops naming skipped seqnos, the receipts of the
/// earliest transactions are the leader's, and its ledger verifies whole
/// (`stele verify --complete`).
#[test]
fn nodes_that_resumed_fetch_the_skipped_ledger_from_their_peers() {
    let options = ClusterOptions {
        joining: 1,
        cluster_settings: FREQUENT_SNAPSHOTS.to_owned(),
        ledger_settings: "chunk_bytes = 4096\n".to_owned(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let (leader, lagging, joiner, mut committed) = lag_and_join_from_snapshots(&mut cluster, "f");
    cluster.nodes[joiner].kill9();
    cluster.nodes[joiner].restart();
    committed.push(cluster.client(leader).put("f", "after", "5"));
    let last = *committed.last().unwrap();
    cluster.wait_committed(joiner, last);
    // The fetch runs in the background: wait for it (bounded; not a timing
    // assertion).
    for index in [lagging, joiner] {
        let waited = Instant::now();
        let state = loop {
            let state = cluster.state(index).unwrap();
            if state.get("ledger_skipped").is_none() || waited.elapsed() > FETCH_WAIT {
                break state;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            state.get("ledger_skipped").is_none(),
            "node {index} still skips seqnos: {state}"
        );
        for id in [committed[0], committed[19], committed[50], last] {
            assert_eq!(
                cluster.client(index).receipt_text(id),
                cluster.client(leader).receipt_text(id),
                "receipt of {id} on node {index}"
            );
        }
    }
    let key = cluster.client(leader).public_key_hex();
    cluster.terminate_and_verify();
    for index in [lagging, joiner] {
        let ledger = cluster.nodes[index].ledger_dir();
        let output = stele_tests::run_cli(
            Path::new(BIN),
            &[
                "verify",
                ledger.to_str().unwrap(),
                "--key",
                &key,
                "--complete",
            ],
        );
        assert!(
            output.status.success(),
            "node {index}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
