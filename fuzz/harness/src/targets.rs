//! One function per decoder of outside bytes. Each returns whether its input
//! was accepted; a panic (or, under libFuzzer, an oversized allocation) is the
//! failure. Where a decoder documents an invariant of what it accepts (for
//! example "`from_bytes(b)?.to_bytes() == b`"), the target asserts it.

use std::fs::File;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use axum::extract::FromRequestParts;
use sha2::{Digest as _, Sha256};
use stele_api::extract::{parse_transaction_id, quote, QueryParams};
use stele_consensus::openraft::raft::{AppendEntriesRequest, VoteRequest};
use stele_consensus::raft::network::{decode_request, PeerAuth, PeerRpcKind};
use stele_consensus::raft::transfer::TransferReader;
use stele_consensus::raft::types::{
    BftMessages, BftSyncAnswer, BftSyncRequest, LedgerFetch, LedgerFetched, SnapshotChunk,
};
use stele_consensus::raft::SteleRaft;
use stele_consensus::ServiceIdentity;
use stele_frontends::{Command, LoggingCommand, SmallBankCommand, Transaction};
use stele_history::proof::{verify_consistency, verify_inclusion};
use stele_history::{
    Checkpoint, CommitEvidence, Digest, NoteVerifier, Receipt, SigningKey, TransactionId,
    VerifyingKey,
};
use stele_kv::{Snapshot, Store, WriteSet};
use stele_ledger::chunk::ChunkName;
use stele_ledger::frame::{check_header, checksum, Frames, CHUNK_HEADER_BYTES, FRAME_HEADER_BYTES};
use stele_ledger::{verify_ledger, Entry, Ledger, LedgerConfig};

use crate::scratch;

/// The checkpoint origin of the service whose notes, receipts and snapshots
/// the seeds hold.
pub const ORIGIN: &str = "fuzz.stele.example/ledger";

/// The service's signing key (fixed: seeds and targets must agree on it).
pub fn service_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5e; 32])
}

/// The service identity of [`service_key`].
pub fn identity() -> &'static ServiceIdentity {
    static IDENTITY: OnceLock<ServiceIdentity> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        ServiceIdentity::new(ORIGIN, service_key(), [0x3c; 32])
            .expect("the fuzz origin is a valid note name")
    })
}

/// Node ids and keys of the two peers of [`peer_message`]: node 1 sends to
/// node 2.
pub const PEER_SENDER: u64 = 1;
/// See [`PEER_SENDER`].
pub const PEER_RECEIVER: u64 = 2;

fn peer_key(node: u64) -> SigningKey {
    SigningKey::from_bytes(&[0x40 + node as u8; 32])
}

fn peer_auth(node: u64) -> PeerAuth {
    let members = [PEER_SENDER, PEER_RECEIVER]
        .into_iter()
        .map(|member| (member, peer_key(member).verifying_key()))
        .collect();
    PeerAuth::new(node, peer_key(node), members)
}

/// The peer kinds, by the first byte of a [`peer_message`] input.
pub const PEER_KINDS: [PeerRpcKind; 6] = [
    PeerRpcKind::Append,
    PeerRpcKind::Vote,
    PeerRpcKind::Snapshot,
    PeerRpcKind::Fetch,
    PeerRpcKind::BftMessages,
    PeerRpcKind::BftSync,
];

/// A ledger chunk file: framed in memory as recovery and the verifier scan
/// it, then written as the open chunk `ledger_1` of a folder that `stele
/// verify` checks and [`Ledger::open`] recovers; then again with every
/// frame's checksum made right, so that mutated entries get past the CRC to
/// the decoding and checks behind it. Accepted: it verifies as given.
pub fn ledger_chunk(data: &[u8]) -> bool {
    if check_header(data).is_ok() {
        for frame in Frames::new(data) {
            match frame {
                Ok(frame) => {
                    if let Ok(Entry::Batch(batch)) = Entry::decode(frame.payload) {
                        let _ = batch.check_shape();
                    }
                }
                Err(error) => {
                    let _ = error.is_torn_tail(data);
                }
            }
        }
    }
    let accepted = ledger_files(data);
    let mut fixed = data.to_vec();
    fix_frame_checksums(&mut fixed, CHUNK_HEADER_BYTES as usize);
    if fixed != data {
        ledger_files(&fixed);
    }
    accepted
}

