//! Authenticated peer transport for Raft RPCs (issue P5): "a process that is not
//! a member cannot inject entries or votes".
//!
//! Every Raft RPC is a `POST https://{addr}/raft/{append,vote,snapshot}` whose
//! body is the CBOR of the openraft request and whose headers name the sender,
//! the recipient and carry the sender's Ed25519 signature over all three and the
//! body. The recipient checks the signature with the sender's pinned key before
//! decoding anything, and answers `200` with the CBOR of the openraft response,
//! signed by its own key and bound to the request's signature, so a response
//! cannot be forged nor replayed as the answer to another request. Any other
//! status carries a JSON error body.
//!
//! Authentication is by message signatures rather than mutual TLS so that it does
//! not depend on the TLS stack or on certificates: TLS here only adds
//! confidentiality. A replayed request is harmless: Raft already tolerates
//! duplicated and delayed messages, and the signature keeps the sender, the
//! recipient and the content fixed.
//!
//! The client side is [`PeerNetwork`] (openraft's `RaftNetworkFactory`) and
//! [`PeerClient`] (`RaftNetwork`); the receiving side uses [`decode_request`] and
//! [`encode_response`]. [`Partition`] drops traffic to chosen peers (tests).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::AnyError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::types::{SnapshotChunk, SteleNode, SteleRaft};
use crate::error::ConsensusError;

/// Header naming the sending node (decimal node id).
pub const HEADER_FROM: &str = "stele-from";
/// Header naming the receiving node (decimal node id).
pub const HEADER_TO: &str = "stele-to";
/// Header carrying the lowercase hex of a 64-byte Ed25519 signature: the sender's
/// on a request, the responder's on a `200` response.
pub const HEADER_SIGNATURE: &str = "stele-signature";
/// The largest request or response body either side accepts. An append larger
/// than this is split by openraft (see [`PayloadTooLarge`]).
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Domain separators: a request signature can never pass as a response one, and
/// a version bump invalidates old messages.
const REQUEST_DOMAIN: &[u8] = b"stele-peer-request-v1\0";
const RESPONSE_DOMAIN: &[u8] = b"stele-peer-response-v1\0";
/// How much of a refusal's body is quoted in the client's error.
const ERROR_BODY_QUOTED_MAX: usize = 1024;

/// Which Raft RPC a peer message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRpcKind {
    /// `AppendEntries` (and heartbeats).
    Append,
    /// `RequestVote`.
    Vote,
    /// `InstallSnapshot` (one chunk).
    Snapshot,
}

impl PeerRpcKind {
    /// The HTTP route of this RPC; it is also part of the signed message.
    pub fn path(&self) -> &'static str {
        match self {
            PeerRpcKind::Append => "/raft/append",
            PeerRpcKind::Vote => "/raft/vote",
            PeerRpcKind::Snapshot => "/raft/snapshot",
        }
    }

    /// The kind named by the last route segment (`"append"`, `"vote"`,
    /// `"snapshot"`), for a router with a `/raft/{kind}` route.
    pub fn from_path_segment(segment: &str) -> Option<Self> {
        match segment {
            "append" => Some(PeerRpcKind::Append),
            "vote" => Some(PeerRpcKind::Vote),
            "snapshot" => Some(PeerRpcKind::Snapshot),
            _ => None,
        }
    }
}

