//! The openraft type configuration of Stele.

use serde::{Deserialize, Serialize};

pub use crate::batch::ExecutedBatch;
pub use crate::members::SteleNode;

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

/// What applying (confirming) a batch answers the proposer: the committed range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchApplied {
    /// The view (term) of the batch.
    pub view: u64,
    /// Its last seqno (0 for a Raft-only entry).
    pub last_seqno: u64,
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
