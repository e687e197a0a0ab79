//! [`FakeNode`]: the in-memory twin of the [`Node`] contract, for the tests of
//! the front doors (HTTPS routes, RESP). It really executes commands (with
//! `stele-frontends` over a `stele-kv` store, committing each at once) and
//! counts submissions, with canned receipts, checkpoints and proofs. Built
//! only with the `fake-node` feature (tests), never into the node.

// Test support: a poisoned lock or a bad fixture is a failed test.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use stele_frontends::{Command, Outcome};
use stele_history::leaf::CommitEvidence;
use stele_history::{Digest, Receipt, TransactionId};
use stele_kv::{Frozen, ReadView, Store};
use tokio::sync::{mpsc, Notify};

use crate::{
    KvValue, Node, NodeError, NodeState, PublicKeyInfo, Submitted, TxStatus, ValidatorsInfo,
};

/// The view every transaction of the fake gets.
pub const VIEW: u64 = 2;

/// Holds submissions until released (to fill the in-flight limit).
pub struct Gate {
    entered: mpsc::UnboundedSender<()>,
    release: Notify,
}

struct Inner {
    store: Store,
    seqno: u64,
    submits: Vec<(Command, bool)>,
    read_barriers: usize,
}

/// An in-memory node.
pub struct FakeNode {
    inner: Mutex<Inner>,
    gate: Option<Gate>,
    /// `Some` for a node in BFT mode.
    validators: Option<ValidatorsInfo>,
}

impl FakeNode {
    /// A node with an empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(FakeNode {
            inner: Mutex::new(Inner {
                store: Store::new(),
                seqno: 0,
                submits: Vec::new(),
                read_barriers: 0,
            }),
            gate: None,
            validators: None,
        })
    }

    /// A node in BFT mode, its checkpoints certified by `validators`.
    pub fn bft(validators: ValidatorsInfo) -> Arc<Self> {
        Arc::new(FakeNode {
            inner: Mutex::new(Inner {
                store: Store::new(),
                seqno: 0,
                submits: Vec::new(),
                read_barriers: 0,
            }),
            gate: None,
            validators: Some(validators),
        })
    }

    /// A node whose `submit` first reports on the returned receiver, then
    /// waits for [`FakeNode::release`].
    pub fn gated() -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (entered, receiver) = mpsc::unbounded_channel();
        let node = Arc::new(FakeNode {
            inner: Mutex::new(Inner {
                store: Store::new(),
                seqno: 0,
                submits: Vec::new(),
                read_barriers: 0,
            }),
            gate: Some(Gate {
                entered,
                release: Notify::new(),
            }),
            validators: None,
        });
        (node, receiver)
    }

    /// Lets one gated submission through.
    pub fn release(&self) {
        if let Some(gate) = &self.gate {
            gate.release.notify_one();
        }
    }

    /// How many times `submit` was called.
    pub fn submits(&self) -> usize {
        self.inner.lock().unwrap().submits.len()
    }

    /// How many times `read_barrier` was called.
    pub fn read_barriers(&self) -> usize {
        self.inner.lock().unwrap().read_barriers
    }

    /// The commands submitted, with their `wait` flags.
    pub fn submitted(&self) -> Vec<(Command, bool)> {
        self.inner.lock().unwrap().submits.clone()
    }

    /// Commits one transaction writing `value` (any bytes) at `key` of
    /// `map`, as a RESP client could: the transaction language writes only
    /// UTF-8.
    pub fn put_bytes(&self, map: &str, key: &str, value: &[u8]) {
        let mut inner = self.inner.lock().unwrap();
        let mut write_set = stele_kv::WriteSet::new();
        write_set.put(map, key, value.to_vec());
        let seqno = inner.seqno + 1;
        inner.store.apply(seqno, &write_set).unwrap();
        inner.store.commit(seqno).unwrap();
        inner.seqno = seqno;
    }

    /// The last seqno assigned.
    pub fn seqno(&self) -> u64 {
        self.inner.lock().unwrap().seqno
    }

    fn id(seqno: u64) -> TransactionId {
        TransactionId { view: VIEW, seqno }
    }
}

impl Node for FakeNode {
    async fn read_barrier(&self) -> Result<(), NodeError> {
        self.inner.lock().unwrap().read_barriers += 1;
        Ok(())
    }

