//! Valid inputs for every target, made with the crates' own encoders (so they
//! follow the formats as they change) and kept small (fuzzers mutate small
//! inputs faster). Each is accepted by its target (checked by the smoke test).

use std::collections::{BTreeMap, BTreeSet};

use stele_consensus::openraft::raft::{AppendEntriesRequest, VoteRequest};
use stele_consensus::openraft::{
    Entry as RaftEntry, EntryPayload, Membership, StoredMembership, Vote,
};
use stele_consensus::openraft_legacy::network_v1::SnapshotMeta as LegacySnapshotMeta;
use stele_consensus::raft::meta::ControlRecord;
use stele_consensus::raft::transfer::{TransferHeader, TransferWriter};
use stele_consensus::raft::types::{SnapshotChunk, SteleEntry, SteleLogId};
use stele_consensus::raft::{ExecutedBatch, SteleNode, SteleRaft};
use stele_history::{
    Checkpoint, CommitEvidence, LeafComponents, MerkleTree, NoteSigner, Receipt, TransactionId,
};
use stele_kv::{Snapshot, Store, WriteSet};
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::frame::{encode_frame, CHUNK_MAGIC};
use stele_ledger::{BatchEntry, Entry, SignatureEntry};

use crate::scratch;
use crate::targets::{identity, service_key, ORIGIN, PEER_KINDS};

/// Bytes of each made-up command in the ledger seeds.
const COMMAND_BYTES: usize = 12;

/// Transactions per batch of the ledger seeds.
const BATCH_SIZES: [usize; 3] = [2, 1, 3];

/// The genesis and the batches of a small fixture ledger.
fn fixture_ledger() -> (Entry, Vec<(BatchEntry, SignatureEntry)>) {
    let mut fixture = FixtureWriter::new(7);
    fixture.command_bytes = COMMAND_BYTES;
    let genesis = Entry::Genesis(fixture.genesis());
    let batches = BATCH_SIZES.iter().map(|&txs| fixture.batch(txs)).collect();
    (genesis, batches)
}

fn frames(entries: &[Entry]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        encode_frame(&entry.encode(), &mut bytes);
    }
    bytes
}

fn ledger_entries() -> Vec<Entry> {
    let (genesis, batches) = fixture_ledger();
    let mut entries = vec![genesis];
    for (batch, signature) in batches {
        entries.push(Entry::Batch(batch));
        entries.push(Entry::Signature(signature));
    }
    entries
}

/// A chunk with the genesis only, and one with three batches.
pub fn ledger_chunk() -> Vec<Vec<u8>> {
    let entries = ledger_entries();
    [1, entries.len()]
        .into_iter()
        .map(|count| {
            let mut chunk = CHUNK_MAGIC.to_vec();
            chunk.extend(frames(&entries[..count]));
            chunk
        })
        .collect()
}

/// A genesis, a batch and a signature entry.
pub fn ledger_entry() -> Vec<Vec<u8>> {
    ledger_entries().iter().take(3).map(Entry::encode).collect()
}

/// A store holding a few keys written at versions `1..=version`.
fn store_at(version: u64) -> Store {
    let mut store = Store::new();
    for v in 1..=version {
        let mut write_set = WriteSet::new();
        write_set.put(
            "m",
            &format!("k{}", v % 3),
            format!("value {v}").into_bytes(),
        );
        if v % 4 == 0 {
            write_set.delete("m", "k0");
        }
        write_set.put("other", "key", vec![0, 1, 2]);
        store
            .apply(v, &write_set)
            .expect("versions follow each other");
    }
    store
}

fn snapshot_at(version: u64) -> Snapshot {
    store_at(version)
        .snapshot(version)
        .expect("a snapshot at the store's version")
}

/// A leader id and log id of term `term`.
fn log_id(term: u64, index: u64) -> SteleLogId {
    stele_consensus::raft::types::log_id(term, index)
}

/// Nodes 1 and 2 as voters.
fn membership() -> Membership<u64, SteleNode> {
    let nodes: BTreeMap<u64, SteleNode> = [1, 2]
        .into_iter()
        .map(|id| {
            let key = stele_history::SigningKey::from_bytes(&[id as u8; 32]).verifying_key();
            (id, SteleNode::new(format!("127.0.0.1:{}", 8000 + id), &key))
        })
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2])], nodes).expect("a valid membership")
}

