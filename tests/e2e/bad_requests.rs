//! End-to-end tests (bad_requests): a table of bad requests against the real binary.
//!
//! Each named case must get its documented status and the error envelope
//! `{"error":{"code":"...","message":"..."}}` with a non-empty code and message, and
//! must not change state: `/node/commit` is the same after every case, and no key a
//! case tried to write exists afterwards. The cases run in one go and every failure
//! is listed by name.
//!
//! Requests refused at validation (HTTP, auth, parsing, limits, bad ids and ranges)
//! never get a transaction id. Requests that are valid but abort on the state (a
//! failed `check`, a negative SmallBank amount, insufficient funds) are ordered and
//! occupy a seqno with an empty write set, so they may move `/node/commit`: those
//! are checked first, separately, by the data they leave untouched.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;

use serde_json::{json, Value};
use stele_history::TransactionId;
use stele_tests::client::error_chain;
use stele_tests::{Auth, Method, NodeClient, Reply, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// The statuses a valid command that aborts on the state may get: the contract
/// names 409 for a failed `check` only; SmallBank aborts are "the documented
/// 4xx", and a node may also refuse a negative amount before ordering it (400).
const ABORTED: &[u16] = &[400, 409, 422];
/// What an oversized request promises in `Content-Length` (the limit is 1 MiB),
/// and what it actually sends: the node must answer 413 from the head alone.
const OVERSIZED_DECLARED_BYTES: usize = 2 << 20;
const OVERSIZED_SENT_BYTES: usize = 4096;
/// The least number of cases the issue asks for.
const CASES_MIN: usize = 30;

/// One bad request and the statuses it may get.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    auth: Auth,
    expected: &'static [u16],
    /// Sent by hand with this `Content-Length` (more than the body) when set.
    declared_length: Option<usize>,
}

impl Case {
    fn get(name: &'static str, path: impl Into<String>) -> Case {
        Case {
            name,
            method: Method::GET,
            path: path.into(),
            body: None,
            content_type: None,
            auth: Auth::Token,
            expected: &[400],
            declared_length: None,
        }
    }

    /// A POST with a JSON content type and the token, expected to get 400.
    fn post(name: &'static str, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
        Case {
            name,
            method: Method::POST,
            path: path.into(),
            body: Some(body.into()),
            content_type: Some("application/json"),
            auth: Auth::Token,
            expected: &[400],
            declared_length: None,
        }
    }

    /// A POST of `/app/tx` with this JSON body.
    fn tx(name: &'static str, body: Value) -> Case {
        Case::post(name, "/app/tx", body.to_string())
    }

    /// Sent by hand, promising `OVERSIZED_DECLARED_BYTES` and sending only the
    /// first `OVERSIZED_SENT_BYTES` of the body.
    fn oversized(mut self) -> Case {
        self.declared_length = Some(OVERSIZED_DECLARED_BYTES);
        if let Some(body) = &mut self.body {
            body.truncate(OVERSIZED_SENT_BYTES);
        }
        self.expected = &[413];
        self
    }

    fn method(mut self, method: Method) -> Case {
        self.method = method;
        self
    }

    fn content_type(mut self, content_type: Option<&'static str>) -> Case {
        self.content_type = content_type;
        self
    }

    fn auth(mut self, auth: Auth) -> Case {
        self.auth = auth;
        self
    }

    fn expect(mut self, expected: &'static [u16]) -> Case {
        self.expected = expected;
        self
    }

    fn send(&self, client: &NodeClient) -> Result<Reply, String> {
        if let Some(declared_length) = self.declared_length {
            let mut headers = vec![("Content-Length", declared_length.to_string())];
            if let Some(content_type) = self.content_type {
                headers.push(("Content-Type", content_type.to_owned()));
            }
            let body = self.body.as_deref().unwrap_or_default();
            return client.raw_request(
                self.method.as_str(),
                &self.path,
                &self.auth,
                &headers,
                body,
            );
        }
        client
            .try_request(
                self.method.clone(),
                &self.path,
                self.body.clone(),
                self.content_type,
                &self.auth,
            )
            .map_err(|error| format!("no response: {}", error_chain(&error)))
    }

