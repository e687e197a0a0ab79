//! The operator's routes, served only when `[admin]` is configured and each
//! behind the admin bearer token (never a user's token):
//!
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

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stele_api::auth::{bearer_token, token_matches};
use stele_api::extract::JsonBody;
use stele_api::{codes, HttpError};
use stele_consensus::Engine;

/// Largest body `PUT /admin/partition` reads.
pub const ADMIN_BODY_BYTES_MAX: usize = 4096;

/// What the admin routes need.
#[derive(Clone)]
struct AdminState {
    engine: Arc<Engine>,
    token_hash: [u8; 32],
    /// The other members: the only ids a partition may name.
    peers: BTreeSet<u64>,
}

/// `PUT /admin/partition`'s body and both routes' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionBody {
    /// The peers whose traffic is dropped.
    pub drop: BTreeSet<u64>,
}

/// The admin router, or an empty one when `[admin]` is absent or serves nothing.
pub fn router(
    engine: Arc<Engine>,
    admin: Option<&crate::config::Admin>,
    peers: BTreeSet<u64>,
) -> Router {
    let Some(admin) = admin.filter(|admin| admin.partition_injection) else {
        return Router::new();
    };
    tracing::warn!("partition injection is enabled: PUT /admin/partition can cut this node off");
    let state = AdminState {
        engine,
        token_hash: *admin.token_sha256.as_bytes(),
        peers,
    };
    Router::new()
        .route("/admin/partition", get(partition_get).put(partition_put))
        .layer(DefaultBodyLimit::max(ADMIN_BODY_BYTES_MAX))
        .with_state(state)
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
    if let Some(stranger) = body.drop.iter().find(|id| !state.peers.contains(id)) {
        return Err(HttpError::bad_request(
            codes::INVALID_BODY,
            format!(
                "drop: node {stranger} is not another member of this cluster (peers: {:?})",
                state.peers
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
