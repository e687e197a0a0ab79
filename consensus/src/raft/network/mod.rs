//! Authenticated peer transport for Raft RPCs (issues P5, P7, P9): both
//! halves, the client a node calls its peers with and the routes it serves
//! them on.
//!
//! Every Raft RPC is a `POST /raft/{append,vote,snapshot}` whose body is the
//! CBOR of the openraft request; `POST /raft/fetch` (committed ledger batches,
//! for a joiner's background fetch) goes the same way. Its headers name the sender, the recipient,
//! the sender's clock ([`HEADER_TIME`], ms) and a nonce ([`HEADER_NONCE`]), and
//! carry the sender's Ed25519 signature over all of them, the route and the
//! body ([`PeerAuth`]). The rules:
//!
//! - **Before reading any body byte** the recipient checks the head: addressed
//!   to it, from a pinned member other than itself, sent within
//!   [`PEER_REQUEST_WINDOW_MS`] of its clock (and not before it started), a
//!   well-formed signature, and a `Content-Length` within
//!   [`PEER_MESSAGE_BYTES_MAX`]; anything else is refused at once (401 for
//!   authentication). Peer bodies in flight are bounded in total
//!   ([`PEER_BYTES_IN_FLIGHT_MAX`]) and each request in time
//!   ([`PEER_REQUEST_TIMEOUT_MS`]).
//! - Then it checks the signature with the sender's pinned key, and that it
//!   never accepted this (sender, time, nonce) before (bounded memory:
//!   [`PEER_NONCES_PER_SENDER_MAX`] per sender): a captured request cannot be
//!   replayed, even to a restarted node (it refuses requests sent before it
//!   started). Members' clocks must agree within the window.
//! - It answers `200` with the CBOR of the openraft response, signed by its own
//!   key and bound to the request's signature. Request signatures are unique,
//!   so responses are too: a recorded answer (e.g. to openraft's identical
//!   read-index heartbeats) matches no later request. Any other status carries
//!   a JSON error body.
//! - TLS is pinned: a node serves, besides its client-facing certificate, one
//!   made from its node key, to clients that ask for the server name
//!   `node-<id>.peer.stele`. The peer client calls member `<id>` under that
//!   name and accepts the connection only if the handshake is signed by
//!   `<id>`'s pinned key ([`pinning`]), so an on-path attacker can neither read
//!   nor answer peer traffic.
//!
//! The modules, by concern:
//!
//! - this file — the wire vocabulary both sides share: the headers, the
//!   limit, [`PeerRpcKind`], [`PeerAuthError`] (and its HTTP status),
//!   [`decode_request`] and [`encode_response`];
//! - `auth.rs` — message authentication: [`PeerAuth`] signs and checks
//!   requests and responses and keeps the replay guard; [`RequestHead`];
//! - `server.rs` — the server half: [`router`] serves the peer routes over a
//!   [`PeerService`] (the node's `RaftSequencer`), with the head checks, the
//!   bytes in flight and the timeout;
//! - `client.rs` — the client half: [`PeerNetwork`] (openraft's
//!   `RaftNetworkFactory`) and [`PeerClient`] (`RaftNetwork`);
//! - [`pinning`] — the client's TLS, pinned to each member's node key;
//! - `partition.rs` — [`Partition`]: the peers whose traffic is dropped, both
//!   ways (test fault injection).

mod auth;
mod client;
mod partition;
pub mod pinning;
mod server;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use auth::{now_ms, PeerAuth, RequestHead, PEER_NONCES_PER_SENDER_MAX, PEER_REQUEST_WINDOW_MS};
pub use client::{PeerClient, PeerNetwork};
pub use partition::Partition;
pub use pinning::{peer_server_name, PEER_SERVER_NAME_SUFFIX};
pub use server::{
    router, PeerService, LEDGER_FETCHES_SERVED_MAX, PEER_BYTES_IN_FLIGHT_MAX,
    PEER_REQUEST_TIMEOUT_MS,
};

