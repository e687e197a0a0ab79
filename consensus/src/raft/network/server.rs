//! The server side: [`router`], the peer routes `POST /raft/{append,vote,snapshot,fetch}`
//! over a [`PeerService`] (the node's Raft backend, or a test's). A node serves
//! them beside its client API on the same HTTPS listener, outside the API's
//! bearer auth and body limit (peer messages have their own authentication and
//! limits):
//!
//! - the signed head (sender, recipient, time, nonce, signature) is checked,
//!   and the sender must be a member, **before any body byte is read**; so is
//!   the `Content-Length`, which must be present and at most
//!   [`PEER_MESSAGE_BYTES_MAX`], and so is the [`Partition`]. A refused request
//!   is answered at once and its body never read (the answer says
//!   `Connection: close`);
//! - bodies in flight are bounded in total by [`PEER_BYTES_IN_FLIGHT_MAX`] (a
//!   semaphore of bytes, taken before the body is read);
//! - reading the body and handling the RPC is bounded by
//!   [`PEER_REQUEST_TIMEOUT_MS`];
//! - ledger fetches are answered [`LEDGER_FETCHES_SERVED_MAX`] at a time;
//! - then the signature and the replay guard ([`decode_request`]), the RPC,
//!   and a `200` signed answer ([`encode_response`]); a refusal of the RPC is
//!   `409 Divergence` (the follower's check) or `503`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{
    decode_request, encode_response, Partition, PeerAuth, PeerAuthError, PeerRpcKind, RequestHead,
    HEADER_SIGNATURE, PEER_MESSAGE_BYTES_MAX,
};
use crate::raft::types::{
    BftMessages, BftSyncAnswer, BftSyncRequest, BftTaken, InstallSnapshotRequest,
    InstallSnapshotResponse, LedgerFetch, LedgerFetched, SnapshotChunk, SteleRaft,
};
use crate::sequencer::BoxFuture;
use crate::ConsensusError;

/// The most peer body bytes being read or handled at once, over all requests:
/// four of the largest message (a leader's append and snapshot chunk, and
/// room for a candidate's vote or a second leader during an election).
pub const PEER_BYTES_IN_FLIGHT_MAX: usize = 4 * PEER_MESSAGE_BYTES_MAX;
/// How long one peer request may take, from its head to the answer (reading
/// the body, waiting for room among the bytes in flight, handling the RPC).
/// Above every client-side timeout openraft sets (heartbeats, appends,
/// snapshot chunks: at most 10 s), so a live sender gives up first.
pub const PEER_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// The most ledger fetches answered at once (each reads up to
/// [`crate::raft::types::LEDGER_FETCH_BYTES_MAX`] of the ledger into memory);
/// more are answered `503` at once, and the fetcher tries again later.
pub const LEDGER_FETCHES_SERVED_MAX: usize = 2;

// The semaphore counts bytes in u32 permits.
const _: () = assert!(PEER_MESSAGE_BYTES_MAX <= u32::MAX as usize);

/// What answers the peer routes: this node's keys and partition, and the three
/// Raft RPCs, each called only for an authenticated request.
pub trait PeerService: Send + Sync + 'static {
    /// This node's peer authentication (the pinned members, the replay guard).
    fn auth(&self) -> &PeerAuth;

    /// The peers whose traffic this node drops (test partitions).
    fn partition(&self) -> &Partition;

    /// A peer's AppendEntries (and heartbeats).
    fn append(
        &self,
        rpc: AppendEntriesRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<SteleRaft>, ConsensusError>>;

    /// A peer's RequestVote.
    fn vote(
        &self,
        rpc: VoteRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<VoteResponse<SteleRaft>, ConsensusError>>;

    /// A peer's InstallSnapshot chunk.
    fn snapshot(
        &self,
        rpc: InstallSnapshotRequest,
    ) -> BoxFuture<'_, Result<InstallSnapshotResponse, ConsensusError>>;

    /// A peer's fetch of committed ledger batches.
    fn fetch(&self, rpc: LedgerFetch) -> BoxFuture<'_, Result<LedgerFetched, ConsensusError>>;

    /// BFT mode: validator `from`'s messages. A Raft node refuses them.
    fn bft_messages(
        &self,
        from: u64,
        rpc: BftMessages,
    ) -> BoxFuture<'_, Result<BftTaken, ConsensusError>> {
        let _ = (from, rpc);
        Box::pin(async { Err(not_bft()) })
    }

    /// BFT mode: the decision of a height, for a lagging validator.
    fn bft_sync(
        &self,
        rpc: BftSyncRequest,
    ) -> BoxFuture<'_, Result<BftSyncAnswer, ConsensusError>> {
        let _ = rpc;
        Box::pin(async { Err(not_bft()) })
    }
}

