//! The openraft type configuration of Stele.

use serde::{Deserialize, Serialize};

pub use crate::batch::ExecutedBatch;
pub use crate::members::SteleNode;

openraft::declare_raft_types!(
    /// Stele's Raft types: node ids are `u64`, a node is a [`SteleNode`] (its
    /// HTTPS address and its peer public key), and a normal entry is one
    /// executed batch. A snapshot is a transfer file (`transfer.rs`): a KV
    /// snapshot and the ledger up to its seqno, streamed from and to disk
    /// (the state machine's `SnapshotData`).
    ///
    /// The leader id is standard Raft's (at most one leader per term), so a
    /// committed log id is (term, index): what the ledger records
    /// (`BatchEntry::view` = term). Proposals are answered through the
    /// default `ProgressResponder` (the macro takes no generic `Responder<T>`;
    /// `complete_only` makes it a oneshot).
    pub SteleRaft:
        D = ExecutedBatch,
        R = BatchApplied,
        NodeId = u64,
        Node = SteleNode,
        Term = u64,
        LeaderId = openraft::vote::leader_id_std::LeaderId<u64, u64>,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);

/// What applying (confirming) a batch answers the proposer: the committed range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchApplied {
    /// The view (term) of the batch.
    pub view: u64,
    /// Its last seqno (0 for a Raft-only entry).
    pub last_seqno: u64,
}

/// A committed leader id: the term alone.
pub type SteleCommittedLeaderId = openraft::vote::leader_id_std::CommittedLeaderId<u64>;
/// A Raft log id: (term, index).
pub type SteleLogId = openraft::type_config::alias::LogIdOf<SteleRaft>;
/// A vote: (term, candidate), committed once it leads.
pub type SteleVote = openraft::type_config::alias::VoteOf<SteleRaft>;
/// A Raft log entry.
pub type SteleEntry = openraft::type_config::alias::EntryOf<SteleRaft>;
/// A membership and the log id that set it.
pub type SteleStoredMembership = openraft::type_config::alias::StoredMembershipOf<SteleRaft>;
/// openraft's metadata of a snapshot.
pub type SteleSnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<SteleRaft>;
/// openraft's metrics of a node.
pub type SteleMetrics = openraft::RaftMetrics<SteleRaft>;
/// The Raft engine of one node over its state machine.
pub type SteleRaftHandle = openraft::Raft<SteleRaft, super::state_machine::ReplicaStateMachine>;
/// The 0.9 (v1) InstallSnapshot request, kept on the wire by `openraft-legacy`.
pub type InstallSnapshotRequest = openraft_legacy::network_v1::InstallSnapshotRequest<SteleRaft>;
/// Its answer.
pub type InstallSnapshotResponse = openraft_legacy::network_v1::InstallSnapshotResponse<SteleRaft>;

/// The log id `(term, index)`.
pub fn log_id(term: u64, index: u64) -> SteleLogId {
    openraft::LogId::new(SteleCommittedLeaderId::new(term), index)
}

/// One InstallSnapshot chunk as it crosses the peer transport: openraft's
/// request with the data as a CBOR byte string (its `Vec<u8>` would be coded
/// as an array of integers: about twice the bytes and far slower to code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The leader's vote.
    pub vote: SteleVote,
    /// Which snapshot (openraft's metadata and the transfer session's id).
    pub meta: openraft_legacy::network_v1::SnapshotMeta<SteleRaft>,
    /// Where the data goes in the snapshot.
    pub offset: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The last chunk.
    pub done: bool,
}

impl From<InstallSnapshotRequest> for SnapshotChunk {
    fn from(request: InstallSnapshotRequest) -> Self {
        SnapshotChunk {
            vote: request.vote,
            meta: request.meta,
            offset: request.offset,
            data: request.data,
            done: request.done,
        }
    }
}

impl From<SnapshotChunk> for InstallSnapshotRequest {
    fn from(chunk: SnapshotChunk) -> Self {
        InstallSnapshotRequest {
            vote: chunk.vote,
            meta: chunk.meta,
            offset: chunk.offset,
            data: chunk.data,
            done: chunk.done,
        }
    }
}

/// The most bytes of ledger entries one answer to a [`LedgerFetch`] carries
/// (at least one batch, which the ledger's entry limit bounds).
pub const LEDGER_FETCH_BYTES_MAX: u64 = 16 << 20;

/// A peer's request for committed batches of its ledger (`POST
/// /raft/fetch`): what a node that joined from a resume transfer fetches to
/// fill the seqnos it skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFetch {
    /// The first seqno wanted: the answer starts with the batch holding it.
    pub from_seqno: u64,
    /// No batch after this seqno is wanted.
    pub through_seqno: u64,
}

/// The answer: committed batches and their signature entries, in order from
/// the one holding `from_seqno`, up to [`LEDGER_FETCH_BYTES_MAX`]; none if
/// the peer does not hold that seqno (it resumed after it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFetched {
    /// The batches.
    pub batches: Vec<(stele_ledger::BatchEntry, stele_ledger::SignatureEntry)>,
}

/// BFT mode: messages between validators (`POST /bft/messages`), each the
/// bytes of a `stele_bft::Message`; the sender is the authenticated peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BftMessages {
    /// The encoded messages, in the order they were sent.
    pub messages: Vec<serde_bytes::ByteBuf>,
}

/// The answer to [`BftMessages`]: taken (queued for this node's core).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BftTaken {
    /// Messages queued.
    pub taken: u64,
}

/// BFT mode: a lagging node asks for the decision of `height`
/// (`POST /bft/sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BftSyncRequest {
    /// The height wanted.
    pub height: u64,
}

/// The answer to [`BftSyncRequest`]: the encoded `stele_bft::Decision`, or
/// none if the peer has not decided that height.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BftSyncAnswer {
    /// The decision's bytes.
    pub decision: Option<serde_bytes::ByteBuf>,
}
