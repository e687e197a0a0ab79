//! Bad requests: each gets its documented status and error code in the JSON
//! envelope, and none reaches the node (no submission, no state change).
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::{Body, Bytes};
use axum::http::Method;
use serde_json::json;
use stele_frontends::{KEY_BYTES_MAX, MAP_NAME_BYTES_MAX, OPS_PER_TX_MAX};
use support::{app, call, Auth, FakeNode};

const JSON: Option<&str> = Some("application/json");

/// One bad request and what it must get.
struct Case {
    name: &'static str,
    method: Method,
    uri: String,
    auth: Auth,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
    /// A piece of the message (e.g. the field or parameter named).
    message_has: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    uri: &str,
    body: &str,
    status: u16,
    code: &'static str,
    message_has: &'static str,
) -> Case {
    Case {
        name,
        content_type: if method == Method::POST { JSON } else { None },
        method,
        uri: uri.to_owned(),
        auth: Auth::Valid,
        body: body.to_owned(),
        status,
        code,
        message_has,
    }
}

fn post(
    name: &'static str,
    uri: &str,
    body: &str,
    status: u16,
    code: &'static str,
    has: &'static str,
) -> Case {
    case(name, Method::POST, uri, body, status, code, has)
}

fn get(name: &'static str, uri: &str, status: u16, code: &'static str, has: &'static str) -> Case {
    case(name, Method::GET, uri, "", status, code, has)
}

fn put_ops(count: usize) -> String {
    let ops: Vec<_> = (0..count)
        .map(|i| json!({"op": "put", "map": "m", "key": format!("k{i}"), "value": "v"}))
        .collect();
    json!({ "ops": ops }).to_string()
}