/// The refusal of a BFT message by a node that runs Raft.
fn not_bft() -> ConsensusError {
    ConsensusError::Config("this node runs Raft, not BFT mode".to_owned())
}

/// What the peer routes share.
#[derive(Clone)]
struct PeerState {
    service: Arc<dyn PeerService>,
    /// Permits are body bytes.
    bytes_in_flight: Arc<Semaphore>,
    /// Permits are ledger fetches being answered.
    fetches: Arc<Semaphore>,
}

/// The peer router over `service`.
pub fn router(service: Arc<dyn PeerService>) -> Router {
    let state = PeerState {
        service,
        bytes_in_flight: Arc::new(Semaphore::new(PEER_BYTES_IN_FLIGHT_MAX)),
        fetches: Arc::new(Semaphore::new(LEDGER_FETCHES_SERVED_MAX)),
    };
    Router::new()
        .route("/raft/{kind}", post(rpc_raft))
        .route("/bft/{kind}", post(rpc_bft))
        .with_state(state)
}

/// The JSON body of every answer but a `200`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.to_string(),
        },
    };
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

async fn rpc_raft(
    state: State<PeerState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    rpc(state, format!("/raft/{kind}"), headers, body).await
}

async fn rpc_bft(
    state: State<PeerState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    rpc(state, format!("/bft/{kind}"), headers, body).await
}

async fn rpc(
    State(state): State<PeerState>,
    path: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let kind = path;
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

/// The request's declared body size: present and within the limit (so it
/// also counts as permits of the bytes in flight).
fn content_length(headers: &HeaderMap) -> Result<u32, LengthRefused> {
    let value = headers
        .get(header::CONTENT_LENGTH)
        .ok_or(LengthRefused::Missing)?;
    let length = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .ok_or(LengthRefused::NotANumber)?;
    let too_large = || {
        LengthRefused::TooLarge(PeerAuthError::TooLarge {
            size: length,
            max: PEER_MESSAGE_BYTES_MAX,
        })
    };
    if length > PEER_MESSAGE_BYTES_MAX {
        return Err(too_large());
    }
    u32::try_from(length).map_err(|_| too_large())
}

async fn serve(state: &PeerState, kind: &str, headers: &HeaderMap, body: Body) -> Response {
    let found = kind
        .rsplit_once('/')
        .and_then(|(_, segment)| PeerRpcKind::from_path_segment(segment))
        .filter(|found| found.path() == kind);
    let Some(kind) = found else {
        return unread(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no peer RPC {kind:?}"),
        ));
    };
    let service = state.service.as_ref();
    let auth = service.auth();
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
    if service.partition().is_blocked(head.from) {
        return unread(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Partitioned",
            format!(
                "this node drops traffic from node {} (test partition)",
                head.from
            ),
        ));
    }
    let Ok(_room) = state.bytes_in_flight.acquire_many(length).await else {
        return unread(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the peer routes are closed",
        ));
    };
    let body = match axum::body::to_bytes(body, length as usize).await {
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
        PeerRpcKind::Append => answer(auth, kind, &head, &body, |rpc| service.append(rpc)).await,
        PeerRpcKind::Vote => answer(auth, kind, &head, &body, |rpc| service.vote(rpc)).await,
        PeerRpcKind::Snapshot => {
            let install = |chunk: SnapshotChunk| service.snapshot(chunk.into());
            answer(auth, kind, &head, &body, install).await
        }
        PeerRpcKind::Fetch => {
            let Ok(_serving) = state.fetches.try_acquire() else {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    format!(
                        "this node answers at most {LEDGER_FETCHES_SERVED_MAX} ledger fetches at once"
                    ),
                );
            };
            answer(auth, kind, &head, &body, |rpc| service.fetch(rpc)).await
        }
        PeerRpcKind::BftMessages => {
            let from = head.from;
            answer(auth, kind, &head, &body, |rpc| {
                service.bft_messages(from, rpc)
            })
            .await
        }
        PeerRpcKind::BftSync => answer(auth, kind, &head, &body, |rpc| service.bft_sync(rpc)).await,
    };
    let answered = match answered {
        Ok(answered) => answered,
        Err(refusal) => return refused(&refusal),
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

/// Authenticates and decodes the request (refused: the outer error), hands it
/// to `handle`, and encodes and signs its answer.
async fn answer<'s, Request, Answer>(
    auth: &PeerAuth,
    kind: PeerRpcKind,
    head: &RequestHead,
    body: &[u8],
    handle: impl FnOnce(Request) -> BoxFuture<'s, Result<Answer, ConsensusError>>,
) -> Result<Result<(Vec<u8>, String), ConsensusError>, PeerAuthError>
where
    Request: DeserializeOwned,
    Answer: Serialize,
{
    let request = decode_request(auth, kind, head, body)?;
    let answered = handle(request).await;
    Ok(answered.map(|answer| encode_response(auth, &head.signature, &answer)))
}
