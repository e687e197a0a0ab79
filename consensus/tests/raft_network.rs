//! The authenticated peer transport: signatures over requests and responses, and
//! the client against the real peer router (`raft::network::router`, over a
//! test `PeerService`) on loopback (HTTPS with a self-signed certificate, as
//! nodes serve, and plain HTTP). Answers with a bad signature come from a
//! middleware that spoils the router's.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum_server::tls_rustls::RustlsConfig;
use ed25519_dalek::{SigningKey, VerifyingKey};
use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::Vote;
use openraft_legacy::network_v1::RaftNetwork;
use rustls::pki_types::PrivatePkcs8KeyDer;
use stele_consensus::raft::network::{
    decode_request, encode_response, now_ms, router, Partition, PeerAuth, PeerAuthError,
    PeerClient, PeerNetwork, PeerRpcKind, PeerService, RequestHead, HEADER_NONCE, HEADER_SIGNATURE,
    LEDGER_FETCHES_SERVED_MAX, PEER_MESSAGE_BYTES_MAX, PEER_REQUEST_WINDOW_MS,
};
use stele_consensus::raft::types::{
    log_id, InstallSnapshotRequest, InstallSnapshotResponse, LedgerFetch, LedgerFetched,
};
use stele_consensus::raft::SteleNode;
use stele_consensus::raft::SteleRaft;
use stele_consensus::sequencer::BoxFuture;
use stele_consensus::ConsensusError;

fn key(node: u64) -> SigningKey {
    SigningKey::from_bytes(&[node as u8; 32])
}

fn members() -> BTreeMap<u64, VerifyingKey> {
    (1..=3).map(|n| (n, key(n).verifying_key())).collect()
}

/// Node `node` of the cluster {1, 2, 3}.
fn auth(node: u64) -> PeerAuth {
    PeerAuth::new(node, key(node), members())
}

fn flip_hex(signature: &str) -> String {
    let mut bytes = hex::decode(signature).unwrap();
    bytes[10] ^= 1;
    hex::encode(bytes)
}

/// `head` with other fields, keeping its signature.
fn altered(head: &RequestHead, change: impl FnOnce(&mut RequestHead)) -> RequestHead {
    let mut head = head.clone();
    change(&mut head);
    head
}

#[test]
fn request_and_response_round_trip() {
    let (one, two) = (auth(1), auth(2));
    let body = b"a vote";
    let request = one.sign_request(2, PeerRpcKind::Vote, body);
    assert_eq!(request.signature.len(), 128);
    assert_eq!((request.from, request.to), (1, 2));
    two.verify_request(PeerRpcKind::Vote, &request, body)
        .unwrap();

    let response = two.sign_response(&request.signature, b"granted");
    one.verify_response(2, &request.signature, &response, b"granted")
        .unwrap();
}

#[test]
fn the_head_travels_in_headers() {
    let head = auth(1).sign_request(2, PeerRpcKind::Append, b"entries");
    let headers = head.headers();
    let parsed = RequestHead::from_headers(|name| {
        headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    })
    .unwrap();
    assert_eq!(parsed, head);
    let without_nonce =
        RequestHead::from_headers(|name| (name != HEADER_NONCE).then_some("1")).unwrap_err();
    assert_eq!(without_nonce, PeerAuthError::MissingHeader(HEADER_NONCE));
    assert_eq!(without_nonce.http_status(), 401);
}

