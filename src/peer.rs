//! The peer routes: `POST /raft/{append,vote,snapshot}` carry openraft's RPCs
//! between nodes as CBOR, each request and response signed with the sender's
//! pinned Ed25519 node key (`stele_consensus::raft::network`). They sit beside
//! the client API on the same HTTPS listener, outside its bearer auth and body
//! limit (peer messages have their own limit and their own authentication).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use stele_consensus::raft::network::{
    decode_request, encode_response, parse_node_id, PeerAuthError, PeerRpcKind, HEADER_FROM,
    HEADER_SIGNATURE, HEADER_TO, PEER_MESSAGE_BYTES_MAX,
};
use stele_consensus::raft::types::SnapshotChunk;
use stele_consensus::{ConsensusError, Engine};

/// The peer router over `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/raft/{kind}", post(rpc))
        .layer(DefaultBodyLimit::max(PEER_MESSAGE_BYTES_MAX))
        .with_state(engine)
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message.to_string() } });
    (status, Json(body)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, PeerAuthError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| PeerAuthError::Malformed(format!("missing header {name}")))
}

fn refused(refusal: &PeerAuthError) -> Response {
    let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    error(status, refusal.code(), refusal)
}

async fn rpc(
    State(engine): State<Arc<Engine>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(kind) = PeerRpcKind::from_path_segment(&kind) else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no peer RPC {kind:?}"),
        );
    };
    let parsed = (|| {
        let from = parse_node_id(header(&headers, HEADER_FROM)?)?;
        let to = parse_node_id(header(&headers, HEADER_TO)?)?;
        let signature = header(&headers, HEADER_SIGNATURE)?.to_owned();
        Ok::<_, PeerAuthError>((from, to, signature))
    })();
    let (from, to, signature) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return refused(&error),
    };
    if engine.partition().is_blocked(from) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Partitioned",
            format!("this node drops traffic from node {from} (test partition)"),
        );
    }
    let auth = engine.peer_auth();
    let answered = match kind {
        PeerRpcKind::Append => match decode_request(auth, kind, from, to, &signature, &body) {
            Ok(request) => engine
                .handle_append(request)
                .await
                .map(|response| encode_response(auth, &signature, &response)),
            Err(error) => return refused(&error),
        },
        PeerRpcKind::Vote => match decode_request(auth, kind, from, to, &signature, &body) {
            Ok(request) => engine
                .handle_vote(request)
                .await
                .map(|response| encode_response(auth, &signature, &response)),
            Err(error) => return refused(&error),
        },
        PeerRpcKind::Snapshot => {
            match decode_request::<SnapshotChunk>(auth, kind, from, to, &signature, &body) {
                Ok(chunk) => engine
                    .handle_snapshot(chunk.into())
                    .await
                    .map(|response| encode_response(auth, &signature, &response)),
                Err(error) => return refused(&error),
            }
        }
    };
    match answered {
        Ok((bytes, response_signature)) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            if let Ok(value) = HeaderValue::from_str(&response_signature) {
                response.headers_mut().insert(HEADER_SIGNATURE, value);
            }
            response
        }
        Err(refusal @ ConsensusError::Divergence { .. }) => {
            error(StatusCode::CONFLICT, "Divergence", refusal)
        }
        Err(other) => error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", other),
    }
}
