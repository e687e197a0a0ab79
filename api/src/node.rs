//! The contract between the HTTP layer and the node: [`Node`], and the wire types
//! both sides speak. The routes translate HTTP to these calls and these results
//! to HTTP; the node (the `stele` crate) implements the trait; tests use fakes.

use std::future::Future;

use serde::{Deserialize, Serialize};
use stele_frontends::{AbortReason, Command};
use stele_history::hash::encode_lower_hex;
use stele_history::{
    validator_key_name, Digest, NoteVerifier, Receipt, TransactionId, ValidatorQuorum, VerifyingKey,
};
use stele_kv::{Frozen, ReadView};

/// Where a transaction is, as `GET /node/tx` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    /// The node has never assigned this id (a seqno beyond the ledger).
    Unknown,
    /// Ordered and executed, not yet durable / committed.
    Pending,
    /// Durable (single node) or replicated to a majority: it survives crashes.
    Committed,
    /// The seqno exists but with another view: this id was rolled back or never
    /// existed, and never will be committed.
    Invalid,
}

/// What a submission produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The id assigned to the transaction (aborted transactions get one too: they
    /// occupy their seqno, with an empty write set).
    pub transaction_id: TransactionId,
    /// `Committed` when the caller asked to wait, else `Pending`.
    pub status: TxStatus,
    /// The command's response, or why it aborted (it then wrote nothing).
    pub outcome: Result<serde_json::Value, AbortReason>,
}

/// A committed value and the transaction that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    /// The value's bytes: UTF-8 text when written by the transaction language,
    /// any bytes when written over RESP (`/app/kv` shows those as base64).
    pub value: Vec<u8>,
    /// The transaction that last wrote it.
    pub transaction_id: TransactionId,
}

/// `GET /node/public-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    /// The Ed25519 public key, 64 lowercase hex digits.
    pub public_key: String,
    /// The C2SP note verifier key: `<origin>+<key id hex>+<base64(0x01 || key)>`.
    pub verifier_key: String,
    /// The checkpoint origin.
    pub origin: String,
}

/// `GET /node/validators` (BFT mode): who certifies the service's
/// checkpoints. It is also the file `stele verify --validators` and `stele
/// receipt verify --validators` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorsInfo {
    /// The validators, by id.
    pub validators: Vec<ValidatorInfo>,
    /// The sum of their powers: a checkpoint is certified by signers holding
    /// more than two thirds of it.
    pub total_power: u64,
    /// The checkpoint origin.
    pub origin: String,
}

/// One validator of [`ValidatorsInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorInfo {
    /// The validator's id.
    pub id: u64,
    /// Its Ed25519 public key, 64 lowercase hex digits.
    pub public_key: String,
    /// Its voting power.
    pub power: u64,
    /// Its C2SP note verifier key, named `<origin>/v<id>`: the name of its
    /// signature lines in certificate notes.
    pub verifier_key: String,
}

impl ValidatorsInfo {
    /// The description of `validators`, the certifiers of `origin`.
    pub fn from_quorum(origin: &str, validators: &ValidatorQuorum) -> Self {
        ValidatorsInfo {
            validators: validators
                .members()
                .iter()
                .map(|member| ValidatorInfo {
                    id: member.id,
                    public_key: encode_lower_hex(member.verifier.key().as_bytes()),
                    power: member.power,
                    verifier_key: member.verifier.to_verifier_key(),
                })
                .collect(),
            total_power: validators.total_power(),
            origin: origin.to_owned(),
        }
    }

    /// The validator set described, checked whole: every public key is an
    /// Ed25519 key, every verifier key names `<origin>/v<id>` with that key,
    /// ids are distinct, powers positive and `total_power` their sum.
    pub fn to_quorum(&self) -> Result<ValidatorQuorum, crate::ApiError> {
        let invalid = |message: String| crate::ApiError::InvalidValidators(message);
        let mut members = Vec::with_capacity(self.validators.len());
        for validator in &self.validators {
            let id = validator.id;
            let key = Digest::from_hex(&validator.public_key, "public_key")
                .ok()
                .and_then(|digest| VerifyingKey::from_bytes(digest.as_bytes()).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "validator {id}'s public_key is not 64 lowercase hex digits of an \
                         Ed25519 key"
                    ))
                })?;
            let verifier = NoteVerifier::from_verifier_key(&validator.verifier_key)
                .map_err(|error| invalid(format!("validator {id}'s verifier_key: {error}")))?;
            let name = validator_key_name(&self.origin, id);
            if verifier.name() != name || *verifier.key() != key {
                return Err(invalid(format!(
                    "validator {id}'s verifier_key must name {name} with its public_key"
                )));
            }
            members.push((id, key, validator.power));
        }
        let quorum = ValidatorQuorum::new(&self.origin, members)
            .map_err(|error| invalid(error.to_string()))?;
        if quorum.total_power() != self.total_power {
            return Err(invalid(format!(
                "total_power is {} but the powers add up to {}",
                self.total_power,
                quorum.total_power()
            )));
        }
        Ok(quorum)
    }
}