/// `stele verify` and recovery of a ledger whose only chunk holds `data`.
fn ledger_files(data: &[u8]) -> bool {
    let dir = scratch::empty_dir("ledger");
    std::fs::write(dir.join(ChunkName::open(1).file_name()), data)
        .expect("writing to the scratch folder");
    let verified = verify_ledger(&dir, None, &mut |_| {}).is_ok();
    let opened = Ledger::open(&dir, LedgerConfig::default()).is_ok();
    assert!(opened || !verified, "a ledger that verifies must open");
    verified
}

/// Rewrites the checksum of every whole frame of `bytes` from `start` on, as
/// its length field delimits them.
fn fix_frame_checksums(bytes: &mut [u8], start: usize) {
    let mut position = start;
    while let Some(header) = bytes.get(position..position + FRAME_HEADER_BYTES) {
        let length: [u8; 4] = header[..4].try_into().expect("4 of 8 bytes");
        let end = position + FRAME_HEADER_BYTES + u32::from_be_bytes(length) as usize;
        let Some(payload) = bytes.get(position + FRAME_HEADER_BYTES..end) else {
            return;
        };
        let sum = checksum(length, payload).to_be_bytes();
        bytes[position + 4..position + FRAME_HEADER_BYTES].copy_from_slice(&sum);
        position = end;
    }
}

/// One ledger entry (a frame's payload): decoded, its shape checked, its write
/// sets parsed; what decodes must encode to something that decodes the same.
pub fn ledger_entry(data: &[u8]) -> bool {
    let Ok(entry) = Entry::decode(data) else {
        return false;
    };
    if let Entry::Batch(batch) = &entry {
        let _ = batch.check_shape();
        for tx in &batch.txs {
            let _ = WriteSet::from_canonical_bytes(&tx.write_set);
            let _ = tx.leaf_hash(batch.leaf_format);
        }
    }
    assert_eq!(
        Entry::decode(&entry.encode()).as_ref(),
        Ok(&entry),
        "an entry must survive encoding"
    );
    true
}

/// A Raft snapshot transfer file as a follower receives it: header, KV state,
/// then batches to the end; then again with the state's digest and the
/// frames' checksums made right, so that mutations reach the decoding behind
/// them. Accepted: read whole as given, with as many batches as the header
/// announces.
pub fn raft_transfer(data: &[u8]) -> bool {
    let accepted = transfer_file(data);
    let mut fixed = data.to_vec();
    fix_transfer_checks(&mut fixed);
    if fixed != data {
        transfer_file(&fixed);
    }
    accepted
}

fn transfer_file(data: &[u8]) -> bool {
    let dir = scratch::empty_dir("transfer");
    let path = dir.join("receiving.incoming");
    std::fs::write(&path, data).expect("writing to the scratch folder");
    let file = File::open(&path).expect("the file just written");
    let Ok((mut reader, header)) = TransferReader::open(file, &path) else {
        return false;
    };
    let _ = header.meta();
    if reader.state().is_err() {
        return false;
    }
    let mut batches = 0;
    loop {
        match reader.next_batch() {
            Ok(Some(_)) => batches += 1,
            Ok(None) => return batches == header.batches,
            Err(_) => return false,
        }
    }
}

/// Rewrites the SHA-256 trailer of a transfer's state and the checksums of
/// the frames after it, where the length fields delimit them.
fn fix_transfer_checks(bytes: &mut [u8]) {
    let Some(header_length) = bytes.get(8..12) else {
        return;
    };
    let header_end = 12 + u32::from_be_bytes(header_length.try_into().expect("4 bytes")) as usize;
    let Some(state_length) = bytes.get(header_end..header_end + 8) else {
        return;
    };
    let state_start = header_end + 8;
    let state_length = u64::from_be_bytes(state_length.try_into().expect("8 bytes"));
    let Some(state_end) = usize::try_from(state_length)
        .ok()
        .and_then(|length| state_start.checked_add(length))
        .filter(|&end| end <= bytes.len())
    else {
        return;
    };
    if let Some(digest_start) = state_end.checked_sub(32).filter(|&at| at >= state_start) {
        let digest = Sha256::digest(&bytes[state_start..digest_start]);
        bytes[digest_start..state_end].copy_from_slice(&digest);
    }
    fix_frame_checksums(bytes, state_end);
}