#[test]
fn a_flipped_bit_is_refused() {
    let (one, two, three) = (auth(1), auth(2), auth(3));
    let body = b"entries".to_vec();
    let head = one.sign_request(2, PeerRpcKind::Append, &body);
    let mut flipped = body.clone();
    flipped[0] ^= 1;
    let kind = PeerRpcKind::Append;
    let bad = Err(PeerAuthError::BadSignature);

    assert_eq!(two.verify_request(kind, &head, &flipped), bad);
    let flipped_signature = altered(&head, |h| h.signature = flip_hex(&h.signature));
    assert_eq!(two.verify_request(kind, &flipped_signature, &body), bad);
    // `from` 1 -> 3: another member, whose key did not sign.
    assert_eq!(
        two.verify_request(kind, &altered(&head, |h| h.from = 3), &body),
        bad
    );
    // `to` 2 -> 3: refused by node 2 as misdirected, and by node 3 as forged.
    let to_three = altered(&head, |h| h.to = 3);
    assert!(matches!(
        two.verify_request(kind, &to_three, &body),
        Err(PeerAuthError::WrongRecipient {
            this: 2,
            addressed: 3
        })
    ));
    assert_eq!(three.verify_request(kind, &to_three, &body), bad);
    // The time and the nonce are signed.
    let later = altered(&head, |h| h.time_ms += 1);
    assert_eq!(two.verify_request(kind, &later, &body), bad);
    let other_nonce = altered(&head, |h| h.nonce ^= 1);
    assert_eq!(two.verify_request(kind, &other_nonce, &body), bad);
    // The route is signed too.
    assert_eq!(two.verify_request(PeerRpcKind::Vote, &head, &body), bad);
    // Nothing forged was accepted, so the genuine request still passes.
    two.verify_request(kind, &head, &body).unwrap();
}

#[test]
fn a_replayed_request_is_refused() {
    let (one, two) = (auth(1), auth(2));
    let kind = PeerRpcKind::Vote;
    let first = one.sign_request(2, kind, b"vote");
    two.verify_request(kind, &first, b"vote").unwrap();
    assert_eq!(
        two.verify_request(kind, &first, b"vote"),
        Err(PeerAuthError::Replayed {
            from: 1,
            nonce: first.nonce
        })
    );
    // Byte-identical bodies (openraft's read-index heartbeats) get distinct
    // heads, so distinct signatures, and distinct signed answers.
    let second = one.sign_request(2, kind, b"vote");
    assert_ne!(second.signature, first.signature);
    two.verify_request(kind, &second, b"vote").unwrap();
    assert_ne!(
        two.sign_response(&first.signature, b"granted"),
        two.sign_response(&second.signature, b"granted")
    );
    // Out of order is fine, as long as each arrives once.
    let (third, fourth) = (
        one.sign_request(2, kind, b"3"),
        one.sign_request(2, kind, b"4"),
    );
    two.verify_request(kind, &fourth, b"4").unwrap();
    two.verify_request(kind, &third, b"3").unwrap();
    assert!(two.verify_request(kind, &third, b"3").is_err());
    // Another node remembers on its own: a request to node 3 is its own.
    // (Started before the request is signed: a node refuses requests signed
    // before it started.)
    let three = auth(3);
    let to_three = one.sign_request(3, kind, b"vote");
    three.verify_request(kind, &to_three, b"vote").unwrap();
}

#[test]
fn a_request_outside_the_window_is_refused() {
    let (one, two) = (auth(1), auth(2));
    let kind = PeerRpcKind::Append;
    let now = now_ms();
    for time_ms in [
        now - PEER_REQUEST_WINDOW_MS - 1_000,
        now + PEER_REQUEST_WINDOW_MS + 1_000,
        // Before node 2 started: it cannot know whether it accepted it.
        now - 60_000,
    ] {
        let head = one.sign_request_at(2, kind, b"entries", time_ms, 7);
        let refusal = two.check_head(&head).unwrap_err();
        assert!(matches!(refusal, PeerAuthError::Stale { .. }), "{refusal}");
        assert_eq!(refusal.http_status(), 401);
        assert_eq!(two.verify_request(kind, &head, b"entries"), Err(refusal));
    }
    let head = one.sign_request_at(2, kind, b"entries", now_ms() + 1_000, 7);
    two.verify_request(kind, &head, b"entries").unwrap();
}

