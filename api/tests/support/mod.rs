//! Test support: [`FakeNode`] (the in-memory node, `stele_api::fake`), the
//! test configuration, and helpers to call a router in-process.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use stele_api::prometheus_client::metrics::counter::Counter;
use stele_api::prometheus_client::registry::Registry;
use stele_api::{token_hash, ApiConfig};

// Each test file uses some of these.
#[allow(unused_imports)]
pub use stele_api::fake::{canned_checkpoint, canned_receipt, FakeNode, Gate, VIEW};

/// The bearer token the test config accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// A second accepted token.
pub const OTHER_TOKEN: &str = "other-token";

/// The auditor's token of [`config`]: receipts, not `/app`.
pub const AUDITOR_TOKEN: &str = "auditor-token";

/// The test configuration: [`TOKEN`] and [`OTHER_TOKEN`] accepted.
pub fn config() -> ApiConfig {
    ApiConfig {
        user_token_hashes: vec![token_hash(TOKEN), token_hash(OTHER_TOKEN)],
        auditor_token_hashes: vec![token_hash(AUDITOR_TOKEN)],
        ..ApiConfig::default()
    }
}

/// A registry holding one metric of the "node".
pub fn node_registry() -> Registry {
    let mut registry = Registry::default();
    let counter = Counter::<u64>::default();
    counter.inc();
    registry.register("stele_fake_node_things", "Things the fake did", counter);
    registry
}

/// The router over `node` with [`config`].
pub fn app(node: &Arc<FakeNode>) -> Router {
    stele_api::router(Arc::clone(node), config(), node_registry())
}

/// What a call returned.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// The Content-Type header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map_or("", |value| value.to_str().unwrap())
    }

    /// Asserts a 200 JSON reply and returns the body.
    pub fn ok_json(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/json");
        self.json()
    }

    /// Asserts an error envelope with this status and code, returns the
    /// `error` object.
    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/json");
        let body = self.json();
        let error = body["error"].clone();
        assert_eq!(error["code"], code, "body: {body}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        error
    }
}

/// Which `Authorization` header to send.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `Bearer TOKEN`.
    Valid,
    /// None.
    Missing,
    /// This exact header value.
    Header(&'static str),
}

/// Sends one request through the router.
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    auth: Auth,
    content_type: Option<&str>,
    body: Body,
) -> Reply {
    use tower::ServiceExt as _;
    let mut request = Request::builder().method(method).uri(uri);
    match auth {
        Auth::Valid => request = request.header("authorization", format!("Bearer {TOKEN}")),
        Auth::Missing => {}
        Auth::Header(value) => request = request.header("authorization", value),
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// GET with a valid token.
pub async fn get(router: &Router, uri: &str) -> Reply {
    call(router, Method::GET, uri, Auth::Valid, None, Body::empty()).await
}

/// POST of JSON text with a valid token.
pub async fn post(router: &Router, uri: &str, json: &str) -> Reply {
    call(
        router,
        Method::POST,
        uri,
        Auth::Valid,
        Some("application/json"),
        Body::from(json.to_owned()),
    )
    .await
}
