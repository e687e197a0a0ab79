//! `/node/*`, `/metrics` and `/openapi.json`: public, read-only.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stele_history::Receipt;

use super::AppState;
use crate::error::{codes, HttpError};
use crate::extract::QueryParams;
use crate::node::{Node, NodeState, PublicKeyInfo, ValidatorsInfo};

/// `GET /node/tx?transaction_id=v.s`.
pub(crate) async fn tx_status<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
) -> Result<Json<Value>, HttpError> {
    let id = query
        .allow(&["transaction_id"])?
        .transaction_id("transaction_id")?;
    let status = state.node.tx_status(id);
    Ok(Json(
        json!({ "transaction_id": id.to_string(), "status": status }),
    ))
}

/// `GET /node/commit`: the last committed transaction id, or null.
pub(crate) async fn commit<N: Node>(State(state): State<AppState<N>>) -> Json<Value> {
    let id = state.node.last_committed().map(|id| id.to_string());
    Json(json!({ "transaction_id": id }))
}

/// `GET /node/receipt?transaction_id=v.s`.
pub(crate) async fn receipt<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
) -> Result<Json<Receipt>, HttpError> {
    let id = query
        .allow(&["transaction_id"])?
        .transaction_id("transaction_id")?;
    Ok(Json(state.node.receipt(id)?))
}

/// `GET /node/checkpoint`: the latest signed checkpoint note, as text.
pub(crate) async fn checkpoint<N: Node>(
    State(state): State<AppState<N>>,
) -> Result<Response, HttpError> {
    let note = state
        .node
        .checkpoint()
        .ok_or_else(|| HttpError::not_found("no checkpoint yet: the ledger is empty"))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        note,
    )
        .into_response())
}

/// `GET /node/consistency?from=m&to=n`: the RFC 9162 consistency proof.
pub(crate) async fn consistency<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
) -> Result<Json<Value>, HttpError> {
    let query = query.allow(&["from", "to"])?;
    let from = tree_size(query, "from")?;
    let to = tree_size(query, "to")?;
    if from > to {
        return Err(HttpError::bad_request(
            codes::INVALID_RANGE,
            format!("`from` ({from}) must not be larger than `to` ({to})"),
        ));
    }
    let proof = state.node.consistency(from, to)?;
    Ok(Json(json!({ "from": from, "to": to, "proof": proof })))
}

/// A tree size in canonical decimal (no sign, no leading zero), so each size
/// has one spelling, as in checkpoints and transaction ids.
fn tree_size(query: &QueryParams, name: &str) -> Result<u64, HttpError> {
    let expected = "a tree size (canonical decimal)";
    let text: String = query.required(name, expected)?;
    stele_history::checkpoint::parse_canonical_u64(&text).ok_or_else(|| {
        HttpError::bad_request(
            codes::INVALID_QUERY,
            format!("query parameter `{name}` must be {expected}"),
        )
    })
}

/// `GET /node/public-key`; 404 in BFT mode, where no service key exists
/// (the validators certify the checkpoints).
pub(crate) async fn public_key<N: Node>(
    State(state): State<AppState<N>>,
) -> Result<Json<PublicKeyInfo>, HttpError> {
    if state.node.validators().is_some() {
        return Err(HttpError::not_found(
            "this service has no service key: its checkpoints are certified by validators \
             (BFT mode): GET /node/validators",
        ));
    }
    Ok(Json(state.node.public_key()))
}

/// `GET /node/validators`: the validators certifying the checkpoints (BFT
/// mode); 404 on a service with a service key.
pub(crate) async fn validators<N: Node>(
    State(state): State<AppState<N>>,
) -> Result<Json<ValidatorsInfo>, HttpError> {
    state.node.validators().map(Json).ok_or_else(|| {
        HttpError::not_found(
            "this service has a service key, not validators (it runs Raft, not BFT): \
             GET /node/public-key",
        )
    })
}

/// `GET /node/state`.
pub(crate) async fn state<N: Node>(State(state): State<AppState<N>>) -> Json<NodeState> {
    Json(state.node.state())
}

/// `GET /metrics`.
pub(crate) async fn metrics<N: Node>(State(state): State<AppState<N>>) -> Response {
    crate::metrics::render(&state.registry)
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        crate::openapi::OPENAPI_JSON,
    )
        .into_response()
}