#[test]
fn the_replay_memory_is_bounded_and_stays_safe_when_full() {
    const REMEMBERED: u64 = 16;
    let one = auth(1);
    let two = auth(2).with_nonces_per_sender_max(REMEMBERED as usize);
    let kind = PeerRpcKind::Vote;
    let start = now_ms() + 1;
    // Two requests per millisecond, sent in order, for twice the memory.
    let heads: Vec<RequestHead> = (0..2 * REMEMBERED)
        .map(|i| one.sign_request_at(2, kind, b"", start + i / 2, i))
        .collect();
    for head in &heads {
        two.verify_request(kind, head, b"").unwrap();
    }
    // Every one refused again: the oldest were forgotten, but the floor rose
    // past them.
    for head in &heads {
        let refusal = two.verify_request(kind, head, b"").unwrap_err();
        assert!(
            matches!(
                refusal,
                PeerAuthError::Stale { .. } | PeerAuthError::Replayed { .. }
            ),
            "{refusal}"
        );
    }
    // A forgotten millisecond is closed, a remembered one is not.
    let late = one.sign_request_at(2, kind, b"", start, 1_000);
    assert!(matches!(
        two.verify_request(kind, &late, b""),
        Err(PeerAuthError::Stale { .. })
    ));
    let recent = one.sign_request_at(2, kind, b"", start + REMEMBERED - 1, 1_000);
    two.verify_request(kind, &recent, b"").unwrap();
}

#[test]
fn unknown_self_malformed_and_oversized_requests_are_refused() {
    let two = auth(2);
    let stranger = PeerAuth::new(9, key(9), members());
    let head = stranger.sign_request(2, PeerRpcKind::Vote, b"x");
    let err = two
        .verify_request(PeerRpcKind::Vote, &head, b"x")
        .unwrap_err();
    assert_eq!(err, PeerAuthError::UnknownPeer(9));
    assert_eq!(err.http_status(), 401);
    assert_eq!(two.check_head(&head), Err(err));

    let own = two.sign_request(2, PeerRpcKind::Vote, b"x");
    assert_eq!(
        two.verify_request(PeerRpcKind::Vote, &own, b"x"),
        Err(PeerAuthError::FromSelf(2))
    );

    let head = auth(1).sign_request(2, PeerRpcKind::Vote, b"x");
    let short = altered(&head, |h| h.signature.truncate(126));
    assert!(matches!(
        two.check_head(&short),
        Err(PeerAuthError::Malformed(_))
    ));
    let huge = vec![0; PEER_MESSAGE_BYTES_MAX + 1];
    let head = auth(1).sign_request(2, PeerRpcKind::Append, &huge);
    assert!(matches!(
        two.verify_request(PeerRpcKind::Append, &head, &huge),
        Err(PeerAuthError::TooLarge { .. })
    ));
}

#[test]
fn a_request_signed_by_a_non_member_key_is_refused() {
    // Claims to be node 1, but signs with a key nobody pinned.
    let impostor = PeerAuth::new(1, key(42), members());
    let two = auth(2);
    let head = impostor.sign_request(2, PeerRpcKind::Vote, b"vote for me");
    assert_eq!(
        two.verify_request(PeerRpcKind::Vote, &head, b"vote for me"),
        Err(PeerAuthError::BadSignature)
    );
}

#[test]
fn keys_follow_the_membership() {
    let two = auth(2);
    let four = PeerAuth::new(4, key(4), members());
    let from_four = four.sign_request(2, PeerRpcKind::Append, b"entries");
    assert_eq!(
        two.verify_request(PeerRpcKind::Append, &from_four, b"entries"),
        Err(PeerAuthError::UnknownPeer(4))
    );
    // Node 4 added, node 1 removed (and node 2's own key kept regardless).
    two.set_members(BTreeMap::from([
        (3, key(3).verifying_key()),
        (4, key(4).verifying_key()),
    ]));
    two.verify_request(PeerRpcKind::Append, &from_four, b"entries")
        .unwrap();
    let from_one = auth(1).sign_request(2, PeerRpcKind::Vote, b"vote");
    assert_eq!(
        two.verify_request(PeerRpcKind::Vote, &from_one, b"vote"),
        Err(PeerAuthError::UnknownPeer(1))
    );
    assert!(two.members().contains_key(&2));
}

