//! The authenticated peer transport: signatures over requests and responses, and
//! the client against a real server on loopback (HTTPS with a self-signed
//! certificate, as nodes serve, and plain HTTP).

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use ed25519_dalek::{SigningKey, VerifyingKey};
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::{LogId, Vote};
use rustls::pki_types::PrivatePkcs8KeyDer;
use stele_consensus::raft::network::{
    decode_request, encode_response, now_ms, Partition, PeerAuth, PeerAuthError, PeerClient,
    PeerNetwork, PeerRpcKind, RequestHead, HEADER_NONCE, HEADER_SIGNATURE, PEER_MESSAGE_BYTES_MAX,
    PEER_REQUEST_WINDOW_MS,
};
use stele_consensus::raft::SteleNode;
use stele_consensus::raft::SteleRaft;

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
    let request = VoteRequest::new(
        Vote::new(5, 1),
        Some(LogId::new(openraft::CommittedLeaderId::new(4, 1), 9)),
    );
    let mut body = Vec::new();
    ciborium::into_writer(&request, &mut body).unwrap();
    let head = one.sign_request(2, PeerRpcKind::Vote, &body);
    let forged = decode_request::<VoteRequest<u64>>(
        &two,
        PeerRpcKind::Vote,
        &altered(&head, |h| h.from = 3),
        &body,
    );
    assert_eq!(forged, Err(PeerAuthError::BadSignature));
    let got: VoteRequest<u64> = decode_request(&two, PeerRpcKind::Vote, &head, &body).unwrap();
    assert_eq!(got, request);

    let (answer, answer_sig) = encode_response(
        &two,
        &head.signature,
        &VoteResponse::new(Vote::new(5, 1), None, true),
    );
    one.verify_response(2, &head.signature, &answer_sig, &answer)
        .unwrap();
}

/// How the test server answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Honest,
    /// Signs its answers with node 3's key.
    WrongSigner,
    Unsigned,
    Slow,
}

struct Server {
    auth: PeerAuth,
    mode: Mode,
    requests: AtomicUsize,
}

fn granted() -> VoteResponse<u64> {
    VoteResponse::new(Vote::new(7, 1), None, true)
}

fn refuse(e: PeerAuthError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap();
    let body = format!(r#"{{"error":{{"code":"{}","message":"{e}"}}}}"#, e.code());
    (status, body).into_response()
}

/// A `/raft/{kind}` route as the node's router would wire it.
async fn raft_route(
    State(server): State<Arc<Server>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    if server.mode == Mode::Slow {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let kind = PeerRpcKind::from_path_segment(&kind).unwrap();
    let head = match RequestHead::from_headers(|name| headers.get(name)?.to_str().ok()) {
        Ok(head) => head,
        Err(e) => return refuse(e),
    };
    let sig = head.signature.as_str();
    let (answer, answer_sig) = match kind {
        PeerRpcKind::Vote => {
            match decode_request::<VoteRequest<u64>>(&server.auth, kind, &head, &body) {
                Ok(_) => encode_response(&server.auth, sig, &granted()),
                Err(e) => return refuse(e),
            }
        }
        PeerRpcKind::Append => match decode_request::<AppendEntriesRequest<SteleRaft>>(
            &server.auth,
            kind,
            &head,
            &body,
        ) {
            Ok(_) => encode_response(&server.auth, sig, &AppendEntriesResponse::<u64>::Success),
            Err(e) => return refuse(e),
        },
        PeerRpcKind::Snapshot => return StatusCode::NOT_FOUND.into_response(),
    };
    let answer_sig = match server.mode {
        Mode::WrongSigner => auth(3).sign_response(sig, &answer),
        Mode::Unsigned => return (StatusCode::OK, answer).into_response(),
        Mode::Honest | Mode::Slow => answer_sig,
    };
    (StatusCode::OK, [(HEADER_SIGNATURE, answer_sig)], answer).into_response()
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
    let server = Arc::new(Server {
        auth: auth(2),
        mode,
        requests: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/raft/{kind}", axum::routing::post(raft_route))
        .with_state(Arc::clone(&server))
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
    network
        .new_client(
            2,
            &SteleNode::new(addr.to_string(), &key(2).verifying_key()),
        )
        .await
}

async fn client(from: PeerAuth, addr: SocketAddr, partition: Partition) -> PeerClient {
    client_with(from, addr, partition, true).await
}

fn vote_request() -> VoteRequest<u64> {
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
    }
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
