//! End-to-end tests (service): one real `stele start` over real HTTPS, as a client,
//! an auditor and an operator use it. Each test has its own data folder and node.
//!
//! - t10: submit, read back (`/app/kv`, `/app/log`, SmallBank), `?wait=false` then
//!   committed, a failed `check` changes nothing.
//! - t20: receipts (the `history` verifier and `stele receipt verify`), consistency
//!   between two checkpoints, the public key, metrics.
//! - t30: writes without a valid token are refused; auditor endpoints need none.
//! - t40: SIGTERM exits 0; a restart serves the same commit, receipts and values.
//! - t50: with `[ledger] leaves_in_memory = 0`, receipts and consistency proofs
//!   of transactions whose leaves and checkpoints left memory are the same as
//!   when they were recent (read back from the ledger), after a restart too.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use stele_history::{
    claims_digest, verify_consistency, Checkpoint, Digest, NoteVerifier, Receipt, SigningKey,
    TransactionId,
};
use stele_tests::client::transaction_id;
use stele_tests::{describe_output, run_cli, Auth, Method, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Polls of `/node/tx` before a `Pending` transaction must have committed, and the
/// pause between them (bounds the wait; no assertion is made about the time).
const COMMIT_POLLS: usize = 500;
const COMMIT_POLL_PAUSE: Duration = Duration::from_millis(20);

fn start(dir: &Path) -> TestNode {
    TestNode::start(Path::new(BIN), dir)
}

fn put_op(map: &str, key: &str, value: &str) -> Value {
    json!({"op": "put", "map": map, "key": key, "value": value})
}

/// `GET /app/kv/{map}/{key}`: (value, transaction id), checking the echoed names.
fn kv(node: &TestNode, map: &str, key: &str) -> (String, TransactionId) {
    let reply = node.get(&format!("/app/kv/{map}/{key}")).expect_json(200);
    assert_eq!(reply["map"], map, "{reply}");
    assert_eq!(reply["key"], key, "{reply}");
    let value = reply["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no string value: {reply}"))
        .to_owned();
    (value, transaction_id(&reply["transaction_id"]))
}

/// The sum of every sample of every counter whose name mentions requests, or
/// `None` if there is no such counter. Counters are declared by `# TYPE <name>
/// counter`; samples are `<name>[_total][{labels}] <value>`.
fn request_counter_total(metrics: &str) -> Option<f64> {
    let counters: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            let name = parts.next()?;
            (parts.next()? == "counter" && name.contains("request")).then_some(name)
        })
        .collect();
    if counters.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for line in metrics.lines().filter(|line| !line.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let base = name.strip_suffix("_total").unwrap_or(name);
        if counters.contains(&name) || counters.contains(&base) {
            let value = line.rsplit(' ').next().unwrap_or("");
            total += value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("metric sample without a number: {line:?}"));
        }
    }
    Some(total)
}