#[test]
fn a_response_is_bound_to_its_request_and_responder() {
    let (one, two, three) = (auth(1), auth(2), auth(3));
    let first = one.sign_request(2, PeerRpcKind::Vote, b"term 5").signature;
    let second = one.sign_request(2, PeerRpcKind::Vote, b"term 6").signature;
    let answer = two.sign_response(&first, b"granted");

    one.verify_response(2, &first, &answer, b"granted").unwrap();
    let bad = Err(PeerAuthError::BadSignature);
    assert_eq!(one.verify_response(2, &second, &answer, b"granted"), bad);
    assert_eq!(one.verify_response(2, &first, &answer, b"refused"), bad);
    // Signed by node 3: a valid signature, but not node 2's.
    let other = three.sign_response(&first, b"granted");
    assert_eq!(one.verify_response(2, &first, &other, b"granted"), bad);
}

#[test]
fn decode_request_checks_before_decoding() {
    let (one, two) = (auth(1), auth(2));
    let request = VoteRequest::new(Vote::new(5, 1), Some(log_id(4, 9)));
    let mut body = Vec::new();
    ciborium::into_writer(&request, &mut body).unwrap();
    let head = one.sign_request(2, PeerRpcKind::Vote, &body);
    let forged = decode_request::<VoteRequest<SteleRaft>>(
        &two,
        PeerRpcKind::Vote,
        &altered(&head, |h| h.from = 3),
        &body,
    );
    assert_eq!(forged, Err(PeerAuthError::BadSignature));
    let got: VoteRequest<SteleRaft> =
        decode_request(&two, PeerRpcKind::Vote, &head, &body).unwrap();
    assert_eq!(got, request);

    let (answer, answer_sig) = encode_response(
        &two,
        &head.signature,
        &VoteResponse::<SteleRaft>::new(Vote::new(5, 1), None, true),
    );
    one.verify_response(2, &head.signature, &answer_sig, &answer)
        .unwrap();
}

/// How the test server answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Honest,
    /// Signs its answers with node 3's key (a middleware re-signs them).
    WrongSigner,
    /// Its answers carry no signature (a middleware removes it).
    Unsigned,
    /// Its RPC handlers take 30 s.
    Slow,
}

/// Node 2's RPC handlers behind the real peer router: votes are granted,
/// appends succeed.
struct Service {
    auth: PeerAuth,
    partition: Partition,
    slow: bool,
    /// RPCs that reached the handlers (authenticated by the router).
    handled: AtomicUsize,
    /// Ledger fetches wait for a permit here before they answer.
    fetch_hold: tokio::sync::Semaphore,
    /// Ledger fetches that reached the handler.
    fetches: AtomicUsize,
}

impl Service {
    async fn handle<T>(&self, answer: T) -> Result<T, ConsensusError> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        if self.slow {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(answer)
    }
}

impl PeerService for Service {
    fn auth(&self) -> &PeerAuth {
        &self.auth
    }

    fn partition(&self) -> &Partition {
        &self.partition
    }

    fn append(
        &self,
        _rpc: AppendEntriesRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<SteleRaft>, ConsensusError>> {
        Box::pin(self.handle(AppendEntriesResponse::Success))
    }

    fn vote(
        &self,
        _rpc: VoteRequest<SteleRaft>,
    ) -> BoxFuture<'_, Result<VoteResponse<SteleRaft>, ConsensusError>> {
        Box::pin(self.handle(granted()))
    }

    fn snapshot(
        &self,
        rpc: InstallSnapshotRequest,
    ) -> BoxFuture<'_, Result<InstallSnapshotResponse, ConsensusError>> {
        Box::pin(self.handle(InstallSnapshotResponse { vote: rpc.vote }))
    }

    /// Answers once a permit is released, with no batch from `from_seqno`
    /// on (what a node that does not hold them answers).
    fn fetch(&self, rpc: LedgerFetch) -> BoxFuture<'_, Result<LedgerFetched, ConsensusError>> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let _permit = self.fetch_hold.acquire().await;
            assert!(rpc.from_seqno <= rpc.through_seqno);
            self.handle(LedgerFetched {
                batches: Vec::new(),
            })
            .await
        })
    }
}

/// Node 2's server: the node's peer router over [`Service`], wrapped in
/// [`tamper`].
struct Server {
    service: Arc<Service>,
    mode: Mode,
    /// Requests that reached the server (answered by the router or not).
    requests: AtomicUsize,
}