/// A KV snapshot: as given (its digest checked), and with its trailing digest
/// replaced by the right one, so that mutations reach the parser behind the
/// digest. What parses must encode back to the same bytes (documented).
pub fn kv_snapshot(data: &[u8]) -> bool {
    let accepted = kv_snapshot_exact(data);
    if let Some(body) = data.len().checked_sub(32).map(|len| &data[..len]) {
        let mut fixed = body.to_vec();
        fixed.extend_from_slice(&Sha256::digest(body));
        kv_snapshot_exact(&fixed);
    }
    accepted
}

fn kv_snapshot_exact(data: &[u8]) -> bool {
    let Ok(snapshot) = Snapshot::from_bytes(data) else {
        return false;
    };
    assert_eq!(snapshot.to_bytes(), data, "from_bytes(b)?.to_bytes() == b");
    let _ = Store::from_snapshot(snapshot);
    true
}

/// A write set's canonical encoding (ledger records carry it): what parses
/// must encode back to the same bytes (documented).
pub fn write_set(data: &[u8]) -> bool {
    let Ok(write_set) = WriteSet::from_canonical_bytes(data) else {
        return false;
    };
    assert_eq!(
        write_set.canonical_bytes(),
        data,
        "from_canonical_bytes(b)?.canonical_bytes() == b"
    );
    true
}

/// A KV snapshot file (`snapshot_<seqno>`) loaded against the service key.
pub fn snapshot_file(data: &[u8]) -> bool {
    let dir = scratch::empty_dir("snapshot");
    let path = dir.join("snapshot_1");
    std::fs::write(&path, data).expect("writing to the scratch folder");
    stele_consensus::snapshot::load(&path, identity()).is_ok()
}

/// A peer request from a member: the first byte picks the RPC
/// ([`PEER_KINDS`]), the rest is the body, signed by the sender so that the
/// receiver decodes it (a member's messages are authenticated, not trusted).
pub fn peer_message(data: &[u8]) -> bool {
    static AUTH: OnceLock<(PeerAuth, PeerAuth)> = OnceLock::new();
    let (sender, receiver) =
        AUTH.get_or_init(|| (peer_auth(PEER_SENDER), peer_auth(PEER_RECEIVER)));
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let kind = PEER_KINDS[usize::from(selector) % PEER_KINDS.len()];
    // A fresh time and nonce each call: the receiver's replay memory never
    // refuses a fuzz input for having been seen.
    let head = sender.sign_request(PEER_RECEIVER, kind, body);
    match kind {
        PeerRpcKind::Append => {
            decode_request::<AppendEntriesRequest<SteleRaft>>(receiver, kind, &head, body).is_ok()
        }
        PeerRpcKind::Vote => {
            decode_request::<VoteRequest<SteleRaft>>(receiver, kind, &head, body).is_ok()
        }
        PeerRpcKind::Snapshot => {
            decode_request::<SnapshotChunk>(receiver, kind, &head, body).is_ok()
        }
        PeerRpcKind::Fetch => {
            // The request, and the same bytes as a member's answer to one
            // (the batches in it are checked after decoding, `fetch.rs`).
            let answer = ciborium::from_reader::<LedgerFetched, _>(body).is_ok();
            decode_request::<LedgerFetch>(receiver, kind, &head, body).is_ok() || answer
        }
        PeerRpcKind::BftMessages => {
            // Each message of a decoded request is decoded as the node does.
            decode_request::<BftMessages>(receiver, kind, &head, body).is_ok_and(|request| {
                request
                    .messages
                    .iter()
                    .all(|bytes| stele_bft::Message::decode(bytes).is_ok())
            })
        }
        PeerRpcKind::BftSync => {
            // The request, and the same bytes as a peer's answer, whose
            // decision is decoded as the node does.
            let answer = ciborium::from_reader::<BftSyncAnswer, _>(body).is_ok_and(|answer| {
                answer
                    .decision
                    .is_none_or(|bytes| stele_bft::Decision::decode(&bytes).is_ok())
            });
            decode_request::<BftSyncRequest>(receiver, kind, &head, body).is_ok() || answer
        }
    }
}

