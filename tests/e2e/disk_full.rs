//! End-to-end tests (disk full and fatal errors): one real `stele start`.
//!
//! - A full disk (a small tmpfs, filled with a file) is a condition that clears:
//!   writes are refused with 507 and a JSON reason, `/node/state` shows it,
//!   reads go on, and once the file is deleted writes resume without a restart.
//!   Every write answered committed is there after, and after a restart.
//! - A storage error that cannot clear (the ledger folder taken away under the
//!   node) ends the process with a non-zero status and the reason on stderr,
//!   so that a supervisor restarts it.
//!
//! The tmpfs needs root (the tests run as root here and in CI); without it the
//! test prints why and passes.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use stele_tests::client::transaction_id;
use stele_tests::tmpfs::{fill, Tmpfs};
use stele_tests::{NodeConfig, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Bound on every wait below (no assertion is made about the time taken).
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// A put of a 16 KiB value: more than the slack of a chunk's last page.
fn big_put(key: &str) -> serde_json::Value {
    json!({"ops": [{"op": "put", "map": "m", "key": key, "value": "x".repeat(16 * 1024)}]})
}

/// Polls `/node/state` until `check` holds; returns it.
fn wait_state(
    node: &TestNode,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = node.get_public("/node/state").expect_json(200);
        if check(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {state}\n{}",
            node.log_tail()
        );
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_full_disk_refuses_writes_with_507_and_resumes_once_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("4m") else {
        return;
    };
    let mut node = TestNode::start(Path::new(BIN), &tmpfs.path().join("node"));
    let mut committed = vec![("before".to_owned(), node.put("m", "before", "v"))];

    let filler = fill(tmpfs.path());
    // The first write to need space: held back (never answered failed: it is
    // written again once there is room).
    let client = node.client().with_timeout(WAIT * 2);
    let stuck = std::thread::spawn(move || client.post_json("/app/tx", &big_put("stuck")));
    let state = wait_state(&node, "no storage condition", |state| {
        state["storage"].is_string()
    });
    assert_eq!(state["role"], "Primary", "{state}");

    // Later writes are refused at once, with the reason.
    let refused = node.post_json("/app/tx", &big_put("refused"));
    assert_eq!(refused.expect_error(507), "InsufficientStorage");
    let (_, message) = refused.error_envelope().unwrap();
    assert!(message.contains("no space left"), "{message}");
    // Reads go on.
    let read = node.get("/app/kv/m/before").expect_json(200);
    assert_eq!(read["value"], "v", "{read}");

    std::fs::remove_file(filler).unwrap();
    let reply = stuck.join().unwrap();
    // Answered committed, or at worst timed out (then it claims nothing).
    if reply.status == 200 {
        let body = reply.json();
        assert_eq!(body["status"], "Committed", "{body}");
        committed.push(("stuck".to_owned(), transaction_id(&body["transaction_id"])));
    } else {
        assert_eq!(reply.expect_error(503), "Timeout");
    }
    wait_state(&node, "the condition did not clear", |state| {
        state["storage"].is_null()
    });
    for index in 0..3 {
        let key = format!("after{index}");
        let reply = node.post_json("/app/tx", &big_put(&key)).expect_json(200);
        assert_eq!(reply["status"], "Committed", "{reply}");
        committed.push((key, transaction_id(&reply["transaction_id"])));
    }

    let check = |node: &TestNode| {
        for (key, id) in &committed {
            assert_eq!(node.tx_status(*id), "Committed", "{key} {id}");
            node.get(&format!("/app/kv/m/{key}")).expect_json(200);
        }
    };
    check(&node);
    assert!(node.terminate().success());
    node.restart();
    check(&node);
    assert!(node.terminate().success());
}

#[test]
fn a_storage_error_that_cannot_clear_exits_non_zero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let config = dir.path().join("stele.toml");
    // Small chunks: the next writes close one (a rename in the ledger folder).
    std::fs::write(&config, "[ledger]\nchunk_bytes = 4096\n").unwrap();
    let mut options = NodeConfig::new(Path::new(BIN), &data_dir);
    options
        .extra_args
        .extend(["--config".to_owned(), config.display().to_string()]);
    let mut node = TestNode::start_with(options);
    node.put("m", "k", "v");

    // The ledger folder goes away under the node (a lost mount, an operator's
    // mistake): its files can no longer be created or renamed.
    std::fs::rename(data_dir.join("ledger"), dir.path().join("ledger.gone")).unwrap();
    let client = node.client().with_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        // Writes until one fails the ledger; their answers do not matter.
        let _ = client.try_post_json("/app/tx", &big_put("lost"));
        if let Some(status) = node.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not exit:\n{}",
            node.log_tail()
        );
        std::thread::sleep(POLL);
    };
    assert!(!status.success(), "exited with {status}");
    let log = node.log_tail();
    assert!(log.contains("fatal"), "no reason on stderr:\n{log}");
    // The cause itself, not only that the ledger stopped.
    assert!(log.contains("No such file"), "no cause on stderr:\n{log}");
}
