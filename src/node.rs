//! [`NodeHandle`]: the engine seen through the HTTP layer's [`stele_api::Node`]
//! contract, plus the node's own metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use stele_api::prometheus_client::collector::Collector;
use stele_api::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use stele_api::prometheus_client::metrics::counter::ConstCounter;
use stele_api::prometheus_client::metrics::gauge::ConstGauge;
use stele_api::prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use stele_api::prometheus_client::registry::Registry;
use stele_api::{
    KvValue, Node, NodeError, NodeState, PublicKeyInfo, Submitted, TxStatus, ValidatorsInfo,
};
use stele_consensus::history::HistoryReadError;
use stele_consensus::{ConsensusError, Engine, Submission, SubmitError, TxState};
use stele_frontends::{Command, Outcome};
use stele_history::hash::encode_lower_hex;
use stele_history::{Digest, Receipt, TransactionId};
use stele_kv::{Frozen, ReadView};
use stele_ledger::Clearable;

/// The node as the HTTP layer sees it.
pub struct NodeHandle {
    engine: Arc<Engine>,
    node_id: String,
    ledger_dir: std::path::PathBuf,
    commit_latency: Histogram,
}

impl NodeHandle {
    /// Wraps `engine`, registering the node's metrics in `registry`.
    pub fn new(
        engine: Arc<Engine>,
        ledger_dir: std::path::PathBuf,
        registry: &mut Registry,
    ) -> Self {
        let key = engine.identity().signer().verifier().key().to_bytes();
        let commit_latency = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "stele_commit_latency_seconds",
            "Time from submission to commit of transactions that waited for it",
            commit_latency.clone(),
        );
        registry.register_collector(Box::new(EngineMetrics(Arc::clone(&engine))));
        NodeHandle {
            engine,
            node_id: encode_lower_hex(&key[..8]),
            ledger_dir,
            commit_latency,
        }
    }

    fn ledger_bytes(&self) -> u64 {
        std::fs::read_dir(&self.ledger_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.metadata().ok())
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn from_consensus(error: ConsensusError) -> NodeError {
    match error {
        ConsensusError::Submit(refused) => from_submit(refused),
        ConsensusError::Stopped(_) => NodeError::Unavailable(error.to_string()),
        other => NodeError::Internal(other.to_string()),
    }
}

/// A refusal the client can retry, as the API's error.
fn from_submit(error: SubmitError) -> NodeError {
    match error {
        SubmitError::Busy { .. } | SubmitError::Overloaded { .. } => {
            NodeError::Busy(error.to_string())
        }
        SubmitError::Stopped(_) => NodeError::Unavailable(error.to_string()),
        // A full disk is 507; no file handles is 503 (both clear by themselves).
        SubmitError::Storage(ref condition) => match condition.kind {
            Clearable::Full => NodeError::InsufficientStorage(error.to_string()),
            Clearable::Descriptors => NodeError::Unavailable(error.to_string()),
        },
        SubmitError::NotLeader { ref address, .. } => NodeError::NotLeader {
            leader_address: address.clone(),
            message: error.to_string(),
        },
    }
}

impl Node for NodeHandle {
    async fn read_barrier(&self) -> Result<(), NodeError> {
        self.engine
            .ensure_linearizable()
            .await
            .map_err(from_consensus)
    }

    fn submit(
        &self,
        command: Command,
        wait: bool,
    ) -> impl std::future::Future<Output = Result<Submitted, NodeError>> + Send {
        let started = Instant::now();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        // Queued now, not at the first poll: the trait promises submission order.
        let queued = self
            .engine
            .submit(Submission {
                command,
                wait,
                reply: Box::new(move |result| {
                    // The client may have gone away; the transaction stands anyway.
                    let _ = sender.send(result);
                }),
            })
            .map_err(from_submit);
        let commit_latency = self.commit_latency.clone();
        async move {
            queued?;
            let result = receiver
                .await
                .map_err(|_| {
                    NodeError::Unavailable("the node stopped before answering".to_owned())
                })?
                .map_err(from_submit)?;
            if result.committed {
                commit_latency.observe(started.elapsed().as_secs_f64());
            }
            Ok(Submitted {
                transaction_id: result.transaction_id,
                status: if result.committed {
                    TxStatus::Committed
                } else {
                    TxStatus::Pending
                },
                outcome: match result.outcome {
                    Outcome::Completed(value) => Ok(value),
                    Outcome::Aborted(reason) => Err(reason),
                },
            })
        }
    }

    fn kv_get(&self, map: &str, key: &str) -> Result<Option<KvValue>, NodeError> {
        let Some((bytes, transaction_id)) = self.engine.kv_get(map, key) else {
            return Ok(None);
        };
        Ok(Some(KvValue {
            value: bytes,
            transaction_id,
        }))
    }

    fn read_committed<R>(&self, read: impl FnOnce(&dyn ReadView) -> R) -> R {
        self.engine.read_committed(|view| read(view))
    }

    fn frozen_committed(&self) -> Frozen {
        self.engine.freeze_committed()
    }

    fn tx_status(&self, id: TransactionId) -> TxStatus {
        match self.engine.tx_state(id) {
            TxState::Unknown => TxStatus::Unknown,
            TxState::Pending => TxStatus::Pending,
            TxState::Committed => TxStatus::Committed,
            TxState::Invalid => TxStatus::Invalid,
        }
    }

    fn last_committed(&self) -> Option<TransactionId> {
        self.engine.last_committed()
    }

    fn receipt(&self, id: TransactionId) -> Result<Receipt, NodeError> {
        self.engine.receipt(id).map_err(|error| match error {
            HistoryReadError::WrongView => NodeError::BadRequest {
                code: stele_api::codes::INVALID_TRANSACTION_ID,
                message: format!(
                    "transaction {id} does not exist: its seqno belongs to another view"
                ),
            },
            HistoryReadError::NotCommitted | HistoryReadError::InvalidRange => {
                NodeError::NotFound(format!("transaction {id} is not committed"))
            }
            HistoryReadError::Unavailable(_) | HistoryReadError::NeedsTile(_) => {
                NodeError::Unavailable(error.to_string())
            }
        })
    }

    fn checkpoint(&self) -> Option<String> {
        self.engine.checkpoint()
    }

    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, NodeError> {
        self.engine
            .consistency(from, to)
            .map_err(|error| match error {
                HistoryReadError::Unavailable(_) | HistoryReadError::NeedsTile(_) => {
                    NodeError::Unavailable(error.to_string())
                }
                _ => NodeError::BadRequest {
                    code: stele_api::codes::INVALID_RANGE,
                    message: format!(
                        "no consistency proof from {from} to {to}: it needs from <= to <= {} \
                         (the committed tree size)",
                        self.engine.committed_seqno()
                    ),
                },
            })
    }

    fn public_key(&self) -> PublicKeyInfo {
        let identity = self.engine.identity();
        let verifier = identity.signer().verifier();
        PublicKeyInfo {
            public_key: encode_lower_hex(&verifier.key().to_bytes()),
            verifier_key: verifier.to_verifier_key(),
            origin: identity.origin().to_owned(),
        }
    }

    fn validators(&self) -> Option<ValidatorsInfo> {
        let identity = self.engine.identity();
        identity
            .validators()
            .map(|validators| ValidatorsInfo::from_quorum(identity.origin(), validators))
    }

    fn state(&self) -> NodeState {
        let raft = self.engine.status();
        let role = if self.engine.failure().is_some() {
            "Stopped"
        } else {
            match raft.role.as_str() {
                "Leader" => "Primary",
                "Follower" => "Backup",
                other => other,
            }
        };
        NodeState {
            node_id: self.node_id.clone(),
            role: role.to_owned(),
            view: raft.term,
            last_committed: self.engine.last_committed(),
            ledger_seqno: self.engine.executed_seqno(),
            ledger_bytes: self.ledger_bytes(),
            raft_node_id: raft.node_id,
            leader: raft.leader,
            leader_address: raft.leader_address,
            divergences: raft.divergences,
            last_divergence: raft.last_divergence,
            snapshots_installed: raft.snapshots_installed,
            leaves_in_memory_from: self.engine.leaves_in_memory_from(),
            ledger_skipped: self.engine.ledger_skipped(),
            storage: self
                .engine
                .storage_condition()
                .map(|condition| condition.to_string()),
        }
    }
}

/// The engine's counters, read at each scrape.
struct EngineMetrics(Arc<Engine>);

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineMetrics")
    }
}

impl Collector for EngineMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.0.counters();
        for (name, help, value) in [
            (
                "stele_batches",
                "Batches executed",
                counters.batches.load(Ordering::Relaxed),
            ),
            (
                "stele_transactions_executed",
                "Transactions executed",
                counters.transactions.load(Ordering::Relaxed),
            ),
            (
                "stele_transactions_committed",
                "Transactions committed",
                counters.committed.load(Ordering::Relaxed),
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let seqno = i64::try_from(self.0.committed_seqno()).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(seqno);
        gauge.encode(encoder.encode_descriptor(
            "stele_committed_seqno",
            "Seqno of the last committed transaction",
            None,
            gauge.metric_type(),
        )?)?;
        Ok(())
    }
}