/// A transfer of the fixture ledger's batches over a small state, with a
/// blank and a membership entry among them.
pub fn raft_transfer() -> Vec<Vec<u8>> {
    let (_, batches) = fixture_ledger();
    let seqno = BATCH_SIZES.iter().sum::<usize>() as u64;
    let last = log_id(2, batches.len() as u64 + 2);
    let header = TransferHeader {
        last_log_id: last,
        last_membership: StoredMembership::new(Some(log_id(1, 2)), membership()),
        seqno,
        batches: batches.len() as u64,
        controls: vec![
            ControlRecord {
                batches_before: 0,
                entry: RaftEntry {
                    log_id: log_id(1, 1),
                    payload: EntryPayload::Blank,
                },
            },
            ControlRecord {
                batches_before: 0,
                entry: RaftEntry {
                    log_id: log_id(1, 2),
                    payload: EntryPayload::Membership(membership()),
                },
            },
        ],
        resume: None,
    };
    let dir = scratch::empty_dir("transfer-seed");
    let mut writer = TransferWriter::create(&dir, &header, &snapshot_at(seqno))
        .expect("a transfer in the scratch folder");
    for (batch, signature) in &batches {
        writer.push(batch, signature).expect("writing a batch");
    }
    let (path, _) = writer.finish().expect("finishing the transfer");
    vec![std::fs::read(path).expect("the transfer just written")]
}

/// Snapshots of an empty store and of a small one.
pub fn kv_snapshot() -> Vec<Vec<u8>> {
    vec![
        Store::new()
            .snapshot(0)
            .expect("the empty store's snapshot")
            .to_bytes(),
        snapshot_at(9).to_bytes(),
    ]
}

/// An empty write set and one with writes and a delete.
pub fn write_set() -> Vec<Vec<u8>> {
    let mut write_set = WriteSet::new();
    write_set.put("m", "a", b"1".to_vec());
    write_set.delete("m", "b");
    write_set.put("n", "", Vec::new());
    vec![
        WriteSet::new().canonical_bytes(),
        write_set.canonical_bytes(),
    ]
}

/// A snapshot file at seqno 5, signed by the service.
pub fn snapshot_file() -> Vec<Vec<u8>> {
    let version = 5;
    let note = Checkpoint {
        origin: ORIGIN.to_owned(),
        tree_size: version,
        root: stele_history::hash::sha256(b"any root"),
        view: Some(1),
    }
    .sign(identity().signer())
    .expect("the origin is the signer's name");
    let dir = scratch::empty_dir("snapshot-seed");
    let frontier = stele_history::Frontier {
        tiles: Vec::new(),
        edge: (0..version)
            .map(|leaf| stele_history::hash::sha256(&leaf.to_be_bytes()))
            .collect(),
    };
    let path = stele_consensus::snapshot::write(&dir, &snapshot_at(version), &note, &frontier)
        .expect("a snapshot in the scratch folder");
    vec![std::fs::read(path).expect("the snapshot just written")]
}

fn cbor(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("CBOR into a Vec");
    bytes
}

/// An append (a batch, a blank and a membership entry), a vote and a snapshot
/// chunk, each behind its selector byte.
pub fn peer_message() -> Vec<Vec<u8>> {
    let (_, batches) = fixture_ledger();
    let (batch, signature) = batches[0].clone();
    let entries: Vec<SteleEntry> = vec![
        RaftEntry {
            log_id: log_id(2, 3),
            payload: EntryPayload::Normal(ExecutedBatch {
                batch,
                signature,
                prev_root: [7; 32],
            }),
        },
        RaftEntry {
            log_id: log_id(2, 4),
            payload: EntryPayload::Blank,
        },
        RaftEntry {
            log_id: log_id(2, 5),
            payload: EntryPayload::Membership(membership()),
        },
    ];
    let append = AppendEntriesRequest::<SteleRaft> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(1, 2)),
        entries,
        leader_commit: Some(log_id(1, 2)),
    };
    let vote = VoteRequest::<SteleRaft>::new(Vote::new(3, 1), Some(log_id(2, 5)));
    let chunk = SnapshotChunk {
        vote: Vote::new_committed(2, 1),
        meta: LegacySnapshotMeta {
            last_log_id: Some(log_id(2, 5)),
            last_membership: StoredMembership::new(Some(log_id(2, 5)), membership()),
            snapshot_id: "2-5".to_owned(),
        },
        offset: 0,
        data: b"STELXFR1 and more".to_vec(),
        done: false,
    };
    let bodies = [cbor(&append), cbor(&vote), cbor(&chunk)];
    PEER_KINDS
        .iter()
        .zip(bodies)
        .enumerate()
        .map(|(selector, (_, body))| {
            let mut input = vec![selector as u8];
            input.extend(body);
            input
        })
        .collect()
}