fn cases() -> Vec<Case> {
    let long_key = "k".repeat(KEY_BYTES_MAX + 1);
    let long_map = "m".repeat(MAP_NAME_BYTES_MAX + 1);
    let oversized = format!(
        r#"{{"ops":[{{"op":"put","map":"m","key":"k","value":"{}"}}]}}"#,
        "v".repeat(stele_api::config::BODY_BYTES_MAX_DEFAULT)
    );
    let mut cases = vec![
        // Bodies of POST /app/tx.
        post(
            "truncated JSON",
            "/app/tx",
            r#"{"ops":["#,
            400,
            "MalformedJson",
            "EOF",
        ),
        post(
            "not JSON",
            "/app/tx",
            "ops=1",
            400,
            "MalformedJson",
            "expected",
        ),
        post(
            "trailing data",
            "/app/tx",
            r#"{"ops":[]} x"#,
            400,
            "MalformedJson",
            "trailing",
        ),
        post("empty body", "/app/tx", "", 400, "MalformedJson", "EOF"),
        post(
            "unknown top-level field",
            "/app/tx",
            r#"{"ops":[],"extra":1}"#,
            400,
            "InvalidBody",
            "extra",
        ),
        post(
            "unknown field in an op",
            "/app/tx",
            r#"{"ops":[{"op":"get","map":"m","key":"k","bogus":1}]}"#,
            400,
            "InvalidBody",
            "bogus",
        ),
        post(
            "ops of the wrong type",
            "/app/tx",
            r#"{"ops":"x"}"#,
            400,
            "InvalidBody",
            "invalid type",
        ),
        post(
            "value of the wrong type",
            "/app/tx",
            r#"{"ops":[{"op":"put","map":"m","key":"k","value":5}]}"#,
            400,
            "InvalidBody",
            "ops[0]",
        ),
        post("missing ops", "/app/tx", "{}", 400, "InvalidBody", "`ops`"),
        post(
            "put without value",
            "/app/tx",
            r#"{"ops":[{"op":"put","map":"m","key":"k"}]}"#,
            400,
            "InvalidBody",
            "`value`",
        ),
        post(
            "unknown op kind",
            "/app/tx",
            r#"{"ops":[{"op":"frobnicate","map":"m","key":"k"}]}"#,
            400,
            "InvalidBody",
            "frobnicate",
        ),
        post(
            "body is an array",
            "/app/tx",
            "[1,2]",
            400,
            "InvalidBody",
            "invalid type",
        ),
        post(
            "too many ops",
            "/app/tx",
            &put_ops(OPS_PER_TX_MAX + 1),
            400,
            "TooManyOps",
            "65",
        ),
        post(
            "oversized key",
            "/app/tx",
            &json!({"ops":[{"op":"get","map":"m","key": long_key}]}).to_string(),
            400,
            "FieldTooLong",
            "ops[0].key",
        ),
        post(
            "oversized map name",
            "/app/tx",
            &json!({"ops":[{"op":"delete","map": long_map,"key":"k"}]}).to_string(),
            400,
            "FieldTooLong",
            "ops[0].map",
        ),
        post(
            "oversized claims",
            "/app/tx",
            &json!({"ops":[], "claims": "c".repeat(stele_frontends::CLAIMS_BYTES_MAX + 1)})
                .to_string(),
            400,
            "FieldTooLong",
            "claims",
        ),
        post(
            "oversized body",
            "/app/tx",
            &oversized,
            413,
            "PayloadTooLarge",
            "bytes",
        ),
        post(
            "wait is not a boolean",
            "/app/tx?wait=maybe",
            r#"{"ops":[]}"#,
            400,
            "InvalidQuery",
            "`wait`",
        ),
        post(
            "unknown query parameter",
            "/app/tx?fast=1",
            r#"{"ops":[]}"#,
            400,
            "InvalidQuery",
            "`fast`",
        ),
        post(
            "repeated query parameter",
            "/app/tx?wait=true&wait=false",
            r#"{"ops":[]}"#,
            400,
            "InvalidQuery",
            "repeated",
        ),
        // Content types.
        Case {
            content_type: Some("text/plain"),
            ..post(
                "text/plain body",
                "/app/tx",
                r#"{"ops":[]}"#,
                415,
                "UnsupportedMediaType",
                "application/json",
            )
        },
        Case {
            content_type: None,
            ..post(
                "no content type",
                "/app/tx",
                r#"{"ops":[]}"#,
                415,
                "UnsupportedMediaType",
                "application/json",
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..post(
                "form body on /app/log",
                "/app/log",
                r#"{"id":1,"msg":"m"}"#,
                415,
                "UnsupportedMediaType",
                "Content-Type",
            )
        },
        // Auth.
        Case {
            auth: Auth::Missing,
            ..post(
                "no token",
                "/app/tx",
                r#"{"ops":[]}"#,
                401,
                "Unauthorized",
                "Bearer",
            )
        },
        Case {
            auth: Auth::Header("Bearer not-the-token"),
            ..post(
                "wrong token",
                "/app/tx",
                r#"{"ops":[]}"#,
                401,
                "Unauthorized",
                "not valid",
            )
        },
        Case {
            auth: Auth::Header("Basic dXNlcjpwYXNz"),
            ..post(
                "basic auth",
                "/app/log",
                r#"{"id":1,"msg":"m"}"#,
                401,
                "Unauthorized",
                "Bearer",
            )
        },
        Case {
            auth: Auth::Header("Bearer "),
            ..get(
                "empty bearer token",
                "/app/kv/m/k",
                401,
                "Unauthorized",
                "Bearer",
            )
        },
        Case {
            auth: Auth::Missing,
            ..get(
                "read without token",
                "/app/kv/m/k",
                401,
                "Unauthorized",
                "Bearer",
            )
        },
        Case {
            auth: Auth::Missing,
            ..get(
                "unknown /app route without token",
                "/app/nothing",
                401,
                "Unauthorized",
                "Bearer",
            )
        },
        // Transaction ids.
        get(
            "transaction id without a dot",
            "/node/tx?transaction_id=1",
            400,
            "InvalidTransactionId",
            "`1`",
        ),
        get(
            "transaction id not numbers",
            "/node/tx?transaction_id=a.b",
            400,
            "InvalidTransactionId",
            "a.b",
        ),
        get(
            "transaction id with a leading zero",
            "/node/tx?transaction_id=01.2",
            400,
            "InvalidTransactionId",
            "01.2",
        ),
        get(
            "transaction id negative",
            "/node/tx?transaction_id=1.-2",
            400,
            "InvalidTransactionId",
            "1.-2",
        ),
        get(
            "transaction id with a sign",
            "/node/receipt?transaction_id=%2B1.2",
            400,
            "InvalidTransactionId",
            "+1.2",
        ),
        get(
            "transaction id with three parts",
            "/node/receipt?transaction_id=1.2.3",
            400,
            "InvalidTransactionId",
            "1.2.3",
        ),
        get(
            "transaction id missing",
            "/node/tx",
            400,
            "InvalidQuery",
            "`transaction_id`",
        ),
        get(
            "receipt with an unknown parameter",
            "/node/receipt?id=1.2",
            400,
            "InvalidQuery",
            "`id`",
        ),
        get(
            "transaction id repeated",
            "/node/tx?transaction_id=2.1&transaction_id=2.2",
            400,
            "InvalidQuery",
            "repeated",
        ),
        // Receipts and proofs the node cannot give.
        get(
            "receipt of an unknown transaction",
            "/node/receipt?transaction_id=2.9",
            404,
            "NotFound",
            "2.9",
        ),
        get(
            "no checkpoint yet",
            "/node/checkpoint",
            404,
            "NotFound",
            "checkpoint",
        ),
        get(
            "consistency range reversed",
            "/node/consistency?from=5&to=2",
            400,
            "InvalidRange",
            "`from`",
        ),
        get(
            "consistency beyond the tree",
            "/node/consistency?from=0&to=9",
            400,
            "InvalidRange",
            "to",
        ),
        get(
            "consistency without to",
            "/node/consistency?from=1",
            400,
            "InvalidQuery",
            "`to`",
        ),
        get(
            "consistency with a negative size",
            "/node/consistency?from=-1&to=2",
            400,
            "InvalidQuery",
            "`from`",
        ),
        get(
            "consistency with a leading zero",
            "/node/consistency?from=01&to=2",
            400,
            "InvalidQuery",
            "`from`",
        ),
        get(
            "consistency with a plus sign",
            "/node/consistency?from=%2B1&to=2",
            400,
            "InvalidQuery",
            "`from`",
        ),
        // Logging.
        get(
            "log read without id",
            "/app/log",
            400,
            "InvalidQuery",
            "`id`",
        ),
        get(
            "log read with a bad id",
            "/app/log?id=abc",
            400,
            "InvalidQuery",
            "`id`",
        ),
        get(
            "log read of a missing id",
            "/app/log?id=7",
            404,
            "NotFound",
            "7",
        ),
        post(
            "log id of the wrong type",
            "/app/log",
            r#"{"id":"x","msg":"m"}"#,
            400,
            "InvalidBody",
            "id",
        ),
        post(
            "log without msg",
            "/app/log",
            r#"{"id":1}"#,
            400,
            "InvalidBody",
            "`msg`",
        ),
        post(
            "log with message instead of msg",
            "/app/log",
            r#"{"id":1,"message":"m"}"#,
            400,
            "InvalidBody",
            "`message`",
        ),
        post(
            "log message too long",
            "/app/log",
            &json!({"id": 1, "msg": "m".repeat(stele_frontends::VALUE_BYTES_MAX + 1)}).to_string(),
            400,
            "FieldTooLong",
            "`msg`",
        ),
        // SmallBank.
        post(
            "unknown smallbank op",
            "/app/smallbank/frobnicate",
            r#"{"account":1}"#,
            404,
            "UnknownOperation",
            "frobnicate",
        ),
        post(
            "smallbank op in camel case",
            "/app/smallbank/DepositChecking",
            "{}",
            404,
            "UnknownOperation",
            "DepositChecking",
        ),
        post(
            "smallbank balance by POST",
            "/app/smallbank/balance",
            r#"{"account":1}"#,
            405,
            "MethodNotAllowed",
            "POST",
        ),
        post(
            "smallbank missing field",
            "/app/smallbank/deposit_checking",
            r#"{"account":1}"#,
            400,
            "InvalidBody",
            "`amount_cents`",
        ),
        post(
            "smallbank unknown field",
            "/app/smallbank/deposit_checking",
            r#"{"account":1,"amount_cents":5,"memo":"x"}"#,
            400,
            "InvalidBody",
            "`memo`",
        ),
        post(
            "smallbank op in the body",
            "/app/smallbank/deposit_checking",
            r#"{"op":"balance","account":1}"#,
            400,
            "InvalidBody",
            "`op`",
        ),
        post(
            "smallbank body not an object",
            "/app/smallbank/deposit_checking",
            "[1]",
            400,
            "InvalidBody",
            "invalid type",
        ),
        post(
            "smallbank payment to oneself",
            "/app/smallbank/send_payment",
            r#"{"from":1,"to":1,"amount_cents":5}"#,
            400,
            "InvalidArgument",
            "`to`",
        ),
        post(
            "smallbank too many accounts",
            "/app/smallbank/create_accounts",
            r#"{"first_account":0,"count":100000,"checking_cents":1,"savings_cents":1}"#,
            400,
            "InvalidArgument",
            "count",
        ),
        get(
            "smallbank balance with a bad account",
            "/app/smallbank/balance?account=x",
            400,
            "InvalidQuery",
            "`account`",
        ),
        get(
            "smallbank balance of a missing account",
            "/app/smallbank/balance?account=3",
            404,
            "UnknownAccount",
            "3",
        ),
        // KV reads.
        get(
            "kv read of a missing key",
            "/app/kv/m/missing",
            404,
            "NotFound",
            "m/missing",
        ),
        get(
            "kv read of an oversized key",
            &format!("/app/kv/m/{long_key}"),
            400,
            "FieldTooLong",
            "`key`",
        ),
        get(
            "kv read of a path that is not UTF-8",
            "/app/kv/m/%FF",
            400,
            "InvalidPath",
            "UTF-8",
        ),
        // Routing.
        get(
            "unknown route",
            "/nothing/here",
            404,
            "NotFound",
            "/nothing/here",
        ),
        get(
            "unknown /app route",
            "/app/nothing",
            404,
            "NotFound",
            "/app/nothing",
        ),
        get(
            "GET on a POST route",
            "/app/tx",
            405,
            "MethodNotAllowed",
            "GET",
        ),
        post(
            "POST on a GET route",
            "/node/state",
            "{}",
            405,
            "MethodNotAllowed",
            "POST",
        ),
        Case {
            method: Method::DELETE,
            ..get(
                "DELETE on a kv read",
                "/app/kv/m/k",
                405,
                "MethodNotAllowed",
                "DELETE",
            )
        },
    ];
    for case in &mut cases {
        case.uri = case.uri.replace(' ', "%20");
    }
    cases
}

#[tokio::test]
async fn every_bad_request_gets_its_documented_error_and_changes_nothing() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for case in cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
        let node = FakeNode::new();
        let router = app(&node);
        let reply = call(
            &router,
            case.method.clone(),
            &case.uri,
            case.auth,
            case.content_type,
            Body::from(case.body.clone()),
        )
        .await;
        assert_eq!(
            reply.status.as_u16(),
            case.status,
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.content_type(), "application/json", "{}", case.name);
        let body = reply.json();
        assert_eq!(body["error"]["code"], case.code, "{}: {body}", case.name);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case.message_has),
            "{}: message {message:?} lacks {:?}",
            case.name,
            case.message_has
        );
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{}", case.name);
        if case.status == 401 {
            assert_eq!(reply.headers["www-authenticate"], "Bearer", "{}", case.name);
        }
        if case.status == 405 {
            assert!(reply.headers.contains_key("allow"), "{}", case.name);
        }
        assert_eq!(node.submits(), 0, "{}: the node was called", case.name);
        assert_eq!(node.seqno(), 0, "{}: the state changed", case.name);
    }
}