fn granted() -> VoteResponse<SteleRaft> {
    VoteResponse::new(Vote::new(7, 1), None, true)
}

/// Counts the requests, and spoils the signature of the router's answer as
/// the server's mode says.
async fn tamper(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let request_signature = request
        .headers()
        .get(HEADER_SIGNATURE)
        .map(|value| value.to_str().unwrap().to_owned());
    let mut response = next.run(request).await;
    match server.mode {
        Mode::Honest | Mode::Slow => response,
        Mode::Unsigned => {
            response.headers_mut().remove(HEADER_SIGNATURE).unwrap();
            response
        }
        Mode::WrongSigner => {
            let (mut parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let signature = auth(3).sign_response(&request_signature.unwrap(), &body);
            let old = parts
                .headers
                .insert(HEADER_SIGNATURE, HeaderValue::from_str(&signature).unwrap());
            assert!(old.is_some(), "the router signed its answer");
            Response::from_parts(parts, Body::from(body))
        }
    }
}

/// How the test server listens.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Plain,
    /// HTTPS with a certificate of node 2's key, as a node serves its peers.
    NodeKey,
    /// HTTPS with a certificate of another Ed25519 key.
    OtherNodeKey,
    /// HTTPS with a fresh ECDSA certificate, as a node serves its clients.
    ClientCert,
}

/// PKCS#8 v1 (RFC 8410) of the Ed25519 key `key`.
fn ed25519_pkcs8(key: &SigningKey) -> Vec<u8> {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&key.to_bytes());
    der
}

/// A rustls configuration serving a self-signed certificate for `key_pair`.
fn self_signed(key_pair: &rcgen::KeyPair) -> RustlsConfig {
    let params = rcgen::CertificateParams::new(vec!["node-2.peer.stele".to_owned()]).unwrap();
    let cert = params.self_signed(key_pair).unwrap();
    let key = PrivatePkcs8KeyDer::from(key_pair.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key.into())
        .unwrap();
    RustlsConfig::from_config(Arc::new(config))
}

/// Node 2's server on loopback.
async fn serve_with(mode: Mode, transport: Transport) -> (SocketAddr, Arc<Server>) {
    let service = Arc::new(Service {
        auth: auth(2),
        partition: Partition::default(),
        slow: mode == Mode::Slow,
        handled: AtomicUsize::new(0),
        fetch_hold: tokio::sync::Semaphore::new(0),
        fetches: AtomicUsize::new(0),
    });
    let server = Arc::new(Server {
        service: Arc::clone(&service),
        mode,
        requests: AtomicUsize::new(0),
    });
    let app = router(service)
        .layer(middleware::from_fn_with_state(Arc::clone(&server), tamper))
        .into_make_service();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let key_pair = match transport {
        Transport::Plain => {
            tokio::spawn(axum_server::from_tcp(listener).serve(app));
            return (addr, server);
        }
        Transport::NodeKey => rcgen::KeyPair::try_from(ed25519_pkcs8(&key(2)).as_slice()),
        Transport::OtherNodeKey => rcgen::KeyPair::try_from(ed25519_pkcs8(&key(7)).as_slice()),
        Transport::ClientCert => rcgen::KeyPair::generate(),
    };
    let tls = self_signed(&key_pair.unwrap());
    tokio::spawn(axum_server::from_tcp_rustls(listener, tls).serve(app));
    (addr, server)
}

async fn serve(mode: Mode) -> (SocketAddr, Arc<Server>) {
    serve_with(mode, Transport::NodeKey).await
}

/// The RPCs the server's handlers got.
fn handled(server: &Server) -> usize {
    server.service.handled.load(Ordering::SeqCst)
}

/// Node `from`'s client of node 2 at `addr`, over HTTPS or plain HTTP.
async fn client_with(
    from: PeerAuth,
    addr: SocketAddr,
    partition: Partition,
    tls: bool,
) -> PeerClient {
    let mut network = PeerNetwork::new(Arc::new(from), partition).unwrap();
    if !tls {
        network = network.with_plain_http();
    }
    network.peer_client(
        2,
        &SteleNode::new(addr.to_string(), &key(2).verifying_key()),
    )
}