/// Why a peer message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAuthError {
    /// The sender (or responder) is not a pinned member.
    #[error("node {0} is not a member of this cluster")]
    UnknownPeer(u64),
    /// A request that names this node as its sender.
    #[error("node {0} received a request claiming to come from itself")]
    FromSelf(u64),
    /// The request is addressed to another node.
    #[error("request addressed to node {addressed}, but this is node {this}")]
    WrongRecipient {
        /// This node.
        this: u64,
        /// The node named by the request.
        addressed: u64,
    },
    /// The signature does not verify with the sender's pinned key.
    #[error("the signature does not verify with the sender's pinned key")]
    BadSignature,
    /// A header or the body does not parse.
    #[error("malformed peer message: {0}")]
    Malformed(String),
    /// The body exceeds [`PEER_MESSAGE_BYTES_MAX`].
    #[error("peer message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl PeerAuthError {
    /// A short machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            PeerAuthError::UnknownPeer(_) => "unknown_peer",
            PeerAuthError::FromSelf(_) => "from_self",
            PeerAuthError::WrongRecipient { .. } => "wrong_recipient",
            PeerAuthError::BadSignature => "bad_signature",
            PeerAuthError::Malformed(_) => "malformed",
            PeerAuthError::TooLarge { .. } => "too_large",
        }
    }

    /// The HTTP status to answer with: 401 for authentication failures, 421
    /// (misdirected) for a request meant for another node, 400 and 413 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            PeerAuthError::UnknownPeer(_)
            | PeerAuthError::FromSelf(_)
            | PeerAuthError::BadSignature => 401,
            PeerAuthError::WrongRecipient { .. } => 421,
            PeerAuthError::Malformed(_) => 400,
            PeerAuthError::TooLarge { .. } => 413,
        }
    }
}

