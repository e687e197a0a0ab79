//! Test support: [`FakeNode`], an in-memory [`Node`] that really executes
//! commands (with `stele-frontends` over a `stele-kv` store) and counts
//! submissions, with canned receipts, checkpoints and proofs; and helpers to
//! call a router in-process.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use stele_api::prometheus_client::metrics::counter::Counter;
use stele_api::prometheus_client::registry::Registry;
use stele_api::{
    token_hash, ApiConfig, KvValue, Node, NodeError, NodeState, PublicKeyInfo, Submitted, TxStatus,
};
use stele_frontends::{Command, Outcome};
use stele_history::leaf::CommitEvidence;
use stele_history::{Digest, Receipt, TransactionId};
use stele_kv::Store;
use tokio::sync::{mpsc, Notify};

/// The view every transaction of the fake gets.
pub const VIEW: u64 = 2;

/// The bearer token the test config accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// A second accepted token.
pub const OTHER_TOKEN: &str = "other-token";

/// The auditor's token of [`config`]: receipts, not `/app`.
pub const AUDITOR_TOKEN: &str = "auditor-token";

/// Holds submissions until released (to fill the in-flight limit).
pub struct Gate {
    entered: mpsc::UnboundedSender<()>,
    release: Notify,
}

struct Inner {
    store: Store,
    seqno: u64,
    submits: Vec<(Command, bool)>,
    read_barriers: usize,
}

/// An in-memory node.
pub struct FakeNode {
    inner: Mutex<Inner>,
    gate: Option<Gate>,
}

impl FakeNode {
    /// A node with an empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(FakeNode {
            inner: Mutex::new(Inner {
                store: Store::new(),
                seqno: 0,
                submits: Vec::new(),
                read_barriers: 0,
            }),
            gate: None,
        })
    }

    /// A node whose `submit` first reports on the returned receiver, then
    /// waits for [`FakeNode::release`].
    pub fn gated() -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (entered, receiver) = mpsc::unbounded_channel();
        let node = Arc::new(FakeNode {
            inner: Mutex::new(Inner {
                store: Store::new(),
                seqno: 0,
                submits: Vec::new(),
                read_barriers: 0,
            }),
            gate: Some(Gate {
                entered,
                release: Notify::new(),
            }),
        });
        (node, receiver)
    }

    /// Lets one gated submission through.
    pub fn release(&self) {
        if let Some(gate) = &self.gate {
            gate.release.notify_one();
        }
    }

    /// How many times `submit` was called.
    pub fn submits(&self) -> usize {
        self.inner.lock().unwrap().submits.len()
    }

    /// How many times `read_barrier` was called.
    pub fn read_barriers(&self) -> usize {
        self.inner.lock().unwrap().read_barriers
    }

    /// The commands submitted, with their `wait` flags.
    pub fn submitted(&self) -> Vec<(Command, bool)> {
        self.inner.lock().unwrap().submits.clone()
    }

    /// The last seqno assigned.
    pub fn seqno(&self) -> u64 {
        self.inner.lock().unwrap().seqno
    }

    fn id(seqno: u64) -> TransactionId {
        TransactionId { view: VIEW, seqno }
    }
}

impl Node for FakeNode {
    async fn read_barrier(&self) -> Result<(), NodeError> {
        self.inner.lock().unwrap().read_barriers += 1;
        Ok(())
    }

    async fn submit(&self, command: Command, wait: bool) -> Result<Submitted, NodeError> {
        if let Some(gate) = &self.gate {
            let _ = gate.entered.send(());
            gate.release.notified().await;
        }
        let mut inner = self.inner.lock().unwrap();
        inner.submits.push((command.clone(), wait));
        let execution = command
            .execute(&inner.store)
            .map_err(|error| NodeError::Internal(error.to_string()))?;
        let seqno = inner.seqno + 1;
        inner
            .store
            .apply(seqno, &execution.write_set)
            .map_err(|error| NodeError::Internal(error.to_string()))?;
        inner
            .store
            .commit(seqno)
            .map_err(|error| NodeError::Internal(error.to_string()))?;
        inner.seqno = seqno;
        Ok(Submitted {
            transaction_id: Self::id(seqno),
            status: if wait {
                TxStatus::Committed
            } else {
                TxStatus::Pending
            },
            outcome: match execution.outcome {
                Outcome::Committed(response) => Ok(response),
                Outcome::Aborted(reason) => Err(reason),
            },
        })
    }