async fn client(from: PeerAuth, addr: SocketAddr, partition: Partition) -> PeerClient {
    client_with(from, addr, partition, true).await
}

fn vote_request() -> VoteRequest<SteleRaft> {
    VoteRequest::new(Vote::new(7, 1), None)
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(5))
}

#[tokio::test]
async fn a_vote_and_an_append_cross_the_network() {
    for transport in [Transport::NodeKey, Transport::Plain] {
        let (addr, server) = serve_with(Mode::Honest, transport).await;
        let tls = transport != Transport::Plain;
        let mut peer = client_with(auth(1), addr, Partition::default(), tls).await;
        assert_eq!(
            peer.vote(vote_request(), option()).await.unwrap(),
            granted()
        );

        let heartbeat = AppendEntriesRequest::<SteleRaft> {
            vote: Vote::new_committed(7, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        };
        let answer = peer.append_entries(heartbeat, option()).await.unwrap();
        assert_eq!(answer, AppendEntriesResponse::Success);
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);
        assert_eq!(handled(&server), 2);
    }
}

#[tokio::test]
async fn ledger_fetches_cross_the_network_and_only_so_many_are_answered_at_once() {
    let (addr, server) = serve(Mode::Honest).await;
    let request = LedgerFetch {
        from_seqno: 1,
        through_seqno: 10,
    };
    // One sender (its nonces are unique), several connections.
    let network = PeerNetwork::new(Arc::new(auth(1)), Partition::default()).unwrap();
    let node = SteleNode::new(addr.to_string(), &key(2).verifying_key());
    let mut waiting = Vec::new();
    for _ in 0..LEDGER_FETCHES_SERVED_MAX {
        let peer = network.peer_client(2, &node);
        waiting.push(tokio::spawn(
            async move { peer.fetch_ledger(request).await },
        ));
    }
    // Until the ones in flight are answered, one more is refused at once.
    let peer = network.peer_client(2, &node);
    while server.service.fetches.load(Ordering::SeqCst) < LEDGER_FETCHES_SERVED_MAX {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let busy = peer.fetch_ledger(request).await.unwrap_err();
    assert!(busy.contains("503") && busy.contains("at most"), "{busy}");
    server
        .service
        .fetch_hold
        .add_permits(LEDGER_FETCHES_SERVED_MAX + 1);
    for fetch in waiting {
        assert!(fetch.await.unwrap().unwrap().batches.is_empty());
    }
    assert!(peer.fetch_ledger(request).await.is_ok());
    // A fetch signed by a non-member is refused before any handler.
    let before = handled(&server);
    let stranger = PeerAuth::new(9, key(9), members());
    let refused = client(stranger, addr, Partition::default())
        .await
        .fetch_ledger(request)
        .await
        .unwrap_err();
    assert!(refused.contains("401"), "{refused}");
    assert_eq!(handled(&server), before);
}

#[tokio::test]
async fn a_partitioned_peer_is_unreachable_and_sees_nothing() {
    let (addr, server) = serve(Mode::Honest).await;
    let partition = Partition::default();
    let mut peer = client(auth(1), addr, partition.clone()).await;
    partition.set(BTreeSet::from([2]));
    assert_eq!(partition.blocked(), BTreeSet::from([2]));

    let err = peer.vote(vote_request(), option()).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);

    // Healing the partition restores traffic.
    partition.set(BTreeSet::new());
    peer.vote(vote_request(), option()).await.unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_badly_signed_answer_is_an_error() {
    for (mode, expected) in [
        (Mode::WrongSigner, "signature does not verify"),
        (Mode::Unsigned, "malformed"),
    ] {
        let (addr, server) = serve(mode).await;
        let mut peer = client(auth(1), addr, Partition::default()).await;
        let err = peer.vote(vote_request(), option()).await.unwrap_err();
        assert!(matches!(err, RPCError::Network(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
        // The request passed: only its answer was spoiled.
        assert_eq!(handled(&server), 1);
    }
}

#[tokio::test]
async fn a_refused_request_reports_the_servers_message() {
    let (addr, _server) = serve(Mode::Honest).await;
    // Node 9 pins the cluster's keys, but the cluster does not pin node 9's.
    let mut peer = client(
        PeerAuth::new(9, key(9), members()),
        addr,
        Partition::default(),
    )
    .await;
    let err = peer.vote(vote_request(), option()).await.unwrap_err();
    assert!(matches!(err, RPCError::Network(_)), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert!(err.to_string().contains("node 9 is not a member"), "{err}");
}

#[tokio::test]
async fn no_listener_or_no_answer_in_time_is_unreachable() {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let mut peer = client(auth(1), closed, Partition::default()).await;
    let err = peer.vote(vote_request(), option()).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");

    let (addr, server) = serve(Mode::Slow).await;
    let mut peer = client(auth(1), addr, Partition::default()).await;
    let short = RPCOption::new(Duration::from_millis(300));
    let err = peer.vote(vote_request(), short).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(handled(&server), 1);
}

#[tokio::test]
async fn a_peer_serving_a_certificate_of_another_key_is_refused() {
    for transport in [Transport::OtherNodeKey, Transport::ClientCert] {
        let (addr, server) = serve_with(Mode::Honest, transport).await;
        let mut peer = client(auth(1), addr, Partition::default()).await;
        let err = peer.vote(vote_request(), option()).await.unwrap_err();
        // Refused in the TLS handshake: the client's own check (another
        // Ed25519 key), or no certificate the client accepts at all (ECDSA).
        assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
        assert!(
            err.to_string().contains("certificate") || err.to_string().contains("Handshake"),
            "{err}"
        );
        assert_eq!(
            server.requests.load(Ordering::SeqCst),
            0,
            "nothing may reach a server that does not hold node 2's key"
        );
    }
}

/// Over plain TCP to `addr`: sends `head` alone (a request whose body is never
/// sent) and reads the answer to the end, which must come (the server closing
/// the connection) within 10 s.
async fn answer_to_head(addr: SocketAddr, head: String) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .unwrap_or_else(|error| panic!("no answer and close from the head alone: {error}"));
        String::from_utf8(answer).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_refused_head_is_answered_before_its_body() {
    let (addr, server) = serve_with(Mode::Honest, Transport::Plain).await;
    // The server drops node 3's traffic.
    server.service.partition.set(BTreeSet::from([3]));
    let signed = |by: PeerAuth| {
        let head = by.sign_request(2, PeerRpcKind::Append, b"entries");
        let lines: String = head
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        lines
    };
    let length = |bytes: usize| format!("Content-Length: {bytes}\r\n");
    let stranger = PeerAuth::new(9, key(9), members());
    let cases = [
        (
            "from a non-member",
            signed(stranger) + &length(1 << 20),
            "401",
            "unknown_peer",
        ),
        (
            "from a partitioned member",
            signed(auth(3)) + &length(1 << 20),
            "503",
            "Partitioned",
        ),
        (
            "over the size limit",
            signed(auth(1)) + &length(PEER_MESSAGE_BYTES_MAX + 1),
            "413",
            "too_large",
        ),
        (
            "without a Content-Length",
            signed(auth(1)) + "Transfer-Encoding: chunked\r\n",
            "411",
            "LengthRequired",
        ),
    ];
    for (name, headers, status, code) in cases {
        let head = format!(
            "POST /raft/append HTTP/1.1\r\nHost: node-2\r\nContent-Type: application/cbor\r\n\
             {headers}\r\n"
        );
        let answer = answer_to_head(addr, head).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("http/1.1 {status} ")),
            "{name}: {answer}"
        );
        // The server, not the client, asks for the close: the body it did not
        // read cannot follow on this connection.
        assert!(head.contains("\r\nconnection: close"), "{name}: {answer}");
        assert!(
            body.contains(&format!(r#""code":"{code}""#)),
            "{name}: {answer}"
        );
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 4);
    assert_eq!(
        handled(&server),
        0,
        "no refused request reaches an RPC handler"
    );
}