#[tokio::test]
async fn declared_oversized_body_is_refused_before_reading() {
    // The Content-Length says too much, and the body sends one chunk and then
    // stalls forever: a server that read it before answering would hang (the
    // timeout only turns that hang into a failure).
    let node = FakeNode::new();
    let router = app(&node);
    let chunk = Bytes::from_static(b"{\"ops\":[");
    let stalled = futures_util::stream::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(chunk)]),
        futures_util::stream::pending(),
    );
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/app/tx")
        .header("authorization", format!("Bearer {}", support::TOKEN))
        .header("content-type", "application/json")
        .header(
            "content-length",
            (stele_api::config::BODY_BYTES_MAX_DEFAULT + 1).to_string(),
        )
        .body(Body::from_stream(stalled))
        .unwrap();
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tower::ServiceExt::oneshot(router, request),
    )
    .await
    .expect("the server waited for the body")
    .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(node.submits(), 0);
}

#[tokio::test]
async fn streamed_oversized_body_is_cut_at_the_limit() {
    // No Content-Length (chunked): the limit applies while reading.
    let node = FakeNode::new();
    let router = stele_api::router(
        node.clone(),
        stele_api::ApiConfig {
            body_bytes_max: 1000,
            ..support::config()
        },
        support::node_registry(),
    );
    let reply = call(
        &router,
        Method::POST,
        "/app/tx",
        Auth::Valid,
        JSON,
        futures_stream(100),
    )
    .await;
    let error = reply.error(413, "PayloadTooLarge");
    assert!(error["message"].as_str().unwrap().contains("1000"));
    assert_eq!(node.submits(), 0);
}

