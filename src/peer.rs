//! The peer routes: `POST /raft/{append,vote,snapshot}` carry openraft's RPCs
//! between nodes as CBOR, each request and response signed with the sender's
//! pinned Ed25519 node key (`stele_consensus::raft::network`). They sit beside
//! the client API on the same HTTPS listener, outside its bearer auth and body
//! limit (peer messages have their own authentication and limits):
//!
//! - the signed head (sender, recipient, time, nonce, signature) is checked,
//!   and the sender must be a member, **before any body byte is read**; so is
//!   the `Content-Length`, which must be present and at most
//!   [`PEER_MESSAGE_BYTES_MAX`]. A refused request is answered at once and its
//!   body never read (the connection is then closed);
//! - bodies in flight are bounded in total by [`PEER_BYTES_IN_FLIGHT_MAX`] (a
//!   semaphore of bytes, taken before the body is read);
//! - reading the body and handling the RPC is bounded by
//!   [`PEER_REQUEST_TIMEOUT_MS`].
//!
//! A node without `[cluster]` or `[admin]` in its configuration is a single node
//! that can never have peers: it serves no peer route (`start.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use stele_consensus::raft::network::{
    decode_request, encode_response, PeerAuthError, PeerRpcKind, RequestHead, HEADER_SIGNATURE,
    PEER_MESSAGE_BYTES_MAX,
};
use stele_consensus::raft::types::SnapshotChunk;
use stele_consensus::{ConsensusError, Engine};
use tokio::sync::Semaphore;

/// The most peer body bytes being read or handled at once, over all requests:
/// four of the largest message (a leader's append and snapshot chunk, and
/// room for a candidate's vote or a second leader during an election).
pub const PEER_BYTES_IN_FLIGHT_MAX: usize = 4 * PEER_MESSAGE_BYTES_MAX;
/// How long one peer request may take, from its head to the answer (reading
/// the body, waiting for room among the bytes in flight, handling the RPC).
/// Above every client-side timeout openraft sets (heartbeats, appends,
/// snapshot chunks: at most 10 s), so a live sender gives up first.
pub const PEER_REQUEST_TIMEOUT_MS: u64 = 30_000;

// The semaphore counts bytes in u32 permits.
const _: () = assert!(PEER_MESSAGE_BYTES_MAX <= u32::MAX as usize);

/// What the peer routes share.
#[derive(Clone)]
struct PeerState {
    engine: Arc<Engine>,
    /// Permits are body bytes.
    bytes_in_flight: Arc<Semaphore>,
}

/// The peer router over `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = PeerState {
        engine,
        bytes_in_flight: Arc::new(Semaphore::new(PEER_BYTES_IN_FLIGHT_MAX)),
    };
    Router::new()
        .route("/raft/{kind}", post(rpc))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message.to_string() } });
    (status, Json(body)).into_response()
}

/// `response` to a request whose body was not (entirely) read: the connection
/// closes after it, so the client cannot go on sending that body.
fn unread(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn refused(refusal: &PeerAuthError) -> Response {
    let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    error(status, refusal.code(), refusal)
}

async fn rpc(
    State(state): State<PeerState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let timeout = Duration::from_millis(PEER_REQUEST_TIMEOUT_MS);
    match tokio::time::timeout(timeout, serve(&state, &kind, &headers, body)).await {
        Ok(response) => response,
        Err(_) => unread(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Timeout",
            format!("the peer request took more than {PEER_REQUEST_TIMEOUT_MS} ms"),
        )),
    }
}

/// Why a request's `Content-Length` is refused.
enum LengthRefused {
    Missing,
    NotANumber,
    TooLarge(PeerAuthError),
}

impl LengthRefused {
    fn response(&self) -> Response {
        match self {
            LengthRefused::Missing => error(
                StatusCode::LENGTH_REQUIRED,
                "LengthRequired",
                "peer requests must declare their Content-Length",
            ),
            LengthRefused::NotANumber => error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Content-Length is not a number",
            ),
            LengthRefused::TooLarge(refusal) => refused(refusal),
        }
    }
}

/// The request's declared body size: present and within the limit.
fn content_length(headers: &HeaderMap) -> Result<usize, LengthRefused> {
    let value = headers
        .get(header::CONTENT_LENGTH)
        .ok_or(LengthRefused::Missing)?;
    let length = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .ok_or(LengthRefused::NotANumber)?;
    if length > PEER_MESSAGE_BYTES_MAX {
        return Err(LengthRefused::TooLarge(PeerAuthError::TooLarge {
            size: length,
            max: PEER_MESSAGE_BYTES_MAX,
        }));
    }
    Ok(length)
}

async fn serve(state: &PeerState, kind: &str, headers: &HeaderMap, body: Body) -> Response {
    let Some(kind) = PeerRpcKind::from_path_segment(kind) else {
        return unread(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no peer RPC {kind:?}"),
        ));
    };
    let engine = &state.engine;
    let auth = engine.peer_auth();
    // Everything that can be checked without the body, before reading it.
    let head = RequestHead::from_headers(|name| headers.get(name)?.to_str().ok())
        .and_then(|head| auth.check_head(&head).map(|_| head));
    let head = match head {
        Ok(head) => head,
        Err(refusal) => return unread(refused(&refusal)),
    };
    let length = match content_length(headers) {
        Ok(length) => length,
        Err(refusal) => return unread(refusal.response()),
    };
    if engine.partition().is_blocked(head.from) {
        return unread(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Partitioned",
            format!(
                "this node drops traffic from node {} (test partition)",
                head.from
            ),
        ));
    }
    let permits = u32::try_from(length).expect("checked against PEER_MESSAGE_BYTES_MAX");
    let Ok(_room) = state.bytes_in_flight.acquire_many(permits).await else {
        return unread(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the peer routes are closed",
        ));
    };
    let body = match axum::body::to_bytes(body, length).await {
        Ok(body) => body,
        Err(reading) => {
            return unread(error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("reading the body: {reading}"),
            ))
        }
    };
    let answered = match kind {
        PeerRpcKind::Append => match decode(engine, kind, &head, &body) {
            Ok(request) => engine
                .handle_append(request)
                .await
                .map(|r| sign(engine, &head, &r)),
            Err(refusal) => return refused(&refusal),
        },
        PeerRpcKind::Vote => match decode(engine, kind, &head, &body) {
            Ok(request) => engine
                .handle_vote(request)
                .await
                .map(|r| sign(engine, &head, &r)),
            Err(refusal) => return refused(&refusal),
        },
        PeerRpcKind::Snapshot => match decode::<SnapshotChunk>(engine, kind, &head, &body) {
            Ok(chunk) => engine
                .handle_snapshot(chunk.into())
                .await
                .map(|r| sign(engine, &head, &r)),
            Err(refusal) => return refused(&refusal),
        },
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

fn decode<T: DeserializeOwned>(
    engine: &Engine,
    kind: PeerRpcKind,
    head: &RequestHead,
    body: &[u8],
) -> Result<T, PeerAuthError> {
    decode_request(engine.peer_auth(), kind, head, body)
}

fn sign<T: serde::Serialize>(
    engine: &Engine,
    head: &RequestHead,
    response: &T,
) -> (Vec<u8>, String) {
    encode_response(engine.peer_auth(), &head.signature, response)
}
