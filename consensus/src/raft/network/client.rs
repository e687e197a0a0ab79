//! The client side: [`PeerNetwork`] (openraft's `RaftNetworkFactory`) and
//! [`PeerClient`] (openraft-legacy's v1 `RaftNetwork`, turned into 0.10's
//! network by its [`Adapter`], which sends a snapshot in chunks): signs
//! requests, checks signed answers, and talks TLS only to the holder of the
//! target's pinned key ([`super::pinning`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use openraft::error::{NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft_legacy::network_v1::{Adapter, InstallSnapshotError, RaftNetwork};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::pinning::{client_config, peer_server_name};
use super::{
    check_size, encode, Partition, PeerAuth, PeerRpcKind, RequestHead, HEADER_SIGNATURE,
    PEER_MESSAGE_BYTES_MAX,
};
use crate::error::ConsensusError;
use crate::raft::transfer_data::TransferData;
use crate::raft::types::{
    BftMessages, BftSyncAnswer, BftSyncRequest, BftTaken, InstallSnapshotRequest,
    InstallSnapshotResponse, LedgerFetch, LedgerFetched, SnapshotChunk, SteleNode, SteleRaft,
};
use crate::sync::lock;

/// The wait before openraft retries a peer it could not reach, in ms.
pub const PEER_BACKOFF_MS: u64 = 500;

/// The wait after a snapshot chunk failed, before openraft-legacy's sender
/// sends it again (it retries at once, without end).
pub const SNAPSHOT_CHUNK_RETRY_MS: u64 = 200;

/// How long one ledger fetch may take, from the request to the whole answer.
pub const LEDGER_FETCH_TIMEOUT_MS: u64 = 20_000;

/// How much of a refusal's body is quoted in the client's error.
/// Longest wait for a BFT call (messages, a decision): a lost one is
/// recovered by the protocol's timeouts and sync, not by waiting.
pub const BFT_CALL_TIMEOUT_MS: u64 = 5_000;

const ERROR_BODY_QUOTED_MAX: usize = 1024;

/// openraft's network factory: one HTTPS client (connection pool) per peer,
/// pinned to its key, reused by every client of that peer (openraft asks for a
/// new client per election and per linearizable read).
#[derive(Debug, Clone)]
pub struct PeerNetwork {
    auth: Arc<PeerAuth>,
    partition: Partition,
    /// Set for tests only: one plain-HTTP client for every peer.
    plain: Option<reqwest::Client>,
    /// The pinned clients, by peer, with the member record they were made for.
    pinned: Arc<Mutex<BTreeMap<u64, (SteleNode, reqwest::Client)>>>,
}

impl PeerNetwork {
    /// A factory sending over HTTPS as `auth.node_id()`.
    pub fn new(auth: Arc<PeerAuth>, partition: Partition) -> Result<Self, ConsensusError> {
        Ok(PeerNetwork {
            auth,
            partition,
            plain: None,
            pinned: Arc::default(),
        })
    }

    /// The pinned client of `node` (member `target`), made once per address
    /// and key.
    fn pinned_client(&self, target: u64, node: &SteleNode) -> Result<reqwest::Client, String> {
        // Replaced or added whole only: a poisoned lock still holds a
        // consistent map.
        let mut pinned = lock(&self.pinned);
        if let Some((made_for, client)) = pinned.get(&target) {
            if made_for == node {
                return Ok(client.clone());
            }
        }
        let client = pinned_client(target, node)?;
        pinned.insert(target, (node.clone(), client.clone()));
        Ok(client)
    }

    /// For tests only: send over plain HTTP (messages stay signed, but travel in
    /// the clear and the peer's TLS key is not checked).
    pub fn with_plain_http(mut self) -> Self {
        self.plain = base_builder().build().ok();
        self
    }
}

fn base_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // A peer is reached at its configured address, never elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// Resolves a peer's server name to its configured `host:port` (a DNS name or
/// an address), when connecting.
#[derive(Debug)]
struct PeerAddress(String);

impl reqwest::dns::Resolve for PeerAddress {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let address = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTPS client of `node` (member `target`), pinned to its key.
fn pinned_client(target: u64, node: &SteleNode) -> Result<reqwest::Client, String> {
    let key = node.verifying_key().ok_or_else(|| {
        format!(
            "node {target}'s public key {:?} is invalid",
            node.public_key
        )
    })?;
    let tls = client_config(key).map_err(|e| format!("peer TLS configuration: {e}"))?;
    base_builder()
        .use_preconfigured_tls(tls)
        .dns_resolver(Arc::new(PeerAddress(node.addr.clone())))
        .build()
        .map_err(|e| format!("peer HTTPS client: {e}"))
}

/// openraft's client of one peer: [`PeerClient`] through openraft-legacy's
/// adapter (one AppendEntries in flight at a time; snapshots in chunks of
/// `RPCOption::snapshot_chunk_size`, from the config's
/// `snapshot_max_chunk_size`).
pub type PeerAdapter = Adapter<SteleRaft, PeerClient, TransferData>;

impl RaftNetworkFactory<SteleRaft> for PeerNetwork {
    type Network = PeerAdapter;

