//! Happy paths of every route, aborts, limits and the OpenAPI document, through
//! the router in-process (`tower::ServiceExt::oneshot`) over a fake node.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use stele_api::{ApiConfig, ValidatorsInfo, ROUTES};
use stele_frontends::{Command, LoggingCommand, SmallBankCommand};
use stele_history::{Digest, Receipt, TransactionId};
use support::{app, call, get, post, Auth, FakeNode};

#[tokio::test]
async fn transactions_put_then_check_and_get() {
    let node = FakeNode::new();
    let router = app(&node);
    let body = post(
        &router,
        "/app/tx",
        r#"{"ops":[{"op":"put","map":"m","key":"k","value":"v1"},{"op":"get","map":"m","key":"k"}],"claims":"c"}"#,
    )
    .await
    .ok_json();
    assert_eq!(
        body,
        json!({
            "transaction_id": "2.1",
            "status": "Committed",
            "results": [{"map": "m", "key": "k", "value": "v1"}],
        })
    );
    let body = post(
        &router,
        "/app/tx",
        r#"{"ops":[{"op":"check","map":"m","key":"k","value":"v1"},{"op":"delete","map":"m","key":"k"},{"op":"get","map":"m","key":"k"},{"op":"check","map":"m","key":"gone","value":null}]}"#,
    )
    .await
    .ok_json();
    assert_eq!(body["transaction_id"], "2.2");
    assert_eq!(
        body["results"],
        json!([{"map": "m", "key": "k", "value": null}])
    );
    let submitted = node.submitted();
    assert_eq!(submitted.len(), 2);
    assert!(
        matches!(&submitted[0], (Command::Transaction(t), true) if t.claims.as_deref() == Some("c"))
    );
}