/// A command as a client submits it (JSON) and as a replica reads it from a
/// ledger record (CBOR); whatever decodes is executed on a small bank, and
/// must not break its declared key set. Accepted: valid JSON command.
pub fn command(data: &[u8]) -> bool {
    let from_json = Command::from_json(data);
    let _ = Transaction::from_json(data);
    let from_cbor = ciborium::from_reader::<Command, _>(data);
    for command in [from_json.as_ref().ok(), from_cbor.as_ref().ok()]
        .into_iter()
        .flatten()
    {
        let keys = command.key_set();
        command
            .execute_declared(bank(), &keys)
            .expect("a command touches only its declared keys");
    }
    from_json.is_ok()
}

/// Accounts 0..4 (one with a balance near `i64::MAX`), and logging message 1.
fn bank() -> &'static Store {
    static BANK: OnceLock<Store> = OnceLock::new();
    BANK.get_or_init(|| {
        let mut store = Store::new();
        let setup = [
            Command::SmallBank(SmallBankCommand::CreateAccounts {
                first_account: 0,
                count: 3,
                checking_cents: 10_000,
                savings_cents: 5_000,
            }),
            Command::SmallBank(SmallBankCommand::CreateAccount {
                account: 3,
                checking_cents: i64::MAX - 10,
                savings_cents: i64::MAX - 10,
            }),
            Command::Logging(LoggingCommand::Record {
                id: 1,
                message: "hello".to_owned(),
            }),
        ];
        for (version, command) in (1..).zip(setup) {
            let execution = command
                .execute(&store)
                .expect("the setup commands are valid");
            store
                .apply(version, &execution.write_set)
                .expect("versions follow each other");
        }
        store
    })
}

/// A receipt as an auditor receives it (JSON), verified against the service
/// key. Accepted: it verifies.
pub fn receipt(data: &[u8]) -> bool {
    let Ok(receipt) = serde_json::from_slice::<Receipt>(data) else {
        return false;
    };
    receipt.verify(&service_key().verifying_key()).is_ok()
}

/// Text an auditor or a peer hands over: a signed checkpoint note (opened with
/// the service key), a C2SP verifier key, a checkpoint body, a transaction id
/// or commit evidence. Accepted: any of them parses.
pub fn note(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let key: VerifyingKey = service_key().verifying_key();
    let checkpoint = Checkpoint::open_with_key(text, &key).is_ok();
    let verifier = NoteVerifier::from_verifier_key(text)
        .map(|verifier| verifier.to_verifier_key() == text)
        .is_ok();
    let body = Checkpoint::parse_body(text).is_ok();
    let id = text
        .parse::<TransactionId>()
        .map(|id| assert_eq!(id.to_string(), text, "one spelling per id"))
        .is_ok();
    let evidence = text
        .parse::<CommitEvidence>()
        .map(|evidence| assert_eq!(evidence.to_string(), text, "one spelling"))
        .is_ok();
    checkpoint || verifier || body || id || evidence
}

/// An RFC 9162 proof as an auditor checks it: byte 0 picks inclusion (even) or
/// consistency (odd), then two u64 (leaf index and tree size, or from and
/// to), then 32-byte hashes: the leaf hash (or old root), the root (or new
/// root), and the proof. Accepted: it verifies.
pub fn proof(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let Some((first, rest)) = take_u64(rest) else {
        return false;
    };
    let Some((second, rest)) = take_u64(rest) else {
        return false;
    };
    let hashes: Vec<Digest> = rest
        .chunks_exact(32)
        .map(|chunk| Digest(chunk.try_into().expect("chunks of 32")))
        .collect();
    let [a, b, proof @ ..] = hashes.as_slice() else {
        return false;
    };
    if selector % 2 == 0 {
        verify_inclusion(first, second, a, proof, b).is_ok()
    } else {
        verify_consistency(first, second, a, b, proof).is_ok()
    }
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*head), rest))
}