#[test]
fn t10_submit_read_back_pending_then_committed_and_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());

    // A write and a read of the transaction's own write, waiting for the commit.
    let reply = node.submit(
        json!([put_op("m", "k", "v"), {"op": "get", "map": "m", "key": "k"}]),
        true,
    );
    assert_eq!(reply["status"], "Committed", "{reply}");
    let first = transaction_id(&reply["transaction_id"]);
    assert_eq!(
        reply["results"],
        json!([{"map": "m", "key": "k", "value": "v"}]),
        "one result per get: {reply}"
    );
    assert_eq!(kv(&node, "m", "k"), ("v".to_owned(), first));
    assert_eq!(node.tx_status(first), "Committed");
    node.get("/app/kv/m/absent").expect_error(404);

    // A read of an absent key and a delete in one transaction.
    let reply = node.submit(
        json!([
            {"op": "get", "map": "m", "key": "nothing"},
            put_op("m", "gone", "x"),
            {"op": "delete", "map": "m", "key": "gone"}
        ]),
        true,
    );
    assert_eq!(
        reply["results"],
        json!([{"map": "m", "key": "nothing", "value": null}]),
        "{reply}"
    );
    node.get("/app/kv/m/gone").expect_error(404);

    // An overwrite: the value and the writer's id move on.
    let second = node.put("m", "k", "v2");
    assert!(second.seqno > first.seqno, "{second} after {first}");
    assert_eq!(kv(&node, "m", "k"), ("v2".to_owned(), second));

    // The logging app.
    let posted = node
        .post_json("/app/log", &json!({"id": 7, "msg": "hello log"}))
        .expect_json(200);
    let read = node.get("/app/log?id=7").expect_json(200);
    assert_eq!(read["id"], 7, "{read}");
    assert_eq!(read["msg"], "hello log", "{read}");
    let log_id = transaction_id(&read["transaction_id"]);
    if let Some(id) = posted.get("transaction_id") {
        assert_eq!(transaction_id(id), log_id, "POST {posted} then GET {read}");
    }

    // SmallBank: balances are decimal text in the generic maps.
    for (account, cents) in [(1, 1000), (2, 50)] {
        node.post_json(
            "/app/smallbank/create_account",
            &json!({"account": account, "checking_cents": cents, "savings_cents": 0}),
        )
        .expect_status(200);
    }
    node.post_json(
        "/app/smallbank/send_payment",
        &json!({"from": 1, "to": 2, "amount_cents": 300}),
    )
    .expect_status(200);
    assert_eq!(kv(&node, "smallbank.checking", "1").0, "700");
    assert_eq!(kv(&node, "smallbank.checking", "2").0, "350");
    let balance = node
        .get("/app/smallbank/balance?account=2")
        .expect_json(200);
    assert!(
        balance.to_string().contains("350"),
        "the balance of account 2 does not show 350: {balance}"
    );

    // `?wait=false`: answered Pending after execution, committed later.
    let reply = node.submit(json!([put_op("m", "later", "p")]), false);
    assert_eq!(reply["status"], "Pending", "{reply}");
    let pending = transaction_id(&reply["transaction_id"]);
    let seen = node.poll_until_committed(pending, COMMIT_POLLS, COMMIT_POLL_PAUSE);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Committed"),
        "{pending} never committed: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|status| status == "Pending" || status == "Committed"),
        "{pending} went through {seen:?}"
    );
    assert_eq!(kv(&node, "m", "later"), ("p".to_owned(), pending));

    // Ids the node never assigned: a seqno beyond the ledger, a wrong view.
    let beyond = TransactionId {
        view: pending.view,
        seqno: pending.seqno + 1_000_000,
    };
    assert_eq!(node.tx_status(beyond), "Unknown");
    let other_view = TransactionId {
        view: first.view + 1,
        seqno: first.seqno,
    };
    assert_eq!(node.tx_status(other_view), "Invalid");

    // A failed check: 409 CheckFailed, and none of the transaction's writes.
    let before = kv(&node, "m", "k");
    let failed = node.post_json(
        "/app/tx",
        &json!({"ops": [
            put_op("m", "side-effect", "x"),
            {"op": "check", "map": "m", "key": "k", "value": "not-the-value"},
            put_op("m", "k", "clobbered")
        ]}),
    );
    assert_eq!(failed.expect_error(409), "CheckFailed");
    let absent_expected = node.post_json(
        "/app/tx",
        &json!({"ops": [
            {"op": "check", "map": "m", "key": "k", "value": null},
            put_op("m", "k", "clobbered")
        ]}),
    );
    assert_eq!(absent_expected.expect_error(409), "CheckFailed");
    assert_eq!(kv(&node, "m", "k"), before, "a failed check wrote");
    node.get("/app/kv/m/side-effect").expect_error(404);

    // A check that holds lets the transaction through.
    let reply = node.submit(
        json!([
            {"op": "check", "map": "m", "key": "k", "value": "v2"},
            {"op": "check", "map": "m", "key": "fresh", "value": null},
            put_op("m", "fresh", "f")
        ]),
        true,
    );
    let checked = transaction_id(&reply["transaction_id"]);
    assert_eq!(kv(&node, "m", "fresh"), ("f".to_owned(), checked));

    let commit = node.commit().expect("transactions were committed");
    assert!(commit.seqno >= checked.seqno, "commit {commit} < {checked}");
}

