//! The openraft type configuration of Stele.

use serde::{Deserialize, Serialize};
use stele_ledger::{BatchEntry, SignatureEntry};

openraft::declare_raft_types!(
    /// Stele's Raft types: node ids are `u64`, a node is a [`SteleNode`] (its
    /// HTTPS address and its peer public key), and a normal entry is one
    /// executed batch. A snapshot is a transfer file (`transfer.rs`): a KV
    /// snapshot and the ledger up to its seqno, streamed from and to disk.
    pub SteleRaft:
        D = ExecutedBatch,
        R = BatchApplied,
        NodeId = u64,
        Node = SteleNode,
        Entry = openraft::Entry<SteleRaft>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// One Raft log entry's payload: a batch as the primary executed it, exactly what
/// the ledger stores (the batch entry and the signature entry after it), plus the
/// root the batch extends.
///
/// A follower re-executes `batch.txs[..].command` on its own speculative overlay
/// and checks, before acknowledging, that `prev_root` is its own current root and
/// that its root after the batch is the root in `signature.checkpoint`. The
/// per-transaction digests are in each [`stele_ledger::TxRecord`] (write set,
/// commit evidence, claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutedBatch {
    /// The transactions, their write sets and leaf components, in order. Its
    /// `view` is the Raft term the batch was proposed in.
    pub batch: BatchEntry,
    /// The signed checkpoint over the tree ending with the batch: its root is the
    /// root after the batch.
    pub signature: SignatureEntry,
    /// The Merkle root of the tree before the batch (RFC 9162 root of the first
    /// `batch.first_seqno - 1` leaves).
    #[serde(with = "serde_bytes")]
    pub prev_root: [u8; 32],
}

/// What applying (confirming) a batch answers the proposer: the committed range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchApplied {
    /// The view (term) of the batch.
    pub view: u64,
    /// Its last seqno (0 for a Raft-only entry).
    pub last_seqno: u64,
}

/// A member as the Raft membership records it: where it listens and the
/// Ed25519 key its peer messages are signed with. Membership entries travel
/// through the log, so every node learns a new member's key from the leader
/// (authenticated) before that member can send it anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteleNode {
    /// `host:port` of its HTTPS listener (clients and peers).
    pub addr: String,
    /// Its peer public key, 64 lowercase hex digits.
    pub public_key: String,
}

impl SteleNode {
    /// A member at `addr` with peer key `public_key`.
    pub fn new(addr: impl Into<String>, public_key: &ed25519_dalek::VerifyingKey) -> Self {
        SteleNode {
            addr: addr.into(),
            public_key: hex::encode(public_key.as_bytes()),
        }
    }

    /// The peer key, if `public_key` is a valid one.
    pub fn verifying_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        let bytes: [u8; 32] = hex::decode(&self.public_key).ok()?.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()
    }
}

impl std::fmt::Display for SteleNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (key {})", self.addr, self.public_key)
    }
}

/// One InstallSnapshot chunk as it crosses the peer transport: openraft's
/// request with the data as a CBOR byte string (its `Vec<u8>` would be coded
/// as an array of integers: about twice the bytes and far slower to code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The leader's vote.
    pub vote: openraft::Vote<u64>,
    /// Which snapshot.
    pub meta: openraft::SnapshotMeta<u64, SteleNode>,
    /// Where the data goes in the snapshot.
    pub offset: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The last chunk.
    pub done: bool,
}

impl From<openraft::raft::InstallSnapshotRequest<SteleRaft>> for SnapshotChunk {
    fn from(request: openraft::raft::InstallSnapshotRequest<SteleRaft>) -> Self {
        SnapshotChunk {
            vote: request.vote,
            meta: request.meta,
            offset: request.offset,
            data: request.data,
            done: request.done,
        }
    }
}

impl From<SnapshotChunk> for openraft::raft::InstallSnapshotRequest<SteleRaft> {
    fn from(chunk: SnapshotChunk) -> Self {
        openraft::raft::InstallSnapshotRequest {
            vote: chunk.vote,
            meta: chunk.meta,
            offset: chunk.offset,
            data: chunk.data,
            done: chunk.done,
        }
    }
}