#[tokio::test]
async fn early_refusals_read_the_body_up_to_the_limit() {
    // 401, 404, 415: the body is read first (HTTP/2 clients then see the
    // answer); one over the limit gets 413 and the connection is closed.
    let node = FakeNode::new();
    let router = stele_api::router(
        node.clone(),
        stele_api::ApiConfig {
            body_bytes_max: 1000,
            ..support::config()
        },
        support::node_registry(),
    );
    for (uri, auth, content_type, code) in [
        ("/app/tx", Auth::Missing, JSON, "Unauthorized"),
        ("/nope", Auth::Valid, JSON, "NotFound"),
        (
            "/app/tx",
            Auth::Valid,
            Some("text/plain"),
            "UnsupportedMediaType",
        ),
    ] {
        let reply = call(
            &router,
            Method::POST,
            uri,
            auth,
            content_type,
            futures_stream(10),
        )
        .await;
        assert_eq!(reply.json()["error"]["code"], code, "{uri}");
        let reply = call(
            &router,
            Method::POST,
            uri,
            auth,
            content_type,
            futures_stream(100),
        )
        .await;
        let error = reply.error(413, "PayloadTooLarge");
        assert!(error["message"].as_str().unwrap().contains("1000"));
    }
    assert_eq!(node.submits(), 0);
}

/// A body of `chunks` chunks of 64 bytes, without a length.
fn futures_stream(chunks: u64) -> Body {
    let chunk = Bytes::from_static(&[b' '; 64]);
    Body::from_stream(futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ))
}