#[test]
fn t20_receipts_consistency_public_key_and_metrics_verify() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let bin = Path::new(BIN);

    let reply = node
        .post_json(
            "/app/tx",
            &json!({"ops": [put_op("r", "k1", "v1")], "claims": "audit me"}),
        )
        .expect_json(200);
    assert_eq!(reply["status"], "Committed", "{reply}");
    let id = transaction_id(&reply["transaction_id"]);

    // The public key, in both forms, names one key and the checkpoint origin.
    let info = node.public_key_info();
    let key = node.public_key();
    let key_hex = Digest(key.to_bytes()).to_hex();
    assert_eq!(info["public_key"], key_hex.as_str(), "{info}");
    let verifier = NoteVerifier::from_verifier_key(info["verifier_key"].as_str().unwrap())
        .unwrap_or_else(|error| panic!("verifier_key of {info}: {error}"));
    assert_eq!(
        verifier.key(),
        &key,
        "verifier_key and public_key differ: {info}"
    );
    assert_eq!(verifier.name(), info["origin"].as_str().unwrap(), "{info}");

    // The receipt verifies with the `history` verifier, against that key.
    let receipt_text = node.receipt_text(id);
    let receipt: Receipt = serde_json::from_str(&receipt_text).unwrap();
    assert_eq!(receipt.transaction_id, id);
    assert_eq!(receipt.claims_digest, claims_digest(Some("audit me")));
    let signed = receipt
        .verify(&key)
        .unwrap_or_else(|error| panic!("the receipt of {id} does not verify: {error}"));
    assert!(
        signed.tree_size >= id.seqno,
        "{signed:?} does not cover {id}"
    );
    assert_eq!(signed.origin, info["origin"].as_str().unwrap());

    // ... and fails when anything is off.
    let other_key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(
        receipt.verify(&other_key).is_err(),
        "verified with another key"
    );
    let mut tampered = receipt.clone();
    tampered.write_set_digest.0[0] ^= 1;
    assert!(
        tampered.verify(&key).is_err(),
        "a changed write set verified"
    );
    let mut tampered_claims = receipt.clone();
    tampered_claims.claims_digest = claims_digest(Some("other claims"));
    assert!(
        tampered_claims.verify(&key).is_err(),
        "changed claims verified"
    );

    // `stele receipt verify`, as an auditor runs it offline.
    let good = dir.path().join("receipt.json");
    std::fs::write(&good, &receipt_text).unwrap();
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_string(&tampered).unwrap()).unwrap();
    let other_hex = Digest(other_key.to_bytes()).to_hex();
    let run = |file: &Path, key: &str| {
        run_cli(
            bin,
            &["receipt", "verify", file.to_str().unwrap(), "--key", key],
        )
    };
    let output = run(&good, &key_hex);
    assert!(output.status.success(), "{}", describe_output(&output));
    for (what, output) in [
        ("a tampered receipt", run(&bad, &key_hex)),
        ("another key", run(&good, &other_hex)),
        ("a malformed key", run(&good, "not-a-key")),
    ] {
        assert!(
            !output.status.success(),
            "{what} verified: {}",
            describe_output(&output)
        );
        assert!(!output.stderr.is_empty(), "{what}: no message");
    }

    // Two checkpoints, before and after more writes, and the proof between them.
    let old_note = node.checkpoint();
    let old = Checkpoint::open_with_key(&old_note, &key)
        .unwrap_or_else(|error| panic!("checkpoint {old_note:?}: {error}"));
    for index in 0..5 {
        node.put("r", &format!("more{index}"), "x");
    }
    let new_note = node.checkpoint();
    let new = Checkpoint::open_with_key(&new_note, &key)
        .unwrap_or_else(|error| panic!("checkpoint {new_note:?}: {error}"));
    assert!(new.tree_size >= old.tree_size + 5, "{old:?} then {new:?}");
    assert_eq!(old.origin, new.origin);
    let proof_of = |from: u64, to: u64| -> Vec<Digest> {
        let reply = node
            .get_public(&format!("/node/consistency?from={from}&to={to}"))
            .expect_json(200);
        assert_eq!(reply["from"], from, "{reply}");
        assert_eq!(reply["to"], to, "{reply}");
        reply["proof"]
            .as_array()
            .unwrap_or_else(|| panic!("no proof array: {reply}"))
            .iter()
            .map(|hash| Digest::from_hex(hash.as_str().unwrap_or(""), "proof").unwrap())
            .collect()
    };
    let proof = proof_of(old.tree_size, new.tree_size);
    verify_consistency(old.tree_size, new.tree_size, &old.root, &new.root, &proof)
        .unwrap_or_else(|error| panic!("consistency {old:?} -> {new:?}: {error}"));
    assert!(
        !proof.is_empty(),
        "a proof between different sizes is never empty"
    );
    let mut bent = proof.clone();
    bent[0].0[0] ^= 1;
    assert!(
        verify_consistency(old.tree_size, new.tree_size, &old.root, &new.root, &bent).is_err(),
        "a changed proof verified"
    );
    assert!(
        verify_consistency(old.tree_size, new.tree_size, &new.root, &old.root, &proof).is_err(),
        "swapped roots verified"
    );
    let same = proof_of(new.tree_size, new.tree_size);
    assert!(same.is_empty(), "from == to needs no hashes: {same:?}");

    // The first receipt, fetched again after those writes, still verifies.
    node.receipt(id)
        .verify(&key)
        .unwrap_or_else(|error| panic!("the receipt of {id}, later: {error}"));

    // Metrics count the requests made so far.
    let metrics = node.get("/metrics").expect_status(200).text();
    let total = request_counter_total(&metrics)
        .unwrap_or_else(|| panic!("no request counter in /metrics:\n{metrics}"));
    assert!(
        total >= 1.0,
        "request counters add up to {total}:\n{metrics}"
    );
    let openapi = node.get_public("/openapi.json").expect_json(200);
    assert!(
        openapi["paths"].get("/app/tx").is_some(),
        "/openapi.json does not document /app/tx: {}",
        &openapi.to_string().chars().take(500).collect::<String>()
    );
}