/// This node's signing key and the pinned public keys of every member
/// (including itself: `members[node_id]` should be `key`'s public key). The
/// keys start from the configuration and follow the Raft membership
/// ([`PeerAuth::set_members`]) as members are added and removed.
pub struct PeerAuth {
    node_id: u64,
    key: SigningKey,
    members: RwLock<BTreeMap<u64, VerifyingKey>>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the signing key.
        f.debug_struct("PeerAuth")
            .field("node_id", &self.node_id)
            .field("members", &self.members().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PeerAuth {
    /// This node (`node_id`, signing with `key`) among `members`.
    pub fn new(node_id: u64, key: SigningKey, members: BTreeMap<u64, VerifyingKey>) -> Self {
        PeerAuth {
            node_id,
            key,
            members: RwLock::new(members),
        }
    }

    /// The pinned keys, by node id.
    pub fn members(&self) -> BTreeMap<u64, VerifyingKey> {
        // Replaced whole only: a poisoned lock still holds a consistent map.
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the pinned keys (this node's own is always kept).
    pub fn set_members(&self, mut members: BTreeMap<u64, VerifyingKey>) {
        members.insert(self.node_id, self.key.verifying_key());
        *self.members.write().unwrap_or_else(PoisonError::into_inner) = members;
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Signs a request from this node to `to` (hex): the signed message is
    /// `"stele-peer-request-v1\0" || kind.path() || from (u64 BE) || to (u64 BE)
    /// || SHA-256(body)`.
    pub fn sign_request(&self, to: u64, kind: PeerRpcKind, body: &[u8]) -> String {
        let message = request_message(kind, self.node_id, to, body);
        hex::encode(self.key.sign(&message).to_bytes())
    }

    /// Checks a request received by this node: its body is within the limit, it
    /// is addressed to this node, it comes from a pinned member other than this
    /// node, and the signature verifies with that member's key.
    pub fn verify_request(
        &self,
        kind: PeerRpcKind,
        from: u64,
        to: u64,
        signature_hex: &str,
        body: &[u8],
    ) -> Result<(), PeerAuthError> {
        check_size(body.len())?;
        if to != self.node_id {
            return Err(PeerAuthError::WrongRecipient {
                this: self.node_id,
                addressed: to,
            });
        }
        if from == self.node_id {
            return Err(PeerAuthError::FromSelf(from));
        }
        let key = self.member_key(from)?;
        let signature = parse_signature(signature_hex)?;
        verify(&key, &request_message(kind, from, to, body), &signature)
    }

    /// Signs this node's response `body` to the request that carried
    /// `request_signature_hex`: the signed message is
    /// `"stele-peer-response-v1\0" || request signature (64 bytes) || SHA-256(body)`.
    ///
    /// Call it only for a request [`verify_request`](Self::verify_request)
    /// accepted. A malformed request signature is bound as 64 zero bytes, which
    /// no client's request signature can be, so such a response matches nothing.
    pub fn sign_response(&self, request_signature_hex: &str, body: &[u8]) -> String {
        let request_signature = parse_signature(request_signature_hex)
            .map(|s| s.to_bytes())
            .unwrap_or([0; 64]);
        let message = response_message(&request_signature, body);
        hex::encode(self.key.sign(&message).to_bytes())
    }

    /// Checks that `from` (a pinned member) signed `body` as its response to the
    /// request this node signed with `request_signature_hex`.
    pub fn verify_response(
        &self,
        from: u64,
        request_signature_hex: &str,
        response_signature_hex: &str,
        body: &[u8],
    ) -> Result<(), PeerAuthError> {
        check_size(body.len())?;
        let key = self.member_key(from)?;
        let request_signature = parse_signature(request_signature_hex)?;
        let signature = parse_signature(response_signature_hex)?;
        let message = response_message(&request_signature.to_bytes(), body);
        verify(&key, &message, &signature)
    }

    fn member_key(&self, node: u64) -> Result<VerifyingKey, PeerAuthError> {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .copied()
            .ok_or(PeerAuthError::UnknownPeer(node))
    }
}

fn request_message(kind: PeerRpcKind, from: u64, to: u64, body: &[u8]) -> Vec<u8> {
    // The path is the only variable-length field and comes before fixed-length
    // ones, so the encoding is unambiguous.
    let fields: [&[u8]; 3] = [
        kind.path().as_bytes(),
        &from.to_be_bytes(),
        &to.to_be_bytes(),
    ];
    signed_message(REQUEST_DOMAIN, &fields, body)
}

fn response_message(request_signature: &[u8; 64], body: &[u8]) -> Vec<u8> {
    signed_message(RESPONSE_DOMAIN, &[request_signature], body)
}

/// `domain || fields || SHA-256(body)`.
fn signed_message(domain: &[u8], fields: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut message = domain.to_vec();
    fields
        .iter()
        .for_each(|field| message.extend_from_slice(field));
    message.extend_from_slice(&Sha256::digest(body));
    message
}

fn check_size(size: usize) -> Result<(), PeerAuthError> {
    if size > PEER_MESSAGE_BYTES_MAX {
        return Err(PeerAuthError::TooLarge {
            size,
            max: PEER_MESSAGE_BYTES_MAX,
        });
    }
    Ok(())
}

fn parse_signature(signature_hex: &str) -> Result<Signature, PeerAuthError> {
    let mut bytes = [0; 64];
    hex::decode_to_slice(signature_hex, &mut bytes)
        .map_err(|e| PeerAuthError::Malformed(format!("signature is not 64 bytes of hex: {e}")))?;
    Ok(Signature::from_bytes(&bytes))
}

fn verify(key: &VerifyingKey, message: &[u8], signature: &Signature) -> Result<(), PeerAuthError> {
    // Strict: refuses weak keys and malleable signatures.
    key.verify_strict(message, signature)
        .map_err(|_| PeerAuthError::BadSignature)
}

/// Parses a node id header ([`HEADER_FROM`], [`HEADER_TO`]): a decimal `u64`.
pub fn parse_node_id(value: &str) -> Result<u64, PeerAuthError> {
    value
        .parse()
        .map_err(|_| PeerAuthError::Malformed(format!("node id {value:?} is not a decimal u64")))
}

/// Receiving side: authenticates a request (see [`PeerAuth::verify_request`]),
/// then decodes its CBOR body. Nothing is decoded before the signature checks.
pub fn decode_request<T: DeserializeOwned>(
    auth: &PeerAuth,
    kind: PeerRpcKind,
    from: u64,
    to: u64,
    signature_hex: &str,
    body: &[u8],
) -> Result<T, PeerAuthError> {
    auth.verify_request(kind, from, to, signature_hex, body)?;
    ciborium::from_reader(body)
        .map_err(|e| PeerAuthError::Malformed(format!("{} body does not decode: {e}", kind.path())))
}

/// Receiving side: the CBOR body of a `200` answer and its signature (the value
/// of the [`HEADER_SIGNATURE`] response header).
pub fn encode_response<T: Serialize>(
    auth: &PeerAuth,
    request_signature_hex: &str,
    response: &T,
) -> (Vec<u8>, String) {
    let body = encode(response).expect("openraft responses are plain data that CBOR encodes");
    let signature = auth.sign_response(request_signature_hex, &body);
    (body, signature)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ciborium::ser::Error<std::io::Error>> {
    let mut body = Vec::new();
    ciborium::into_writer(value, &mut body)?;
    Ok(body)
}

/// The peers this node drops traffic to and from (test partitions). Cheap to
/// clone: clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    blocked: Arc<RwLock<BTreeSet<u64>>>,
}

impl Partition {
    /// Replaces the set of blocked peers.
    pub fn set(&self, blocked: BTreeSet<u64>) {
        // The set is only ever replaced whole, so a poisoned lock still holds a
        // consistent value.
        *self.blocked.write().unwrap_or_else(PoisonError::into_inner) = blocked;
    }

    /// The blocked peers.
    pub fn blocked(&self) -> BTreeSet<u64> {
        self.read().clone()
    }

    /// Whether traffic with `peer` is dropped.
    pub fn is_blocked(&self, peer: u64) -> bool {
        self.read().contains(&peer)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<u64>> {
        self.blocked.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// openraft's network factory: one HTTP client (connection pool) shared by the
/// clients of every peer.
#[derive(Debug, Clone)]
pub struct PeerNetwork {
    auth: Arc<PeerAuth>,
    partition: Partition,
    http: reqwest::Client,
    scheme: &'static str,
}

impl PeerNetwork {
    /// A factory sending over HTTPS as `auth.node_id()`.
    pub fn new(auth: Arc<PeerAuth>, partition: Partition) -> Result<Self, ConsensusError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            // Nodes serve self-signed certificates. Accepting any certificate is
            // sound because every request and response is signed with pinned
            // Ed25519 keys and checked before use: TLS only adds confidentiality.
            .danger_accept_invalid_certs(true)
            // A peer is reached at its configured address, never elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ConsensusError::Config(format!("peer HTTPS client: {e}")))?;
        Ok(PeerNetwork {
            auth,
            partition,
            http,
            scheme: "https",
        })
    }

    /// For tests only: send over plain HTTP (messages stay signed, but travel in
    /// the clear).
    pub fn with_plain_http(mut self) -> Self {
        self.scheme = "http";
        self
    }
}

impl RaftNetworkFactory<SteleRaft> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &SteleNode) -> PeerClient {
        PeerClient {
            target,
            url_base: format!("{}://{}", self.scheme, node.addr),
            auth: Arc::clone(&self.auth),
            partition: self.partition.clone(),
            http: self.http.clone(),
        }
    }
}

/// openraft's client of one peer: signs requests, checks signed responses.
#[derive(Debug)]
pub struct PeerClient {
    target: u64,
    url_base: String,
    auth: Arc<PeerAuth>,
    partition: Partition,
    http: reqwest::Client,
}

/// A failed call, before it becomes openraft's `RPCError`.
enum CallError {
    /// Back off before retrying: no connection, timeout, partition.
    Unreachable(String),
    /// The peer answered, but not with a valid signed response.
    Network(String),
    /// The encoded request exceeds [`PEER_MESSAGE_BYTES_MAX`].
    TooLarge(String),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(
        self,
        kind: PeerRpcKind,
        target: u64,
    ) -> RPCError<u64, SteleNode, E> {
        let context = |m| AnyError::error(format!("{} to peer {target}: {m}", kind.path()));
        match self {
            CallError::Unreachable(m) | CallError::TooLarge(m) => {
                Unreachable::from(context(m)).into()
            }
            CallError::Network(m) => NetworkError::from(context(m)).into(),
        }
    }
}

impl PeerClient {
    /// Encodes, signs and sends `request`, then checks and decodes the answer.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: PeerRpcKind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, CallError> {
        if self.partition.is_blocked(self.target) {
            return Err(CallError::Unreachable("partitioned away".to_owned()));
        }
        let body =
            encode(request).map_err(|e| CallError::Network(format!("cannot encode: {e}")))?;
        check_size(body.len()).map_err(|e| CallError::TooLarge(e.to_string()))?;
        let signature = self.auth.sign_request(self.target, kind, &body);
        let response = self.post(kind, &signature, body, option).await?;
        self.check_answer(response, &signature).await
    }

    async fn post(
        &self,
        kind: PeerRpcKind,
        signature: &str,
        body: Vec<u8>,
        option: &RPCOption,
    ) -> Result<reqwest::Response, CallError> {
        self.http
            .post(format!("{}{}", self.url_base, kind.path()))
            .timeout(option.hard_ttl())
            .header(reqwest::header::CONTENT_TYPE, "application/cbor")
            .header(HEADER_FROM, self.auth.node_id().to_string())
            .header(HEADER_TO, self.target.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))
    }

    /// Decodes a `200` answer once its signature checks with the target's pinned
    /// key; any other status is a refusal, quoted.
    async fn check_answer<Resp: DeserializeOwned>(
        &self,
        mut response: reqwest::Response,
        signature: &str,
    ) -> Result<Resp, CallError> {
        let status = response.status();
        let answer_signature = response
            .headers()
            .get(HEADER_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if status != reqwest::StatusCode::OK {
            let (quoted, _) = read_body(&mut response, ERROR_BODY_QUOTED_MAX)
                .await
                .unwrap_or_default();
            let quoted = String::from_utf8_lossy(&quoted);
            return Err(CallError::Network(format!("answered {status}: {quoted}")));
        }
        let (answer, complete) = read_body(&mut response, PEER_MESSAGE_BYTES_MAX)
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !complete {
            return Err(CallError::Network(format!(
                "answer exceeds {PEER_MESSAGE_BYTES_MAX} bytes"
            )));
        }
        self.auth
            .verify_response(self.target, signature, &answer_signature, &answer)
            .map_err(|e| CallError::Network(format!("answer refused: {e}")))?;
        ciborium::from_reader(answer.as_slice())
            .map_err(|e| CallError::Network(format!("answer does not decode: {e}")))
    }

    fn transport_error(&self, error: &reqwest::Error) -> CallError {
        let message = format!("{}: {}", self.url_base, chain(error));
        if error.is_connect() || error.is_timeout() {
            CallError::Unreachable(message)
        } else {
            CallError::Network(message)
        }
    }
}

/// Reads at most `max` bytes of the body; the flag is false when it was longer.
async fn read_body(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// An error and its causes on one line (reqwest's own message omits the cause,
/// e.g. "connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

type RpcResult<T, E = RaftError<u64>> = Result<T, RPCError<u64, SteleNode, E>>;

impl RaftNetwork<SteleRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SteleRaft>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        let (kind, entries) = (PeerRpcKind::Append, rpc.entries.len() as u64);
        match self.call(kind, &rpc, &option).await {
            // openraft retries at once with fewer entries.
            Err(CallError::TooLarge(_)) if entries > 1 => {
                Err(PayloadTooLarge::new_entries_hint(entries / 2).into())
            }
            result => result.map_err(|e| e.into_rpc(kind, self.target)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        let kind = PeerRpcKind::Vote;
        let result = self.call(kind, &rpc, &option).await;
        result.map_err(|e| e.into_rpc(kind, self.target))
    }

    /// One snapshot chunk (openraft's default `full_snapshot` splits a snapshot
    /// into chunks and calls this), sent as a [`SnapshotChunk`].
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<SteleRaft>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        let kind = PeerRpcKind::Snapshot;
        let result = self.call(kind, &SnapshotChunk::from(rpc), &option).await;
        result.map_err(|e| e.into_rpc(kind, self.target))
    }
}