/// One command of each app (and every SmallBank operation).
pub fn command() -> Vec<Vec<u8>> {
    [
        r#"{"transaction":{"ops":[{"op":"check","map":"m","key":"k","value":null},{"op":"put","map":"m","key":"k","value":"v"},{"op":"get","map":"m","key":"k"},{"op":"delete","map":"m","key":"j"}],"claims":"c"}}"#,
        r#"{"logging":{"op":"record","id":2,"message":"hi"}}"#,
        r#"{"logging":{"op":"read","id":1}}"#,
        r#"{"small_bank":{"op":"create_account","account":9,"checking_cents":1,"savings_cents":2}}"#,
        r#"{"small_bank":{"op":"create_accounts","first_account":10,"count":2,"checking_cents":1,"savings_cents":2}}"#,
        r#"{"small_bank":{"op":"balance","account":1}}"#,
        r#"{"small_bank":{"op":"deposit_checking","account":3,"amount_cents":20}}"#,
        r#"{"small_bank":{"op":"transact_savings","account":1,"amount_cents":-20}}"#,
        r#"{"small_bank":{"op":"amalgamate","from":3,"to":1}}"#,
        r#"{"small_bank":{"op":"write_check","account":2,"amount_cents":30000}}"#,
        r#"{"small_bank":{"op":"send_payment","from":3,"to":0,"amount_cents":5}}"#,
    ]
    .into_iter()
    .map(|json| json.as_bytes().to_vec())
    .chain(redis_commands())
    .collect()
}

/// Redis commands (a MULTI block with watches), as JSON through the types'
/// own encoder, so that they follow the format.
fn redis_commands() -> Vec<Vec<u8>> {
    use stele_frontends::redis::{RedisCommand, RedisOp, SetCondition, Watch};
    let block = RedisCommand {
        ops: vec![
            RedisOp::Set {
                key: b"k".to_vec(),
                value: vec![0xff, 0],
                condition: SetCondition::IfAbsent,
                get: true,
            },
            RedisOp::IncrBy {
                key: b"n".to_vec(),
                by: -3,
            },
            RedisOp::HSet {
                key: b"h".to_vec(),
                pairs: vec![(b"f".to_vec(), b"1".to_vec())],
            },
            RedisOp::HIncrBy {
                key: b"h".to_vec(),
                field: b"f".to_vec(),
                by: 2,
            },
            RedisOp::MGet {
                keys: vec![b"k".to_vec(), b"h".to_vec()],
            },
        ],
        watches: vec![Watch {
            key: b"k".to_vec(),
            digest: None,
        }],
    };
    vec![serde_json::to_vec(&stele_frontends::Command::Redis(block))
        .expect("a command encodes as JSON")]
}

/// RESP sessions (after AUTH): every kind of request the front door parses,
/// pipelined, in frames and inline.
pub fn resp_session() -> Vec<Vec<u8>> {
    fn frame(args: &[&[u8]]) -> Vec<u8> {
        let mut bytes = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            bytes.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            bytes.extend_from_slice(arg);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes
    }
    let sessions: Vec<Vec<&[&[u8]]>> = vec![
        vec![
            &[b"PING"],
            &[b"SET", b"k", b"v", b"NX", b"GET"],
            &[b"GET", b"k"],
        ],
        vec![
            &[b"MSET", b"a", b"1", b"b\xff", b"2"],
            &[b"MGET", b"a", b"b\xff", b"c"],
            &[b"INCRBY", b"a", b"41"],
        ],
        vec![
            &[b"HSET", b"h", b"f", b"1", b"g", b"2"],
            &[b"HINCRBY", b"h", b"f", b"5"],
            &[b"HGETALL", b"h"],
            &[b"HDEL", b"h", b"g"],
        ],
        vec![
            &[b"WATCH", b"k"],
            &[b"MULTI"],
            &[b"APPEND", b"k", b"x"],
            &[b"GETDEL", b"k"],
            &[b"EXEC"],
        ],
        vec![
            &[b"SET", b"s1", b"v"],
            &[b"SCAN", b"0", b"MATCH", b"s*", b"COUNT", b"5"],
            &[b"KEYS", b"*"],
            &[b"DBSIZE"],
        ],
        vec![
            &[b"HELLO", b"2"],
            &[b"CLIENT", b"SETNAME", b"fuzz"],
            &[b"INFO"],
            &[b"CONFIG", b"GET", b"*"],
            &[b"STELE.TXID"],
            &[b"STELE.STATUS", b"2.1"],
        ],
    ];
    let mut seeds: Vec<Vec<u8>> = sessions
        .into_iter()
        .map(|session| session.iter().flat_map(|args| frame(args)).collect())
        .collect();
    seeds.push(b"EXISTS a b\r\nTYPE a\nSTRLEN a\r\n".to_vec());
    seeds
}