    /// `Err` says how the reply differs from what the case expects.
    fn check(&self, reply: &Reply) -> Result<(), String> {
        if !self.expected.contains(&reply.status) {
            return Err(format!(
                "expected {:?}, got {}: {}",
                self.expected,
                reply.status,
                excerpt(&reply.text())
            ));
        }
        reply.error_envelope().map(|_| ()).map_err(|problem| {
            format!(
                "status {} but not the error envelope: {}",
                reply.status,
                excerpt(&problem)
            )
        })
    }
}

fn excerpt(text: &str) -> String {
    const SHOWN: usize = 300;
    if text.len() <= SHOWN {
        return text.to_owned();
    }
    let end = (0..=SHOWN)
        .rev()
        .find(|&end| text.is_char_boundary(end))
        .unwrap_or(0);
    format!("{}... ({} bytes)", &text[..end], text.len())
}

fn put_op(map: &str, key: &str, value: &str) -> Value {
    json!({"op": "put", "map": map, "key": key, "value": value})
}

/// The map every validation case tries to write to: it must stay empty.
const BAD_MAP: &str = "bad";

/// The validation cases, given the last committed id and tree size.
fn table(commit: TransactionId, tree_size: u64) -> Vec<Case> {
    let put = || put_op(BAD_MAP, "k", "v");
    // 64 operations is the maximum.
    let too_many: Vec<Value> = (0..65)
        .map(|index| put_op(BAD_MAP, &format!("k{index}"), "v"))
        .collect();
    let oversized =
        json!({"ops": [put_op(BAD_MAP, "huge", &"x".repeat(OVERSIZED_DECLARED_BYTES))]});
    let beyond = TransactionId {
        view: commit.view,
        seqno: commit.seqno + 1_000_000,
    };
    let other_view = TransactionId {
        view: commit.view + 1,
        seqno: commit.seqno,
    };
    let valid = || json!({"ops": [put()]}).to_string();
    vec![
        // The transaction body: JSON, fields, types.
        Case::post("tx_malformed_json", "/app/tx", r#"{"ops":["#),
        Case::post("tx_not_json", "/app/tx", "put bad k v"),
        Case::post("tx_empty_body", "/app/tx", ""),
        Case::tx("tx_top_level_array", json!([put()])),
        Case::tx(
            "tx_unknown_top_level_field",
            json!({"ops": [put()], "extra": 1}),
        ),
        Case::tx(
            "tx_unknown_op_field",
            json!({"ops": [{"op": "put", "map": BAD_MAP, "key": "k", "value": "v", "ttl": 5}]}),
        ),
        Case::tx(
            "tx_unknown_op_kind",
            json!({"ops": [put(), {"op": "increment", "map": BAD_MAP, "key": "k"}]}),
        ),
        Case::tx(
            "tx_op_without_tag",
            json!({"ops": [{"map": BAD_MAP, "key": "k", "value": "v"}]}),
        ),
        Case::tx("tx_ops_not_an_array", json!({"ops": put()})),
        Case::tx(
            "tx_key_wrong_type",
            json!({"ops": [{"op": "put", "map": BAD_MAP, "key": 5, "value": "v"}]}),
        ),
        Case::tx(
            "tx_value_wrong_type",
            json!({"ops": [{"op": "put", "map": BAD_MAP, "key": "k", "value": true}]}),
        ),
        Case::tx("tx_missing_ops", json!({"claims": "no ops"})),
        Case::tx(
            "tx_put_missing_value",
            json!({"ops": [{"op": "put", "map": BAD_MAP, "key": "k"}]}),
        ),
        Case::tx(
            "tx_get_missing_map",
            json!({"ops": [put(), {"op": "get", "key": "k"}]}),
        ),
        Case::tx("tx_claims_wrong_type", json!({"ops": [put()], "claims": 7})),
        // Limits.
        Case::tx("tx_65_ops", json!({ "ops": too_many })),
        Case::tx(
            "tx_key_over_1024_bytes",
            json!({"ops": [put_op(BAD_MAP, &"k".repeat(1025), "v")]}),
        ),
        Case::tx(
            "tx_map_name_over_128_bytes",
            json!({"ops": [put_op(&"m".repeat(129), "k", "v")]}),
        ),
        Case::tx(
            "tx_value_over_16_kib",
            json!({"ops": [put_op(BAD_MAP, "k", &"v".repeat(16 * 1024 + 1))]}),
        ),
        Case::tx(
            "tx_claims_over_4096_bytes",
            json!({"ops": [put()], "claims": "c".repeat(4097)}),
        ),
        Case::tx("tx_body_over_1_mib", oversized.clone()).oversized(),
        // Either refusal is right; neither may read the body first.
        Case::tx("tx_body_over_1_mib_without_a_token", oversized)
            .auth(Auth::None)
            .oversized()
            .expect(&[401, 413]),
        Case::post(
            "log_body_over_1_mib",
            "/app/log",
            json!({"id": 1, "msg": "x".repeat(OVERSIZED_DECLARED_BYTES)}).to_string(),
        )
        .oversized(),
        // HTTP: query, content type, token.
        Case::post("tx_wait_not_a_bool", "/app/tx?wait=maybe", valid()),
        Case::post("tx_text_plain", "/app/tx", valid())
            .content_type(Some("text/plain"))
            .expect(&[415]),
        Case::post("tx_no_content_type", "/app/tx", valid())
            .content_type(None)
            .expect(&[415]),
        Case::post("tx_no_token", "/app/tx", valid())
            .auth(Auth::None)
            .expect(&[401]),
        Case::post("tx_wrong_token", "/app/tx", valid())
            .auth(Auth::Bearer("0123456789abcdef".to_owned()))
            .expect(&[401]),
        Case::post("tx_basic_scheme", "/app/tx", valid())
            .auth(Auth::Header("Basic dXNlcjpwYXNz".to_owned()))
            .expect(&[401]),
        Case::post("tx_empty_bearer", "/app/tx", valid())
            .auth(Auth::Header("Bearer ".to_owned()))
            .expect(&[401]),
        Case::get("kv_no_token", "/app/kv/bad/k")
            .auth(Auth::None)
            .expect(&[401]),
        Case::get("kv_absent_key", "/app/kv/bad/absent").expect(&[404]),
        // The logging app.
        Case::post("log_missing_msg", "/app/log", r#"{"id":1}"#),
        Case::post("log_id_wrong_type", "/app/log", r#"{"id":"one","msg":"x"}"#),
        Case::post("log_negative_id", "/app/log", r#"{"id":-1,"msg":"x"}"#),
        Case::post(
            "log_unknown_field",
            "/app/log",
            r#"{"id":1,"msg":"x","level":"info"}"#,
        ),
        Case::post(
            "log_msg_over_16_kib",
            "/app/log",
            json!({"id": 1, "msg": "x".repeat(16 * 1024 + 1)}).to_string(),
        ),
        Case::get("log_get_missing_id", "/app/log"),
        Case::get("log_get_id_not_a_number", "/app/log?id=abc"),
        // SmallBank.
        Case::post(
            "smallbank_unknown_op",
            "/app/smallbank/launder",
            r#"{"account":1,"amount_cents":1}"#,
        )
        .expect(&[400, 404]),
        Case::post(
            "smallbank_send_payment_to_self",
            "/app/smallbank/send_payment",
            r#"{"from":1,"to":1,"amount_cents":1}"#,
        ),
        Case::post(
            "smallbank_amalgamate_to_self",
            "/app/smallbank/amalgamate",
            r#"{"from":2,"to":2}"#,
        ),
        Case::post(
            "smallbank_create_account_missing_field",
            "/app/smallbank/create_account",
            r#"{"account":50,"checking_cents":1}"#,
        ),
        Case::post(
            "smallbank_amount_not_an_integer",
            "/app/smallbank/deposit_checking",
            r#"{"account":1,"amount_cents":1.5}"#,
        ),
        Case::post(
            "smallbank_negative_account_id",
            "/app/smallbank/deposit_checking",
            r#"{"account":-1,"amount_cents":1}"#,
        ),
        Case::post(
            "smallbank_unknown_field",
            "/app/smallbank/deposit_checking",
            r#"{"account":1,"amount_cents":1,"memo":"x"}"#,
        ),
        Case::get(
            "smallbank_balance_missing_account",
            "/app/smallbank/balance",
        ),
        // Transaction ids.
        Case::get("node_tx_missing_id", "/node/tx").auth(Auth::None),
        Case::get("node_tx_id_without_view", "/node/tx?transaction_id=1").auth(Auth::None),
        Case::get("node_tx_id_not_numbers", "/node/tx?transaction_id=a.b").auth(Auth::None),
        Case::get("node_tx_id_leading_zero", "/node/tx?transaction_id=01.2").auth(Auth::None),
        Case::get("node_tx_id_negative", "/node/tx?transaction_id=-1.2").auth(Auth::None),
        Case::get("node_tx_id_three_parts", "/node/tx?transaction_id=1.2.3").auth(Auth::None),
        Case::get("node_tx_id_empty", "/node/tx?transaction_id=").auth(Auth::None),
        Case::get("receipt_missing_id", "/node/receipt"),
        Case::get("receipt_id_not_numbers", "/node/receipt?transaction_id=a.b"),
        Case::get(
            "receipt_id_leading_zero",
            "/node/receipt?transaction_id=01.2",
        ),
        Case::get(
            "receipt_beyond_the_ledger",
            format!("/node/receipt?transaction_id={beyond}"),
        )
        .expect(&[404]),
        Case::get(
            "receipt_wrong_view",
            format!("/node/receipt?transaction_id={other_view}"),
        ),
        Case::get(
            "receipt_without_a_token",
            format!("/node/receipt?transaction_id={commit}"),
        )
        .auth(Auth::None)
        .expect(&[401]),
        // Consistency ranges.
        Case::get("consistency_missing_to", "/node/consistency?from=1").auth(Auth::None),
        Case::get("consistency_missing_both", "/node/consistency").auth(Auth::None),
        Case::get("consistency_from_after_to", "/node/consistency?from=2&to=1").auth(Auth::None),
        Case::get(
            "consistency_to_beyond_the_tree",
            format!("/node/consistency?from=1&to={}", tree_size + 1000),
        )
        .auth(Auth::None),
        Case::get("consistency_not_numbers", "/node/consistency?from=a&to=b").auth(Auth::None),
        Case::get(
            "consistency_negative_from",
            "/node/consistency?from=-1&to=1",
        )
        .auth(Auth::None),
        // Routes and methods.
        Case::get("unknown_route", "/nope").expect(&[404]),
        Case::post("unknown_app_route", "/app/nope", valid()).expect(&[404]),
        Case::get("unknown_node_route", "/node/nope")
            .auth(Auth::None)
            .expect(&[404]),
        Case::get("get_on_app_tx", "/app/tx").expect(&[405]),
        Case::get("delete_on_node_commit", "/node/commit")
            .method(Method::DELETE)
            .auth(Auth::None)
            .expect(&[405]),
        Case::post("post_on_node_checkpoint", "/node/checkpoint", "")
            .auth(Auth::None)
            .expect(&[405]),
        Case::post("put_on_app_kv", "/app/kv/bad/k", "v")
            .method(Method::PUT)
            .content_type(Some("text/plain"))
            .expect(&[405]),
    ]
}

/// The value of `map`/`key` and its writer, or `None` if absent.
fn kv(node: &TestNode, map: &str, key: &str) -> Option<Value> {
    let reply = node.get(&format!("/app/kv/{map}/{key}"));
    match reply.status {
        404 => None,
        _ => Some(reply.expect_json(200)),
    }
}

/// Valid commands that abort on the state: a documented 4xx, the envelope, and
/// the data they address unchanged.
fn check_aborted_commands(node: &TestNode) {
    let k_before = kv(node, "m", "k");
    let failed = node.post_json(
        "/app/tx",
        &json!({"ops": [
            put_op(BAD_MAP, "before-check", "x"),
            {"op": "check", "map": "m", "key": "k", "value": "not-the-value"}
        ]}),
    );
    assert_eq!(failed.expect_error(409), "CheckFailed", "check_failed");
    assert_eq!(kv(node, "m", "k"), k_before, "check_failed wrote m/k");
    assert_eq!(
        kv(node, BAD_MAP, "before-check"),
        None,
        "check_failed wrote"
    );

    let balances = || {
        (
            kv(node, "smallbank.checking", "1"),
            kv(node, "smallbank.savings", "1"),
            kv(node, "smallbank.checking", "2"),
            kv(node, "smallbank.savings", "2"),
        )
    };
    let before = balances();
    let aborts = [
        (
            "create_account_negative_checking",
            "/app/smallbank/create_account",
            json!({"account": 3, "checking_cents": -5, "savings_cents": 0}),
        ),
        (
            "create_account_that_exists",
            "/app/smallbank/create_account",
            json!({"account": 1, "checking_cents": 1, "savings_cents": 1}),
        ),
        (
            "deposit_checking_negative",
            "/app/smallbank/deposit_checking",
            json!({"account": 1, "amount_cents": -5}),
        ),
        (
            "write_check_negative",
            "/app/smallbank/write_check",
            json!({"account": 1, "amount_cents": -5}),
        ),
        (
            "send_payment_negative",
            "/app/smallbank/send_payment",
            json!({"from": 1, "to": 2, "amount_cents": -5}),
        ),
        (
            "send_payment_insufficient_funds",
            "/app/smallbank/send_payment",
            json!({"from": 2, "to": 1, "amount_cents": 1_000_000_000}),
        ),
    ];
    let mut failures = Vec::new();
    for (name, path, body) in aborts {
        let reply = node.post_json(path, &body);
        if !ABORTED.contains(&reply.status) {
            failures.push(format!(
                "{name}: expected {ABORTED:?}, got {}: {}",
                reply.status,
                excerpt(&reply.text())
            ));
        } else if let Err(problem) = reply.error_envelope() {
            failures.push(format!("{name}: not the error envelope: {problem}"));
        }
        if balances() != before {
            failures.push(format!(
                "{name}: changed balances: {before:?} -> {:?}",
                balances()
            ));
        }
    }
    assert_eq!(
        kv(node, "smallbank.checking", "3"),
        None,
        "account 3 exists"
    );
    assert!(
        failures.is_empty(),
        "aborted commands:\n{}",
        failures.join("\n")
    );
}

#[test]
fn bad_requests_get_their_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(Path::new(BIN), dir.path());

    // Some state for the cases to leave alone.
    node.put("m", "k", "v");
    for account in [1, 2] {
        node.post_json(
            "/app/smallbank/create_account",
            &json!({"account": account, "checking_cents": 1000, "savings_cents": 1000}),
        )
        .expect_status(200);
    }
    check_aborted_commands(&node);

    let commit = node.commit().expect("the setup committed");
    let key = node.public_key();
    let tree_size = stele_history::Checkpoint::open_with_key(&node.checkpoint(), &key)
        .unwrap()
        .tree_size;
    let m_k = kv(&node, "m", "k");
    let cases = table(commit, tree_size);
    assert!(cases.len() >= CASES_MIN, "only {} cases", cases.len());
    let names: HashSet<&str> = cases.iter().map(|case| case.name).collect();
    assert_eq!(names.len(), cases.len(), "two cases share a name");

    let mut failures = Vec::new();
    for case in &cases {
        let what = format!("{} ({} {})", case.name, case.method, excerpt(&case.path));
        match case.send(node.client()) {
            Ok(reply) => {
                if let Err(problem) = case.check(&reply) {
                    failures.push(format!("{what}: {problem}"));
                }
            }
            Err(problem) => failures.push(format!("{what}: {problem}")),
        }
        let now = node.commit();
        if now != Some(commit) {
            failures.push(format!(
                "{what}: /node/commit moved from {commit} to {now:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were not refused as documented:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // State untouched.
    assert_eq!(node.commit(), Some(commit), "/node/commit after the table");
    assert_eq!(kv(&node, "m", "k"), m_k, "m/k after the table");
    for key in ["k", "k0", "k64", "huge"] {
        assert_eq!(kv(&node, BAD_MAP, key), None, "{BAD_MAP}/{key} was written");
    }
    // Still serving writes after all that.
    let next = node.put("m", "after", "ok");
    assert!(next.seqno > commit.seqno, "{next} after {commit}");
}