/// A query string as the API extracts it, then read as each route does
/// (`transaction_id`, `from`/`to`, `wait`, `consistency`). Accepted: one of
/// the routes takes it.
pub fn api_query(data: &[u8]) -> bool {
    let mut uri = b"/node/tx?".to_vec();
    uri.extend_from_slice(data);
    let Ok(request) = axum::http::Request::get(uri).body(()) else {
        return false;
    };
    let (mut parts, ()) = request.into_parts();
    let Ok(query) = ready(QueryParams::from_request_parts(&mut parts, &())) else {
        return false;
    };
    let by_id = query
        .allow(&["transaction_id"])
        .and_then(|query| query.transaction_id("transaction_id"))
        .is_ok();
    let range = query.allow(&["from", "to"]).and_then(|query| {
        query.required::<u64>("from", "a tree size")?;
        query.required::<u64>("to", "a tree size")
    });
    let wait = query
        .allow(&["wait", "consistency"])
        .and_then(|query| query.optional::<bool>("wait", "`true` or `false`"))
        .is_ok();
    let text = String::from_utf8_lossy(data);
    let _ = parse_transaction_id(&text);
    let _ = quote(&text);
    by_id || range.is_ok() || wait
}

/// The output of a future that never waits (the query extractor only parses).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the query extractor does not wait"),
    }
}

/// The token [`resp_session`] authenticates with.
pub const RESP_TOKEN: &str = "fuzz-resp-token";

/// A RESP connection to an in-memory node (`FakeNode`), authenticated first,
/// then fed `data` as the client's bytes until it closes its side: frames,
/// inline lines, pipelines, MULTI blocks, whatever the bytes say. Any input
/// must end in bounded time (the connection answers and closes) without a
/// panic. Accepted: the first command after AUTH was answered without an
/// error.
pub fn resp_session(data: &[u8]) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // `Runtime::block_on`, not a handle's: only it drives a current-thread
    // runtime's timers and spawned tasks.
    let output = RESP_RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let node = stele_api::fake::FakeNode::new();
            let config = stele_resp::RespConfig {
                users: std::sync::Arc::new([stele_resp::RespUser {
                    name: "fuzz".to_owned(),
                    token_sha256: stele_api::token_hash(RESP_TOKEN),
                }]),
                ..stele_resp::RespConfig::default()
            };
            let (client, server) = tokio::io::duplex(1 << 16);
            let served = tokio::spawn(stele_resp::serve_connection(node, server, config));
            let (mut from_server, mut to_server) = tokio::io::split(client);
            let send = async {
                let auth = format!(
                    "*2\r\n$4\r\nAUTH\r\n${}\r\n{RESP_TOKEN}\r\n",
                    RESP_TOKEN.len()
                );
                // The server may close first (a protocol error): then writes fail.
                let _ = to_server.write_all(auth.as_bytes()).await;
                let _ = to_server.write_all(data).await;
                let _ = to_server.shutdown().await;
            };
            let receive = async {
                let mut output = Vec::new();
                let _ = from_server.read_to_end(&mut output).await;
                output
            };
            let session = async {
                let ((), output) = tokio::join!(send, receive);
                let _ = served.await;
                output
            };
            tokio::time::timeout(std::time::Duration::from_secs(30), session)
                .await
                .expect("a RESP session ends once its client closes")
        })
    });
    let rest = output
        .strip_prefix(b"+OK\r\n")
        .expect("AUTH is answered OK first");
    !rest.is_empty() && rest[0] != b'-'
}

thread_local! {
    /// One runtime per fuzzing thread (building one per input costs more than
    /// most sessions).
    static RESP_RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
}