/// Header naming the sending node (decimal node id).
pub const HEADER_FROM: &str = "stele-from";
/// Header naming the receiving node (decimal node id).
pub const HEADER_TO: &str = "stele-to";
/// Header carrying the lowercase hex of a 64-byte Ed25519 signature: the sender's
/// on a request, the responder's on a `200` response.
pub const HEADER_SIGNATURE: &str = "stele-signature";
/// Header carrying the sender's clock when it signed a request (decimal ms
/// since the Unix epoch).
pub const HEADER_TIME: &str = "stele-time";
/// Header carrying a request's nonce (decimal u64).
pub const HEADER_NONCE: &str = "stele-nonce";
/// The largest request or response body either side accepts. The log reader
/// caps the entries of one append at half of it
/// (`log_reader::REPLICATION_READ_BYTES_MAX`).
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Which Raft RPC a peer message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRpcKind {
    /// `AppendEntries` (and heartbeats).
    Append,
    /// `RequestVote`.
    Vote,
    /// `InstallSnapshot` (one chunk).
    Snapshot,
    /// A fetch of committed ledger batches (not a Raft RPC: a joiner's
    /// background fetch of the seqnos it skipped).
    Fetch,
    /// BFT mode: validators' messages.
    BftMessages,
    /// BFT mode: a decided height, for a lagging validator.
    BftSync,
}

impl PeerRpcKind {
    /// The HTTP route of this RPC; it is also part of the signed message.
    pub fn path(&self) -> &'static str {
        match self {
            PeerRpcKind::Append => "/raft/append",
            PeerRpcKind::Vote => "/raft/vote",
            PeerRpcKind::Snapshot => "/raft/snapshot",
            PeerRpcKind::Fetch => "/raft/fetch",
            PeerRpcKind::BftMessages => "/bft/messages",
            PeerRpcKind::BftSync => "/bft/sync",
        }
    }

    /// The kind named by the last route segment (`"append"`, `"vote"`,
    /// `"snapshot"`), for a router with a `/raft/{kind}` route.
    pub fn from_path_segment(segment: &str) -> Option<Self> {
        match segment {
            "append" => Some(PeerRpcKind::Append),
            "vote" => Some(PeerRpcKind::Vote),
            "snapshot" => Some(PeerRpcKind::Snapshot),
            "fetch" => Some(PeerRpcKind::Fetch),
            "messages" => Some(PeerRpcKind::BftMessages),
            "sync" => Some(PeerRpcKind::BftSync),
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
    /// A header the request needs is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// Sent outside [`PEER_REQUEST_WINDOW_MS`] of this node's clock, before it
    /// started, or before what it still remembers of the sender.
    #[error("request sent at {time_ms} ms is outside the window (now {now_ms} ms)")]
    Stale {
        /// The request's send time.
        time_ms: u64,
        /// This node's clock.
        now_ms: u64,
    },
    /// This (sender, time, nonce) was accepted before: a replay.
    #[error("replayed request (node {from}, nonce {nonce})")]
    Replayed {
        /// The sender.
        from: u64,
        /// The nonce.
        nonce: u64,
    },
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
            PeerAuthError::MissingHeader(_) => "missing_header",
            PeerAuthError::Stale { .. } => "stale",
            PeerAuthError::Replayed { .. } => "replayed",
        }
    }

    /// The HTTP status to answer with: 401 for authentication failures, 421
    /// (misdirected) for a request meant for another node, 400 and 413 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            PeerAuthError::UnknownPeer(_)
            | PeerAuthError::FromSelf(_)
            | PeerAuthError::BadSignature
            | PeerAuthError::MissingHeader(_)
            | PeerAuthError::Stale { .. }
            | PeerAuthError::Replayed { .. } => 401,
            PeerAuthError::WrongRecipient { .. } => 421,
            PeerAuthError::Malformed(_) => 400,
            PeerAuthError::TooLarge { .. } => 413,
        }
    }
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
    head: &RequestHead,
    body: &[u8],
) -> Result<T, PeerAuthError> {
    auth.verify_request(kind, head, body)?;
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