#[test]
fn t30_unauthenticated_writes_are_refused_and_auditor_endpoints_are_public() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let id = node.put("m", "k", "v");
    let commit = node.commit();

    let body = json!({"ops": [put_op("m", "intruder", "x")]}).to_string();
    let refusals = [
        (
            "POST /app/tx without a token",
            Method::POST,
            "/app/tx",
            Auth::None,
        ),
        (
            "POST /app/tx with a wrong token",
            Method::POST,
            "/app/tx",
            Auth::Bearer("not-the-token".to_owned()),
        ),
        (
            "POST /app/tx with the token as Basic credentials",
            Method::POST,
            "/app/tx",
            Auth::Header(format!("Basic {}", node.token())),
        ),
        (
            "POST /app/tx with the bare token",
            Method::POST,
            "/app/tx",
            Auth::Header(node.token().to_owned()),
        ),
        (
            "GET /app/kv without a token",
            Method::GET,
            "/app/kv/m/k",
            Auth::None,
        ),
    ];
    for (what, method, path, auth) in refusals {
        let (body, content_type) = if method == Method::POST {
            (Some(body.clone().into_bytes()), Some("application/json"))
        } else {
            (None, None)
        };
        let reply = node.request(method, path, body, content_type, &auth);
        assert_eq!(
            reply.status,
            401,
            "{what}: {} {}",
            reply.status,
            reply.text()
        );
        if let Err(problem) = reply.error_envelope() {
            panic!("{what}: {problem}");
        }
    }
    node.post_raw(
        "/app/log",
        r#"{"id":1,"msg":"x"}"#,
        Some("application/json"),
        None,
    )
    .expect_error(401);
    node.post_raw(
        "/app/smallbank/create_account",
        r#"{"account":9,"checking_cents":1,"savings_cents":1}"#,
        Some("application/json"),
        Some("wrong"),
    )
    .expect_error(401);
    assert_eq!(node.commit(), commit, "a refused write changed the commit");
    node.get("/app/kv/m/intruder").expect_error(404);
    node.get("/app/kv/smallbank.checking/9").expect_error(404);

    // The auditor's endpoints answer without any token, except receipts
    // (their digests confirm guessed values): a user's or an auditor's token.
    let size = Checkpoint::open_with_key(&node.checkpoint(), &node.public_key())
        .map(|checkpoint| checkpoint.tree_size)
        .unwrap_or_else(|error| panic!("checkpoint: {error}"));
    node.get_public(&format!("/node/receipt?transaction_id={id}"))
        .expect_error(401);
    node.get(&format!("/node/receipt?transaction_id={id}"))
        .expect_status(200);
    for path in [
        format!("/node/tx?transaction_id={id}"),
        "/node/commit".to_owned(),
        "/node/checkpoint".to_owned(),
        format!("/node/consistency?from=1&to={size}"),
        "/node/public-key".to_owned(),
    ] {
        node.get_public(&path).expect_status(200);
    }
    node.receipt(id).verify(&node.public_key()).unwrap();
}