    async fn new_client(&mut self, target: u64, node: &SteleNode) -> PeerAdapter {
        Adapter::new(self.peer_client(target, node))
    }
}

impl PeerNetwork {
    /// The v1 client of peer `target`.
    pub fn peer_client(&self, target: u64, node: &SteleNode) -> PeerClient {
        let (url_base, http) = match &self.plain {
            Some(plain) => (format!("http://{}", node.addr), Ok(plain.clone())),
            // The URL names the peer, not its address: the name selects its
            // node-key certificate, the resolver finds the address.
            None => (
                format!("https://{}", peer_server_name(target)),
                self.pinned_client(target, node),
            ),
        };
        PeerClient {
            target,
            url_base,
            address: node.addr.clone(),
            auth: Arc::clone(&self.auth),
            partition: self.partition.clone(),
            http,
        }
    }
}

/// openraft's client of one peer: signs requests, checks signed responses.
#[derive(Debug)]
pub struct PeerClient {
    target: u64,
    url_base: String,
    address: String,
    auth: Arc<PeerAuth>,
    partition: Partition,
    /// Or why there is none (the member's key is invalid).
    http: Result<reqwest::Client, String>,
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
    ) -> RPCError<SteleRaft, E> {
        let context = |m| format!("{} to peer {target}: {m}", kind.path());
        match self {
            CallError::Unreachable(m) | CallError::TooLarge(m) => {
                RPCError::Unreachable(Unreachable::from_string(context(m)))
            }
            CallError::Network(m) => RPCError::Network(NetworkError::from_string(context(m))),
        }
    }
}

impl PeerClient {
    /// Fetches committed ledger batches from this peer (a joiner's background
    /// fetch, `fetch.rs`); the answer is signed by the peer and checked here,
    /// the batches themselves are checked by the caller.
    pub async fn fetch_ledger(&self, request: LedgerFetch) -> Result<LedgerFetched, String> {
        let option = RPCOption::new(std::time::Duration::from_millis(LEDGER_FETCH_TIMEOUT_MS));
        self.call_named(PeerRpcKind::Fetch, &request, &option).await
    }

    /// BFT mode: sends validators' messages to this peer.
    pub async fn bft_messages(&self, request: &BftMessages) -> Result<BftTaken, String> {
        let option = RPCOption::new(std::time::Duration::from_millis(BFT_CALL_TIMEOUT_MS));
        self.call_named(PeerRpcKind::BftMessages, request, &option)
            .await
    }

    /// BFT mode: asks this peer for the decision of a height.
    pub async fn bft_sync(&self, request: &BftSyncRequest) -> Result<BftSyncAnswer, String> {
        let option = RPCOption::new(std::time::Duration::from_millis(BFT_CALL_TIMEOUT_MS));
        self.call_named(PeerRpcKind::BftSync, request, &option)
            .await
    }

    /// [`PeerClient::call`] with its error as text naming the route and peer.
    async fn call_named<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: PeerRpcKind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, String> {
        self.call(kind, request, option)
            .await
            .map_err(|error| match error {
                CallError::Unreachable(m) | CallError::Network(m) | CallError::TooLarge(m) => {
                    format!("{} to peer {}: {m}", kind.path(), self.target)
                }
            })
    }

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
        let head = self.auth.sign_request(self.target, kind, &body);
        let response = self.post(kind, &head, body, option).await?;
        self.check_answer(response, &head.signature).await
    }

    async fn post(
        &self,
        kind: PeerRpcKind,
        head: &RequestHead,
        body: Vec<u8>,
        option: &RPCOption,
    ) -> Result<reqwest::Response, CallError> {
        let http = self
            .http
            .as_ref()
            .map_err(|e| CallError::Network(e.clone()))?;
        let mut request = http
            .post(format!("{}{}", self.url_base, kind.path()))
            .timeout(option.hard_ttl())
            .header(reqwest::header::CONTENT_TYPE, "application/cbor");
        for (name, value) in head.headers() {
            request = request.header(name, value);
        }
        request
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
        let message = format!("{} at {}: {}", self.url_base, self.address, chain(error));
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

type RpcResult<T, E = RaftError<SteleRaft>> = Result<T, RPCError<SteleRaft, E>>;

impl RaftNetwork<SteleRaft> for PeerClient {
    /// An AppendEntries; the log reader keeps one under the message limit
    /// (0.10 has no `PayloadTooLarge` retry with fewer entries).
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SteleRaft>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<SteleRaft>> {
        let kind = PeerRpcKind::Append;
        let result = self.call(kind, &rpc, &option).await;
        result.map_err(|e| e.into_rpc(kind, self.target))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<SteleRaft>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<SteleRaft>> {
        let kind = PeerRpcKind::Vote;
        let result = self.call(kind, &rpc, &option).await;
        result.map_err(|e| e.into_rpc(kind, self.target))
    }

    /// One snapshot chunk (the adapter's `full_snapshot` splits a snapshot
    /// into chunks and calls this), sent as a [`SnapshotChunk`].
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse, RaftError<SteleRaft, InstallSnapshotError>> {
        let kind = PeerRpcKind::Snapshot;
        let result = self.call(kind, &SnapshotChunk::from(rpc), &option).await;
        if result.is_err() {
            // openraft-legacy's chunk sender retries a failed chunk after 1 ms,
            // until the replication is cancelled (0.9's backed off, and gave
            // up after 5 failures): pace it, or a peer that is down costs a
            // chunk read and a connection attempt every millisecond.
            tokio::time::sleep(std::time::Duration::from_millis(SNAPSHOT_CHUNK_RETRY_MS)).await;
        }
        result.map_err(|e| e.into_rpc(kind, self.target))
    }

    /// The wait before retrying an unreachable peer: openraft 0.9's default
    /// (openraft-legacy's is 200 ms).
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(std::time::Duration::from_millis(
            PEER_BACKOFF_MS,
        )))
    }
}