    fn kv_get(&self, map: &str, key: &str) -> Result<Option<KvValue>, NodeError> {
        let inner = self.inner.lock().unwrap();
        let Some((bytes, version)) = inner.store.get_committed(map, key) else {
            return Ok(None);
        };
        let value = String::from_utf8(bytes.to_vec())
            .map_err(|_| NodeError::Internal("not UTF-8".to_owned()))?;
        Ok(Some(KvValue {
            value,
            transaction_id: Self::id(version),
        }))
    }

    fn tx_status(&self, id: TransactionId) -> TxStatus {
        let seqno = self.seqno();
        if id.seqno == 0 || id.seqno > seqno {
            TxStatus::Unknown
        } else if id.view == VIEW {
            TxStatus::Committed
        } else {
            TxStatus::Invalid
        }
    }

    fn last_committed(&self) -> Option<TransactionId> {
        let seqno = self.seqno();
        (seqno > 0).then(|| Self::id(seqno))
    }

    fn receipt(&self, id: TransactionId) -> Result<Receipt, NodeError> {
        match self.tx_status(id) {
            TxStatus::Committed => Ok(canned_receipt(id, self.seqno())),
            TxStatus::Invalid => Err(NodeError::BadRequest {
                code: "InvalidTransactionId",
                message: format!("{id} has another view"),
            }),
            TxStatus::Unknown | TxStatus::Pending => {
                Err(NodeError::NotFound(format!("{id} is not committed")))
            }
        }
    }

    fn checkpoint(&self) -> Option<String> {
        let seqno = self.seqno();
        (seqno > 0).then(|| canned_checkpoint(seqno))
    }

    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, NodeError> {
        let seqno = self.seqno();
        if from > to || to > seqno {
            return Err(NodeError::BadRequest {
                code: "InvalidRange",
                message: format!("need from <= to <= {seqno}"),
            });
        }
        Ok((from..to).take(3).map(|n| Digest([n as u8; 32])).collect())
    }

    fn public_key(&self) -> PublicKeyInfo {
        PublicKeyInfo {
            public_key: "ab".repeat(32),
            verifier_key: "stele.test/fake+01234567+AQ==".to_owned(),
            origin: "stele.test/fake".to_owned(),
        }
    }

    fn state(&self) -> NodeState {
        NodeState {
            node_id: "n0".to_owned(),
            role: "Primary".to_owned(),
            view: VIEW,
            last_committed: self.last_committed(),
            ledger_seqno: self.seqno(),
            ledger_bytes: 42 * self.seqno(),
            raft_node_id: 1,
            leader: Some(1),
            leader_address: None,
            divergences: 0,
            last_divergence: None,
            snapshots_installed: 0,
            storage: None,
        }
    }
}

/// The canned checkpoint note of a tree of `size` leaves.
pub fn canned_checkpoint(size: u64) -> String {
    format!("stele.test/fake\n{size}\nAAAA\n\n\u{2014} stele.test/fake AbCd\n")
}

/// A receipt of the right shape (not a valid proof).
pub fn canned_receipt(id: TransactionId, size: u64) -> Receipt {
    Receipt {
        transaction_id: id,
        leaf_index: id.seqno - 1,
        write_set_digest: Digest([3; 32]),
        commit_evidence: CommitEvidence {
            transaction_id: id,
            secret: [7; 32],
        },
        claims_digest: Digest::ZERO,
        command_digest: None,
        proof: vec![Digest([1; 32])],
        tree_size: size,
        root: Digest([2; 32]),
        checkpoint: canned_checkpoint(size),
    }
}

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