    async fn submit(&self, command: Command, wait: bool) -> Result<Submitted, NodeError> {
        if let Some(gate) = &self.gate {
            let _ = gate.entered.send(());
            gate.release.notified().await;
        }
        let mut inner = self.inner.lock().unwrap();
        inner.submits.push((command.clone(), wait));
        let execution = command
            .execute(&inner.store)
            .map_err(|error| NodeError::Internal(error.to_string()))?;
        let seqno = inner.seqno + 1;
        inner
            .store
            .apply(seqno, &execution.write_set)
            .map_err(|error| NodeError::Internal(error.to_string()))?;
        inner
            .store
            .commit(seqno)
            .map_err(|error| NodeError::Internal(error.to_string()))?;
        inner.seqno = seqno;
        Ok(Submitted {
            transaction_id: Self::id(seqno),
            status: if wait {
                TxStatus::Committed
            } else {
                TxStatus::Pending
            },
            outcome: match execution.outcome {
                Outcome::Completed(response) => Ok(response),
                Outcome::Aborted(reason) => Err(reason),
            },
        })
    }

    fn kv_get(&self, map: &str, key: &str) -> Result<Option<KvValue>, NodeError> {
        let inner = self.inner.lock().unwrap();
        let Some((bytes, version)) = inner.store.get_committed(map, key) else {
            return Ok(None);
        };
        Ok(Some(KvValue {
            value: bytes.to_vec(),
            transaction_id: Self::id(version),
        }))
    }

    fn read_committed<R>(&self, read: impl FnOnce(&dyn ReadView) -> R) -> R {
        let inner = self.inner.lock().unwrap();
        read(&inner.store.committed_view())
    }

    fn frozen_committed(&self) -> Frozen {
        let inner = self.inner.lock().unwrap();
        inner.store.freeze(inner.store.committed_version()).unwrap()
    }

    fn tx_status(&self, id: TransactionId) -> TxStatus {
        let seqno = self.seqno();
        if id.seqno == 0 || id.seqno > seqno {
            TxStatus::Unknown
        } else if id.view == VIEW {
            TxStatus::Committed
        } else {
            TxStatus::Invalid
        }
    }

    fn last_committed(&self) -> Option<TransactionId> {
        let seqno = self.seqno();
        (seqno > 0).then(|| Self::id(seqno))
    }

    fn receipt(&self, id: TransactionId) -> Result<Receipt, NodeError> {
        match self.tx_status(id) {
            TxStatus::Committed => Ok(canned_receipt(id, self.seqno())),
            TxStatus::Invalid => Err(NodeError::BadRequest {
                code: "InvalidTransactionId",
                message: format!("{id} has another view"),
            }),
            TxStatus::Unknown | TxStatus::Pending => {
                Err(NodeError::NotFound(format!("{id} is not committed")))
            }
        }
    }

    fn checkpoint(&self) -> Option<String> {
        let seqno = self.seqno();
        (seqno > 0).then(|| canned_checkpoint(seqno))
    }

    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, NodeError> {
        let seqno = self.seqno();
        if from > to || to > seqno {
            return Err(NodeError::BadRequest {
                code: "InvalidRange",
                message: format!("need from <= to <= {seqno}"),
            });
        }
        Ok((from..to).take(3).map(|n| Digest([n as u8; 32])).collect())
    }

    fn public_key(&self) -> PublicKeyInfo {
        PublicKeyInfo {
            public_key: "ab".repeat(32),
            verifier_key: "stele.test/fake+01234567+AQ==".to_owned(),
            origin: "stele.test/fake".to_owned(),
        }
    }

    fn validators(&self) -> Option<ValidatorsInfo> {
        self.validators.clone()
    }

    fn state(&self) -> NodeState {
        NodeState {
            node_id: "n0".to_owned(),
            role: "Primary".to_owned(),
            view: VIEW,
            last_committed: self.last_committed(),
            ledger_seqno: self.seqno(),
            ledger_bytes: 42 * self.seqno(),
            raft_node_id: 1,
            leader: Some(1),
            leader_address: None,
            divergences: 0,
            last_divergence: None,
            snapshots_installed: 0,
            leaves_in_memory_from: 0,
            ledger_skipped: None,
            storage: None,
        }
    }
}

/// The canned checkpoint note of a tree of `size` leaves.
pub fn canned_checkpoint(size: u64) -> String {
    format!("stele.test/fake\n{size}\nAAAA\n\n\u{2014} stele.test/fake AbCd\n")
}

/// A receipt of the right shape (not a valid proof).
pub fn canned_receipt(id: TransactionId, size: u64) -> Receipt {
    Receipt {
        transaction_id: id,
        leaf_index: id.seqno - 1,
        write_set_digest: Digest([3; 32]),
        commit_evidence: CommitEvidence {
            transaction_id: id,
            secret: [7; 32],
        },
        claims_digest: Digest::ZERO,
        command_digest: None,
        proof: vec![Digest([1; 32])],
        tree_size: size,
        root: Digest([2; 32]),
        checkpoint: canned_checkpoint(size),
    }
}