/// `GET /node/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// This node's id.
    pub node_id: String,
    /// `Primary`, `Backup`, `Candidate`, `Learner`, `Stopping`.
    pub role: String,
    /// The current view (Raft term).
    pub view: u64,
    /// The last committed transaction, if any.
    pub last_committed: Option<TransactionId>,
    /// Seqno of the last transaction in the ledger.
    pub ledger_seqno: u64,
    /// Bytes of ledger files.
    pub ledger_bytes: u64,
    /// The Raft node id of this node.
    pub raft_node_id: u64,
    /// The leader's node id, if known.
    pub leader: Option<u64>,
    /// The leader's address, if known.
    pub leader_address: Option<String>,
    /// Batches this node refused because its re-execution disagreed.
    pub divergences: u64,
    /// The last such refusal, if any.
    pub last_divergence: Option<String>,
    /// Snapshot transfers this node caught up from since it started.
    pub snapshots_installed: u64,
    /// The first leaf (seqno - 1) whose part of the Merkle tree is in memory:
    /// proofs about older transactions read their leaves back from the ledger.
    pub leaves_in_memory_from: u64,
    /// Seqnos `[first, last]` this node's ledger does not hold yet: it joined
    /// from a snapshot and fetches their batches from its peers in the
    /// background (receipts for them answer 503 until then). Absent when the
    /// ledger holds every batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_skipped: Option<[u64; 2]>,
    /// Why ledger writes are held back (a full disk, too many open files), if
    /// they are: writes are refused until it clears, then resume by themselves.
    /// Absent when all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// Why the node refused a call. The routes map each to an HTTP status and an
/// error code (see `crate::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The thing asked for does not exist (yet): 404.
    #[error("{0}")]
    NotFound(String),
    /// A well-formed request the node cannot serve as asked: 400 with this code.
    #[error("{message}")]
    BadRequest {
        /// A stable, machine-readable code, e.g. `InvalidRange`.
        code: &'static str,
        /// What is wrong, for humans.
        message: String,
    },
    /// The node is overloaded (a queue is full): 503, retry later.
    #[error("{0}")]
    Busy(String),
    /// The node is shutting down or not the primary: 503.
    #[error("{0}")]
    Unavailable(String),
    /// The node's disk is full: 507, retry once space is freed (the node
    /// resumes by itself).
    #[error("{0}")]
    InsufficientStorage(String),
    /// Writes go to the leader and this node is not it: 307 to the leader's
    /// address (same path and query) when known, else 503 `NotLeader`.
    #[error("{message}")]
    NotLeader {
        /// The leader's `host:port`, if known.
        leader_address: Option<String>,
        /// What happened, for humans.
        message: String,
    },
    /// Something broke inside the node (I/O error, invariant): 500. The message
    /// is safe to show (no secrets).
    #[error("{0}")]
    Internal(String),
}

/// What the HTTP layer needs from a node. Implemented by the `stele` crate's node
/// and by test fakes. Every method is cheap except `submit`, which waits for
/// ordering, execution and, with `wait`, durability. (Metrics do not go through
/// here: the node registers its own in the `prometheus-client` registry it hands
/// to the router, which adds the HTTP ones and serves them all at `/metrics`.)
pub trait Node: Send + Sync + 'static {
    /// Orders and executes `command`; with `wait`, returns once it is committed.
    /// The command is queued when `submit` is called, before the future is
    /// first polled: commands submitted one after the other are ordered (and
    /// executed) in that order, which pipelined RESP connections rely on.
    fn submit(
        &self,
        command: Command,
        wait: bool,
    ) -> impl Future<Output = Result<Submitted, NodeError>> + Send;

    /// The committed value of `key` in `map`, with the id of its writer.
    fn kv_get(&self, map: &str, key: &str) -> Result<Option<KvValue>, NodeError>;

    /// Runs `read` against the committed state: every key it reads is from one
    /// committed version. It holds the state's read lock: keep it short.
    fn read_committed<R>(&self, read: impl FnOnce(&dyn ReadView) -> R) -> R;

    /// The committed state set aside, to walk (SCAN, KEYS, DBSIZE) without
    /// holding the state's lock.
    fn frozen_committed(&self) -> Frozen;

    /// The read barrier of `?consistency=linearizable`: returns once this node
    /// has applied everything committed when the call started, as confirmed by
    /// the leader's read index (a heartbeat round to a majority). Only the
    /// leader answers; a follower returns `NotLeader` (a 307 to the leader).
    fn read_barrier(&self) -> impl Future<Output = Result<(), NodeError>> + Send;

    /// Where transaction `id` is.
    fn tx_status(&self, id: TransactionId) -> TxStatus;

    /// The last committed transaction, if any.
    fn last_committed(&self) -> Option<TransactionId>;

    /// The receipt of committed transaction `id` (`NotFound` if it is not
    /// committed, `BadRequest` with code `InvalidTransactionId` if the view is
    /// wrong).
    fn receipt(&self, id: TransactionId) -> Result<Receipt, NodeError>;

    /// The latest signed checkpoint note (C2SP), if any transaction exists.
    fn checkpoint(&self) -> Option<String>;

    /// The RFC 9162 consistency proof between the trees of sizes `from` and `to`
    /// (`BadRequest` with code `InvalidRange` unless `from <= to <= committed`).
    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, NodeError>;

    /// The service's public key.
    fn public_key(&self) -> PublicKeyInfo;

    /// The validators certifying the checkpoints, in BFT mode; `None` for a
    /// service with a service key (Raft mode), which `/node/validators`
    /// answers with 404.
    fn validators(&self) -> Option<ValidatorsInfo> {
        None
    }

    /// Role, view, commit, ledger size.
    fn state(&self) -> NodeState;
}