/// Leaf components of transaction `seqno` (view 2) of the receipt seeds.
fn components(seqno: u64) -> LeafComponents {
    LeafComponents {
        write_set_digest: stele_history::hash::sha256(&seqno.to_be_bytes()),
        commit_evidence: CommitEvidence {
            transaction_id: TransactionId { view: 2, seqno },
            secret: [seqno as u8; 32],
        },
        claims_digest: stele_history::claims_digest(seqno.is_multiple_of(2).then_some("claims")),
        // Leaves of both formats: 96 bytes (format 1) and 128 (format 2).
        command_digest: (!seqno.is_multiple_of(3))
            .then(|| stele_history::hash::sha256(&seqno.to_le_bytes())),
    }
}

/// Leaves in the tree of the receipt and proof seeds.
const TREE_LEAVES: u64 = 13;

fn tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    for seqno in 1..=TREE_LEAVES {
        tree.append(&components(seqno).leaf_bytes());
    }
    tree
}

fn signed_checkpoint(tree: &MerkleTree) -> (Checkpoint, String) {
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        tree_size: tree.size(),
        root: tree.root(),
        view: Some(2),
    };
    let signer = NoteSigner::new(ORIGIN, service_key()).expect("a valid origin");
    let note = checkpoint.sign(&signer).expect("signed by its origin");
    (checkpoint, note)
}

/// Receipts of a middle and of the last transaction of a 13-leaf tree.
pub fn receipt() -> Vec<Vec<u8>> {
    let tree = tree();
    let (checkpoint, note) = signed_checkpoint(&tree);
    [6, TREE_LEAVES]
        .into_iter()
        .map(|seqno| {
            let receipt = Receipt::build(
                &tree,
                &stele_history::Tiles::none(),
                seqno - 1,
                &components(seqno),
                &checkpoint,
                note.clone(),
            )
            .expect("a receipt of a leaf of the tree");
            serde_json::to_vec(&receipt).expect("a receipt as JSON")
        })
        .collect()
}

/// A signed checkpoint, a verifier key, a transaction id, commit evidence.
pub fn note() -> Vec<Vec<u8>> {
    let (_, note) = signed_checkpoint(&tree());
    let verifier = identity().signer().verifier().to_verifier_key();
    let id = TransactionId { view: 2, seqno: 15 }.to_string();
    let evidence = components(4).commit_evidence.to_string();
    [note, verifier, id, evidence]
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

/// An inclusion proof and a consistency proof in the 13-leaf tree.
pub fn proof() -> Vec<Vec<u8>> {
    let tree = tree();
    let encode = |selector: u8, first: u64, second: u64, hashes: Vec<stele_history::Digest>| {
        let mut input = vec![selector];
        input.extend_from_slice(&first.to_be_bytes());
        input.extend_from_slice(&second.to_be_bytes());
        for hash in hashes {
            input.extend_from_slice(hash.as_bytes());
        }
        input
    };
    let root = |size| tree.root_at(size).expect("a size of the tree");
    let leaf = 5;
    let mut inclusion = vec![
        tree.leaf_hash(leaf).expect("a leaf of the tree"),
        root(TREE_LEAVES),
    ];
    inclusion.extend(
        tree.inclusion_proof(leaf, TREE_LEAVES)
            .expect("a leaf of the tree"),
    );
    let (from, to) = (6, TREE_LEAVES);
    let mut consistency = vec![root(from), root(to)];
    consistency.extend(tree.consistency_proof(from, to).expect("sizes of the tree"));
    vec![
        encode(0, leaf, TREE_LEAVES, inclusion),
        encode(1, from, to, consistency),
    ]
}

/// A query of each route shape.
pub fn api_query() -> Vec<Vec<u8>> {
    [
        "transaction_id=2.15",
        "from=0&to=18446744073709551615",
        "wait=false",
        "wait=true&consistency=linearizable",
    ]
    .into_iter()
    .map(|query| query.as_bytes().to_vec())
    .collect()
}
