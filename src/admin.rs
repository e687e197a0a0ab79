//! The operator's routes, served only when `[admin]` is configured and each
//! behind the admin bearer token (never a user's token):
//!
//! - `GET /admin/members` — the voters and learners of the Raft membership;
//! - `POST /admin/members`, body `{"id","address","public_key"}` — adds a node
//!   (started with `join = true`): as a learner until it has caught up with
//!   the log (it re-executes and checks every batch), then as a voter. The
//!   answer comes once it votes; only the leader can (else 307 to the leader);
//! - `DELETE /admin/members/{id}` — removes a voter;
//! - `GET /admin/partition` — the peers this node drops traffic with;
//! - `PUT /admin/partition`, body `{"drop":[<node id>, ...]}` — replaces that
//!   set (`[]` heals). Served only with `partition_injection = true`: it exists
//!   for partition tests (seed 001's SetPartition) and a production node leaves
//!   it off.
//!
//! The set is enforced on both sides: this node's outgoing RPCs to a dropped
//! peer fail as unreachable, and its peer routes refuse that peer's requests.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stele_api::auth::{bearer_token, token_matches};
use stele_api::extract::JsonBody;
use stele_api::{codes, HttpError};
use stele_consensus::raft::SteleNode;
use stele_consensus::{ConsensusError, Engine, Members, SubmitError};

/// Largest body the admin routes read (413 `PayloadTooLarge` beyond).
pub const ADMIN_BODY_BYTES_MAX: usize = 4096;

/// What the admin routes need.
#[derive(Clone)]
struct AdminState {
    engine: Arc<Engine>,
    token_hash: [u8; 32],
}

/// `PUT /admin/partition`'s body and both routes' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionBody {
    /// The peers whose traffic is dropped.
    pub drop: BTreeSet<u64>,
}

/// `POST /admin/members`' body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    /// The new node's id.
    pub id: u64,
    /// Its `host:port`.
    pub address: String,
    /// Its peer public key (64 hex digits, `<data dir>/node.key`'s public half).
    pub public_key: String,
}

/// The admin router, or an empty one when `[admin]` is absent.
pub fn router(engine: Arc<Engine>, admin: Option<&crate::config::Admin>) -> Router {
    let Some(admin) = admin else {
        return Router::new();
    };
    let state = AdminState {
        engine,
        token_hash: *admin.token_sha256.as_bytes(),
    };
    let mut router = Router::new()
        .route("/admin/members", get(members_get).post(members_post))
        .route("/admin/members/{id}", delete(members_delete));
    if admin.partition_injection {
        tracing::warn!(
            "partition injection is enabled: PUT /admin/partition can cut this node off"
        );
        router = router.route("/admin/partition", get(partition_get).put(partition_put));
    }
    // The precheck refuses a declared oversized body at once and records the
    // limit, so that a refusal names this limit and not the API's.
    router
        .layer(DefaultBodyLimit::max(ADMIN_BODY_BYTES_MAX))
        .layer(from_fn_with_state(
            ADMIN_BODY_BYTES_MAX,
            stele_api::layers::precheck_body_size,
        ))
        .with_state(state)
}

/// A membership refusal as HTTP: 307 to the leader, 400 for a bad request,
/// 504 for a new member that did not catch up in time, 503 otherwise.
fn membership_error(error: ConsensusError) -> Response {
    match error {
        ConsensusError::Submit(SubmitError::NotLeader {
            address: Some(address),
            ..
        }) => {
            let mut response = HttpError::new(
                StatusCode::TEMPORARY_REDIRECT,
                codes::NOT_LEADER,
                format!("membership changes go to the leader at {address}"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("https://{address}/admin/members")) {
                response.headers_mut().insert("location", value);
            }
            response
        }
        ConsensusError::Config(message) => {
            HttpError::bad_request(codes::INVALID_ARGUMENT, message).into_response()
        }
        // A new member that did not catch up in time (and was removed again).
        ConsensusError::Timeout(message) => {
            HttpError::new(StatusCode::GATEWAY_TIMEOUT, codes::TIMEOUT, message).into_response()
        }
        other => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            other.to_string(),
        )
        .into_response(),
    }
}