#[tokio::test]
async fn wait_false_answers_pending() {
    let node = FakeNode::new();
    let router = app(&node);
    let body = post(&router, "/app/tx?wait=false", r#"{"ops":[]}"#)
        .await
        .ok_json();
    assert_eq!(body["status"], "Pending");
    assert_eq!(body["results"], json!([]));
    assert!(matches!(node.submitted()[0], (_, false)));
    let body = post(&router, "/app/log?wait=false", r#"{"id":1,"msg":"m"}"#)
        .await
        .ok_json();
    assert_eq!(body["status"], "Pending");
}

#[tokio::test]
async fn failed_check_is_409_with_the_transaction_id() {
    let node = FakeNode::new();
    let router = app(&node);
    post(
        &router,
        "/app/tx",
        r#"{"ops":[{"op":"put","map":"m","key":"k","value":"v"}]}"#,
    )
    .await
    .ok_json();
    let reply = post(
        &router,
        "/app/tx",
        r#"{"ops":[{"op":"put","map":"m","key":"k","value":"w"},{"op":"check","map":"m","key":"k","value":"other"}]}"#,
    )
    .await;
    let error = reply.error(409, "CheckFailed");
    assert_eq!(error["transaction_id"], "2.2");
    assert_eq!(
        error["details"],
        json!({"op_index": 1, "map": "m", "key": "k"})
    );
    // The abort wrote nothing.
    let body = get(&router, "/app/kv/m/k").await.ok_json();
    assert_eq!(body["value"], "v");
    assert_eq!(body["transaction_id"], "2.1");
}

#[tokio::test]
async fn kv_get_returns_the_value_and_its_writer() {
    let node = FakeNode::new();
    let router = app(&node);
    post(
        &router,
        "/app/tx",
        r#"{"ops":[{"op":"put","map":"my map","key":"a/b","value":"x"}]}"#,
    )
    .await
    .ok_json();
    let body = get(&router, "/app/kv/my%20map/a%2Fb").await.ok_json();
    assert_eq!(
        body,
        json!({"map": "my map", "key": "a/b", "value": "x", "transaction_id": "2.1"})
    );
}

#[tokio::test]
async fn kv_get_shows_bytes_that_are_not_utf8_as_base64() {
    let node = FakeNode::new();
    let router = app(&node);
    node.put_bytes("redis", "blob", &[0xff, 0x00, 0x01]);
    let body = get(&router, "/app/kv/redis/blob").await.ok_json();
    assert_eq!(
        body,
        json!({"map": "redis", "key": "blob", "value_base64": "/wAB", "transaction_id": "2.1"})
    );
}

#[tokio::test]
async fn reads_take_the_read_barrier_only_when_asked_linearizable() {
    let node = FakeNode::new();
    let router = app(&node);
    post(&router, "/app/log", r#"{"id":7,"msg":"m"}"#)
        .await
        .ok_json();
    get(&router, "/app/log?id=7").await.ok_json();
    get(&router, "/app/log?id=7&consistency=committed")
        .await
        .ok_json();
    assert_eq!(node.read_barriers(), 0);
    let body = get(&router, "/app/log?id=7&consistency=linearizable")
        .await
        .ok_json();
    assert_eq!(body["msg"], "m");
    get(
        &router,
        "/app/kv/logging.records/7?consistency=linearizable",
    )
    .await
    .ok_json();
    assert_eq!(node.read_barriers(), 2);
    let error = get(&router, "/app/kv/logging.records/7?consistency=strong")
        .await
        .error(400, "InvalidQuery");
    assert!(
        error["message"].as_str().unwrap().contains("linearizable"),
        "{error}"
    );
    get(&router, "/app/kv/logging.records/7?other=1")
        .await
        .error(400, "InvalidQuery");
    assert_eq!(node.read_barriers(), 2);
}

#[tokio::test]
async fn logging_records_and_reads() {
    let node = FakeNode::new();
    let router = app(&node);
    let body = post(&router, "/app/log", r#"{"id":42,"msg":"hello"}"#)
        .await
        .ok_json();
    assert_eq!(
        body,
        json!({"transaction_id": "2.1", "status": "Committed", "id": 42})
    );
    assert_eq!(
        node.submitted()[0].0,
        Command::Logging(LoggingCommand::Record {
            id: 42,
            message: "hello".to_owned()
        })
    );
    let body = get(&router, "/app/log?id=42").await.ok_json();
    assert_eq!(
        body,
        json!({"id": 42, "msg": "hello", "transaction_id": "2.1"})
    );
}

#[tokio::test]
async fn smallbank_every_operation() {
    let node = FakeNode::new();
    let router = app(&node);
    let steps: &[(&str, &str, Value)] = &[
        (
            "create_account",
            r#"{"account":1,"checking_cents":1000,"savings_cents":500}"#,
            json!({"created": 1}),
        ),
        (
            "create_accounts",
            r#"{"first_account":10,"count":2,"checking_cents":100,"savings_cents":100}"#,
            json!({"created": 2}),
        ),
        (
            "deposit_checking",
            r#"{"account":1,"amount_cents":250}"#,
            json!({"account": 1, "checking_cents": 1250}),
        ),
        (
            "transact_savings",
            r#"{"account":1,"amount_cents":-100}"#,
            json!({"account": 1, "savings_cents": 400}),
        ),
        (
            "send_payment",
            r#"{"from":1,"to":10,"amount_cents":50}"#,
            Value::Null,
        ),
        (
            "write_check",
            r#"{"account":11,"amount_cents":10}"#,
            Value::Null,
        ),
        ("amalgamate", r#"{"from":11,"to":1}"#, Value::Null),
    ];
    for (index, (op, body, expected)) in steps.iter().enumerate() {
        let reply = post(&router, &format!("/app/smallbank/{op}"), body).await;
        let reply = reply.ok_json();
        assert_eq!(reply["transaction_id"], format!("2.{}", index + 1), "{op}");
        assert_eq!(reply["status"], "Committed", "{op}");
        if let Value::Object(fields) = expected {
            for (name, value) in fields {
                assert_eq!(&reply[name], value, "{op}: {reply}");
            }
        }
    }
    assert!(matches!(
        node.submitted()[6].0,
        Command::SmallBank(SmallBankCommand::Amalgamate { from: 11, to: 1 })
    ));
    // Account 11 started with 100 + 100, wrote a check of 10, then was
    // amalgamated into 1: 1 has 1250 - 50 + 190 checking, 400 savings.
    let body = get(&router, "/app/smallbank/balance?account=1")
        .await
        .ok_json();
    assert_eq!(
        body,
        json!({"account": 1, "checking_cents": 1390, "savings_cents": 400, "total_cents": 1790})
    );
    let body = get(&router, "/app/smallbank/balance?account=11")
        .await
        .ok_json();
    assert_eq!(body["total_cents"], 0);
}

#[tokio::test]
async fn smallbank_aborts_carry_their_transaction_ids() {
    let node = FakeNode::new();
    let router = app(&node);
    let create = r#"{"account":1,"checking_cents":10,"savings_cents":0}"#;
    post(&router, "/app/smallbank/create_account", create)
        .await
        .ok_json();
    let cases = [
        ("create_account", create, 409, "AccountExists"),
        (
            "deposit_checking",
            r#"{"account":9,"amount_cents":1}"#,
            404,
            "UnknownAccount",
        ),
        (
            "deposit_checking",
            r#"{"account":1,"amount_cents":-1}"#,
            400,
            "NegativeAmount",
        ),
        (
            "transact_savings",
            r#"{"account":1,"amount_cents":-1}"#,
            409,
            "InsufficientFunds",
        ),
        (
            "send_payment",
            r#"{"from":1,"to":9,"amount_cents":1}"#,
            404,
            "UnknownAccount",
        ),
    ];
    for (index, (op, body, status, code)) in cases.into_iter().enumerate() {
        let reply = post(&router, &format!("/app/smallbank/{op}"), body).await;
        let error = reply.error(status, code);
        assert_eq!(error["transaction_id"], format!("2.{}", index + 2), "{op}");
    }
    assert_eq!(node.submits(), 6);
    let body = get(&router, "/app/smallbank/balance?account=1")
        .await
        .ok_json();
    assert_eq!(body["total_cents"], 10);
}

#[tokio::test]
async fn node_routes() {
    let node = FakeNode::new();
    let router = app(&node);
    assert_eq!(
        get(&router, "/node/commit").await.ok_json(),
        json!({"transaction_id": null})
    );
    for _ in 0..3 {
        post(&router, "/app/tx", r#"{"ops":[]}"#).await.ok_json();
    }
    assert_eq!(
        get(&router, "/node/commit").await.ok_json(),
        json!({"transaction_id": "2.3"})
    );
    for (id, status) in [("2.2", "Committed"), ("2.4", "Unknown"), ("1.2", "Invalid")] {
        let body = get(&router, &format!("/node/tx?transaction_id={id}"))
            .await
            .ok_json();
        assert_eq!(body, json!({"transaction_id": id, "status": status}));
    }
    let receipt: Receipt = serde_json::from_value(
        get(&router, "/node/receipt?transaction_id=2.2")
            .await
            .ok_json(),
    )
    .unwrap();
    let id = TransactionId { view: 2, seqno: 2 };
    assert_eq!(receipt, support::canned_receipt(id, 3));
    get(&router, "/node/receipt?transaction_id=1.2")
        .await
        .error(400, "InvalidTransactionId");

    let reply = get(&router, "/node/checkpoint").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "text/plain; charset=utf-8");
    assert_eq!(reply.text(), support::canned_checkpoint(3));

    let body = get(&router, "/node/consistency?from=1&to=3")
        .await
        .ok_json();
    assert_eq!(
        body,
        json!({"from": 1, "to": 3, "proof": ["01".repeat(32), "02".repeat(32)]})
    );
    let body = get(&router, "/node/consistency?from=3&to=3")
        .await
        .ok_json();
    assert_eq!(body["proof"], json!([]));

    let body = get(&router, "/node/public-key").await.ok_json();
    assert_eq!(body["origin"], "stele.test/fake");
    assert_eq!(body["public_key"], "ab".repeat(32));
    let body = get(&router, "/node/state").await.ok_json();
    assert_eq!(
        body,
        json!({
            "node_id": "n0", "role": "Primary", "view": 2, "last_committed": "2.3",
            "ledger_seqno": 3, "ledger_bytes": 126, "raft_node_id": 1, "leader": 1,
            "leader_address": null, "divergences": 0, "last_divergence": null,
            "snapshots_installed": 0, "leaves_in_memory_from": 0,
        })
    );
}

#[tokio::test]
async fn public_routes_need_no_token_and_any_configured_token_works() {
    let node = FakeNode::new();
    let router = app(&node);
    for uri in ["/node/state", "/node/commit", "/metrics", "/openapi.json"] {
        let reply = call(
            &router,
            Method::GET,
            uri,
            Auth::Missing,
            None,
            Body::empty(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
    }
    let reply = call(
        &router,
        Method::POST,
        "/app/log",
        Auth::Header("bearer other-token"),
        Some("application/json; charset=utf-8"),
        Body::from(r#"{"id":1,"msg":"m"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // No configured token: /app is closed.
    let closed = stele_api::router(node.clone(), ApiConfig::default(), support::node_registry());
    get(&closed, "/app/log?id=1")
        .await
        .error(401, "Unauthorized");
}

#[tokio::test]
async fn receipts_need_a_user_or_auditor_token_and_auditors_stay_off_app() {
    let node = FakeNode::new();
    let router = app(&node);
    post(&router, "/app/tx", r#"{"ops":[]}"#).await.ok_json();
    let receipt = "/node/receipt?transaction_id=2.1";
    let as_auditor = Auth::Header("Bearer auditor-token");
    let reply = |uri: &'static str, auth: Auth| {
        let router = router.clone();
        async move { call(&router, Method::GET, uri, auth, None, Body::empty()).await }
    };
    reply(receipt, Auth::Missing)
        .await
        .error(401, "Unauthorized");
    reply(receipt, Auth::Header("Bearer nobody"))
        .await
        .error(401, "Unauthorized");
    reply(receipt, Auth::Valid).await.ok_json();
    reply(receipt, as_auditor).await.ok_json();
    // An auditor's token is valid but not for /app: 403, not 401.
    let forbidden = reply("/app/kv/m/k", as_auditor).await;
    forbidden.error(403, "Forbidden");
    // Checkpoints and proofs stay public.
    assert_eq!(
        reply("/node/checkpoint", Auth::Missing).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_serve_the_node_and_the_http_metrics() {
    let node = FakeNode::new();
    let router = app(&node);
    post(&router, "/app/tx", r#"{"ops":[]}"#).await.ok_json();
    get(&router, "/nothing").await.error(404, "NotFound");
    let reply = get(&router, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .content_type()
        .starts_with("application/openmetrics-text"));
    let text = reply.text();
    assert!(text.contains("stele_fake_node_things_total 1"), "{text}");
    assert!(
        text.contains(r#"stele_http_requests_total{route="/app/tx",method="POST",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"stele_http_requests_total{route="unmatched",method="GET",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"stele_http_request_duration_seconds_count{route="/app/tx",method="POST"} 1"#
        ),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

/// The (method, path) operations of the OpenAPI document.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no responses"
            );
            operations.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn openapi_documents_exactly_the_routes() {
    let node = FakeNode::new();
    let router = app(&node);
    let document = get(&router, "/openapi.json").await.ok_json();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["components"]["schemas"]["Error"].is_object());
    let documented = documented_operations(&document);
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations not routed: {unrouted:?}"
    );
    // Every documented operation reaches a handler of the real router (not the
    // unknown-route fallback, not the wrong-method one).
    for (method, path) in &documented {
        let uri = path
            .replace("{map}", "m")
            .replace("{key}", "k")
            .replace("{op}", "deposit_checking");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = call(
            &router,
            method.clone(),
            &uri,
            Auth::Valid,
            None,
            Body::empty(),
        )
        .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        if reply.status == StatusCode::NOT_FOUND {
            let message = reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                !message.starts_with("no route"),
                "{method} {uri}: {message}"
            );
        }
    }
    // Every error response in the document uses the envelope schema.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = response["$ref"].as_str().unwrap_or_default();
                    let schema = response["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .unwrap_or_default();
                    assert!(
                        reference.starts_with("#/components/responses/")
                            || schema == "#/components/schemas/Error",
                        "{method} {path} {status} does not use the error envelope"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn saturation_sheds_load_with_503() {
    let (node, mut entered) = FakeNode::gated();
    let router = stele_api::router(
        Arc::clone(&node),
        ApiConfig {
            requests_in_flight_max: 1,
            ..support::config()
        },
        support::node_registry(),
    );
    let first = tokio::spawn({
        let router = router.clone();
        async move { post(&router, "/app/tx", r#"{"ops":[]}"#).await }
    });
    entered.recv().await.unwrap();
    let reply = get(&router, "/node/state").await;
    reply.error(503, "Busy");
    assert_eq!(reply.headers["retry-after"], "1");
    node.release();
    first.await.unwrap().ok_json();
    get(&router, "/node/state").await.ok_json();
}

#[tokio::test]
async fn slow_requests_time_out_with_503() {
    let (node, _entered) = FakeNode::gated();
    let router = stele_api::router(
        Arc::clone(&node),
        ApiConfig {
            request_timeout_ms: 20,
            ..support::config()
        },
        support::node_registry(),
    );
    let error = post(&router, "/app/tx", r#"{"ops":[]}"#)
        .await
        .error(503, "Timeout");
    assert!(error["message"].as_str().unwrap().contains("/node/tx"));
}

/// Validators 1 ..= `powers.len()` of `origin` with `powers`.
fn validator_set(origin: &str, powers: &[u64]) -> stele_history::ValidatorQuorum {
    let validators = (1..).zip(powers).map(|(id, power)| {
        let key = stele_history::SigningKey::from_bytes(&[u8::try_from(id).unwrap(); 32]);
        (id, key.verifying_key(), *power)
    });
    stele_history::ValidatorQuorum::new(origin, validators).unwrap()
}

#[tokio::test]
async fn validators_are_public_in_bft_mode_and_404_with_a_service_key() {
    const ORIGIN: &str = "stele.test/bft";
    let set = validator_set(ORIGIN, &[1, 2, 1, 1]);
    let node = FakeNode::bft(ValidatorsInfo::from_quorum(ORIGIN, &set));
    let router = app(&node);
    // Public, like /node/public-key: no token needed.
    let reply = call(
        &router,
        Method::GET,
        "/node/validators",
        Auth::Missing,
        None,
        Body::empty(),
    )
    .await;
    let body = reply.ok_json();
    let member = &set.members()[1];
    assert_eq!(
        body["validators"][1],
        json!({
            "id": 2,
            "public_key": Digest(member.verifier.key().to_bytes()).to_hex(),
            "power": 2,
            "verifier_key": member.verifier.to_verifier_key(),
        })
    );
    assert!(body["validators"][1]["verifier_key"]
        .as_str()
        .unwrap()
        .starts_with("stele.test/bft/v2+"));
    assert_eq!(body["validators"].as_array().unwrap().len(), 4);
    assert_eq!(body["total_power"], 5);
    assert_eq!(body["origin"], ORIGIN);
    // What it serves is what `--validators` reads back: the same set.
    let served: ValidatorsInfo = serde_json::from_value(body).unwrap();
    assert_eq!(served.to_quorum().unwrap(), set);

    // A node with a service key (Raft mode) has no validators.
    let router = app(&FakeNode::new());
    let reply = call(
        &router,
        Method::GET,
        "/node/validators",
        Auth::Missing,
        None,
        Body::empty(),
    )
    .await;
    let error = reply.error(404, "NotFound");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("GET /node/public-key"), "{message}");
}

#[test]
fn a_validators_file_that_does_not_hold_together_is_refused() {
    const ORIGIN: &str = "stele.test/bft";
    let good = ValidatorsInfo::from_quorum(ORIGIN, &validator_set(ORIGIN, &[1, 1, 1, 1]));
    assert!(good.to_quorum().is_ok());
    let refused = |edit: &dyn Fn(&mut ValidatorsInfo), expected: &str| {
        let mut info = good.clone();
        edit(&mut info);
        let error = info.to_quorum().unwrap_err().to_string();
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
    };
    refused(
        &|info| info.total_power = 3,
        "total_power is 3 but the powers add up to 4",
    );
    refused(
        &|info| info.validators[0].public_key = "AB".repeat(32),
        "validator 1's public_key",
    );
    // Validator 2's key under validator 1's name.
    refused(
        &|info| info.validators[0].public_key = info.validators[1].public_key.clone(),
        "validator 1's verifier_key must name stele.test/bft/v1",
    );
    // Keys named for another origin.
    refused(
        &|info| info.origin = "elsewhere.example/log".to_owned(),
        "must name elsewhere.example/log/v1",
    );
    refused(
        &|info| info.validators[2].verifier_key.push('x'),
        "validator 3's verifier_key",
    );
    refused(
        &|info| {
            info.validators[3] = info.validators[0].clone();
            info.total_power = 4;
        },
        "distinct ids",
    );
    refused(
        &|info| {
            info.validators[3].power = 0;
            info.total_power = 3;
        },
        "positive powers",
    );
    refused(
        &|info| {
            info.validators.clear();
            info.total_power = 0;
        },
        "no validators",
    );
}