#[test]
fn t40_sigterm_exits_zero_and_a_restart_serves_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path());
    let key = node.public_key();
    let written: Vec<(String, TransactionId)> = (0..10)
        .map(|index| {
            let key = format!("k{index}");
            let id = node.put("m", &key, &format!("value {index}"));
            (key, id)
        })
        .collect();
    let receipts: Vec<Receipt> = written.iter().map(|(_, id)| node.receipt(*id)).collect();
    let commit = node.commit().expect("ten transactions committed");
    let checkpoint = Checkpoint::open_with_key(&node.checkpoint(), &key).unwrap();

    let status = node.terminate();
    assert!(
        status.success(),
        "SIGTERM: {status}; log:\n{}",
        node.log_tail()
    );
    assert_eq!(status.code(), Some(0), "{status}");

    node.restart();
    assert_eq!(node.public_key(), key, "the service key changed on restart");
    assert_eq!(
        node.commit(),
        Some(commit),
        "/node/commit changed on restart"
    );
    let recovered = Checkpoint::open_with_key(&node.checkpoint(), &key).unwrap();
    assert_eq!(
        recovered, checkpoint,
        "the latest checkpoint changed on restart"
    );
    for ((name, id), receipt) in written.iter().zip(&receipts) {
        assert_eq!(node.tx_status(*id), "Committed", "{id}");
        let again = node.receipt(*id);
        assert_eq!(&again, receipt, "the receipt of {id} changed on restart");
        again.verify(&key).unwrap();
        let (value, writer) = kv(&node, "m", name);
        assert_eq!(writer, *id, "m/{name}");
        assert!(value.starts_with("value "), "m/{name} = {value:?}");
    }

    // And it keeps going: a new write lands after the recovered ones.
    let next = node.put("m", "after-restart", "yes");
    assert!(next.seqno > commit.seqno, "{next} after {commit}");
    assert!(next.view >= commit.view, "{next} after {commit}");
    node.receipt(next).verify(&key).unwrap();
}

/// Writers and transactions each in t50: past one 2 048-leaf memory chunk of
/// the tree and past the 1 024 committed checkpoints kept in memory.
const T50_WRITERS: usize = 2;
const T50_PUTS_PER_WRITER: usize = 1_600;

#[test]
fn t50_receipts_of_transactions_released_from_memory_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stele.toml");
    std::fs::write(&config, "[ledger]\nleaves_in_memory = 0\n").unwrap();
    let mut node_config = stele_tests::NodeConfig::new(Path::new(BIN), &dir.path().join("data"));
    node_config.extra_args = vec!["--config".to_owned(), config.display().to_string()];
    let mut node = TestNode::start_with(node_config);
    let key = node.public_key();
    let early: Vec<TransactionId> = (0..5)
        .map(|index| node.put("early", &format!("k{index}"), "v"))
        .collect();
    let receipts: Vec<Receipt> = early.iter().map(|id| node.receipt(*id)).collect();
    let old = Checkpoint::open_with_key(&node.checkpoint(), &key).unwrap();
    let state = node.get_public("/node/state").expect_json(200);
    assert_eq!(state["leaves_in_memory_from"], 0, "{state}");

    std::thread::scope(|scope| {
        for writer in 0..T50_WRITERS {
            let node = &node;
            scope.spawn(move || {
                for index in 0..T50_PUTS_PER_WRITER {
                    node.put("later", &format!("w{writer}-{index}"), "v");
                }
            });
        }
    });
    let state = node.get_public("/node/state").expect_json(200);
    let held_from = state["leaves_in_memory_from"].as_u64().unwrap();
    assert!(
        held_from > early.last().unwrap().seqno,
        "the early leaves are still in memory: {state}"
    );

    let check = |node: &TestNode, when: &str| {
        for (id, receipt) in early.iter().zip(&receipts) {
            let again = node.receipt(*id);
            assert_eq!(&again, receipt, "the receipt of {id} changed {when}");
            again.verify(&key).unwrap();
        }
        let new = Checkpoint::open_with_key(&node.checkpoint(), &key).unwrap();
        let reply = node
            .get_public(&format!(
                "/node/consistency?from={}&to={}",
                old.tree_size, new.tree_size
            ))
            .expect_json(200);
        let proof: Vec<Digest> = reply["proof"]
            .as_array()
            .unwrap_or_else(|| panic!("no proof array: {reply}"))
            .iter()
            .map(|hash| Digest::from_hex(hash.as_str().unwrap_or(""), "proof").unwrap())
            .collect();
        verify_consistency(old.tree_size, new.tree_size, &old.root, &new.root, &proof)
            .unwrap_or_else(|error| panic!("consistency {when} {old:?} -> {new:?}: {error}"));
    };
    check(&node, "once its leaves left memory");
    node.terminate();
    node.restart();
    check(&node, "after a restart");
}