fn members_json(members: &Members) -> serde_json::Value {
    let list = |nodes: &std::collections::BTreeMap<u64, SteleNode>| {
        nodes
            .iter()
            .map(|(id, node)| {
                serde_json::json!({"id": id, "address": node.addr, "public_key": node.public_key})
            })
            .collect::<Vec<_>>()
    };
    serde_json::json!({"voters": list(&members.voters), "learners": list(&members.learners)})
}

async fn members_get(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, HttpError> {
    authorize(&state, &headers)?;
    Ok(Json(members_json(&state.engine.members())))
}

async fn members_post(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<JsonBody<MemberBody>, HttpError>,
) -> Response {
    if let Err(error) = authorize(&state, &headers) {
        return error.into_response();
    }
    let JsonBody(body) = match body {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    if body.address.is_empty() || !body.address.contains(':') || body.address.len() > 256 {
        return HttpError::bad_request(
            codes::INVALID_BODY,
            format!("address {:?} must be host:port", body.address),
        )
        .into_response();
    }
    let node = SteleNode {
        addr: body.address,
        public_key: body.public_key,
    };
    tracing::info!(id = body.id, %node, "adding a member");
    match state.engine.add_member(body.id, node).await {
        Ok(()) => Json(members_json(&state.engine.members())).into_response(),
        Err(error) => membership_error(error),
    }
}

async fn members_delete(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(error) = authorize(&state, &headers) {
        return error.into_response();
    }
    let Ok(id) = id.parse::<u64>() else {
        return HttpError::bad_request(
            codes::INVALID_PATH,
            "the node id must be an unsigned integer",
        )
        .into_response();
    };
    tracing::info!(id, "removing a member");
    match state.engine.remove_member(id).await {
        Ok(()) => Json(members_json(&state.engine.members())).into_response(),
        Err(error) => membership_error(error),
    }
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), HttpError> {
    match bearer_token(headers) {
        None => Err(HttpError::unauthorized(
            "this route needs an `Authorization: Bearer <admin token>` header",
        )),
        Some(token) if !token_matches(token, &[state.token_hash]) => Err(HttpError::unauthorized(
            "the bearer token is not the admin token",
        )),
        Some(_) => Ok(()),
    }
}

async fn partition_get(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<PartitionBody>, HttpError> {
    authorize(&state, &headers)?;
    Ok(Json(PartitionBody {
        drop: state.engine.partition().blocked(),
    }))
}

async fn partition_put(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<JsonBody<PartitionBody>, HttpError>,
) -> Result<Json<PartitionBody>, HttpError> {
    authorize(&state, &headers)?;
    let JsonBody(body) = body?;
    // The other members this node knows: its pinned peer keys, which start
    // from the configuration and follow the membership.
    let auth = state.engine.peer_auth();
    let mut peers = auth.members();
    peers.remove(&auth.node_id());
    if let Some(stranger) = body.drop.iter().find(|id| !peers.contains_key(id)) {
        return Err(HttpError::bad_request(
            codes::INVALID_BODY,
            format!(
                "drop: node {stranger} is not another member of this cluster (peers: {:?})",
                peers.keys().collect::<Vec<_>>()
            ),
        ));
    }
    state.engine.partition().set(body.drop.clone());
    tracing::warn!(drop = ?body.drop, "partition set");
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::PartitionBody;

    #[test]
    fn the_body_names_its_field() {
        let parsed: PartitionBody = serde_json::from_str(r#"{"drop":[2,3]}"#).unwrap();
        assert_eq!(parsed.drop.into_iter().collect::<Vec<_>>(), vec![2, 3]);
        assert!(serde_json::from_str::<PartitionBody>(r#"{"dorp":[2]}"#).is_err());
        assert!(serde_json::from_str::<PartitionBody>(r#"{"drop":[-1]}"#).is_err());
    }
}
