//! The invariants checked at the end of a run, once every node is back and has
//! caught up. Each check collects every violation it finds, so a failure names
//! all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::seq::SliceRandom;
use stele_consensus::{Engine, TxState};
use stele_history::{Digest, Receipt, TransactionId};
use stele_ledger::verify_ledger;

use super::client::{Answered, KEYS, MAP};
use super::cluster::{service_key, Cluster, Stopped};
use super::schedule::{rng, NODES, STREAM_CHECKS};

/// Receipts checked on every node, besides the first and last transactions.
const RECEIPT_SAMPLE: usize = 24;

/// What the clients saw during the run.
#[derive(Debug, Default)]
pub struct Evidence {
    pub answered: Vec<Answered>,
    pub observed: Vec<(u64, TransactionId)>,
    pub violations: Vec<String>,
}

/// The agreed end state, for the ledger checks.
#[derive(Debug, Clone)]
pub struct Agreed {
    pub committed_seqno: u64,
    pub last: TransactionId,
    pub root: Digest,
}

fn fail(violations: Vec<String>) -> Result<(), String> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

/// No node stopped on an error or refused an honest leader's batch: with
/// deterministic execution either is a bug.
pub fn check_health(engines: &BTreeMap<u64, Arc<Engine>>, stopped: &[Stopped]) -> Vec<String> {
    let mut violations = Vec::new();
    let live = engines.iter().map(|(&node, engine)| {
        let status = engine.status();
        (
            node,
            engine.failure(),
            status.divergences,
            status.last_divergence,
        )
    });
    let stopped = stopped.iter().map(|report| {
        let divergence = report.last_divergence.clone();
        (
            report.node,
            report.failure.clone(),
            report.divergences,
            divergence,
        )
    });
    for (node, failure, divergences, last) in live.chain(stopped) {
        if let Some(failure) = failure {
            violations.push(format!("node {node} failed: {failure}"));
        }
        if divergences > 0 {
            violations.push(format!(
                "node {node} refused {divergences} batch(es) as divergent; last: {}",
                last.unwrap_or_default()
            ));
        }
    }
    violations
}

/// Invariants 1, 3 and 4 on the running, converged nodes.
pub fn check_live(
    seed: u64,
    engines: &BTreeMap<u64, Arc<Engine>>,
    evidence: &Evidence,
) -> Result<Agreed, String> {
    let mut violations = evidence.violations.clone();
    if engines.len() != NODES as usize {
        return Err(format!("only nodes {:?} run", engines.keys()));
    }
    let (first_node, first) = engines.iter().next().unwrap();
    let committed_seqno = first.committed_seqno();
    let last = first
        .last_committed()
        .ok_or_else(|| format!("node {first_node} has no committed transaction"))?;
    for (node, engine) in engines {
        let (seqno, id) = (engine.committed_seqno(), engine.last_committed());
        if seqno != committed_seqno || id != Some(last) {
            violations.push(format!(
                "node {node} committed up to {seqno} ({id:?}), node {first_node} up to \
                 {committed_seqno} ({last})"
            ));
        }
    }

    // 1. Every transaction answered committed, or reported committed by a read,
    //    is committed with that id on every node; two answers never share a seqno.
    let mut by_seqno: BTreeMap<u64, TransactionId> = BTreeMap::new();
    for answered in &evidence.answered {
        if let Some(other) = by_seqno.insert(answered.id.seqno, answered.id) {
            violations.push(format!(
                "two submissions were answered committed at seqno {}: {other} and {}",
                answered.id.seqno, answered.id
            ));
        }
    }
    let answered = evidence.answered.iter().map(|a| (0, a.id));
    let claimed: BTreeSet<(u64, TransactionId)> =
        answered.chain(evidence.observed.iter().copied()).collect();
    for (source, id) in &claimed {
        let source = match source {
            0 => "answered committed".to_owned(),
            node => format!("read as committed on node {node}"),
        };
        for (node, engine) in engines {
            let state = engine.tx_state(*id);
            if state != TxState::Committed {
                violations.push(format!("{id} ({source}) is {state:?} on node {node}"));
            }
        }
    }

    // 3. Receipts: the same on every node, and they verify with the service key.
    let key = service_key();
    let mut sample: Vec<TransactionId> = evidence.answered.iter().map(|a| a.id).collect();
    sample.shuffle(&mut rng(seed, STREAM_CHECKS));
    sample.truncate(RECEIPT_SAMPLE);
    sample.extend(tx_at(first, 1));
    sample.push(last);
    let mut root = None;
    for id in sample {
        let receipts: Vec<(u64, Result<Receipt, String>)> = engines
            .iter()
            .map(|(&node, engine)| (node, engine.receipt(id).map_err(|e| format!("{e:?}"))))
            .collect();
        let Some((reference_node, reference)) =
            receipts.iter().find(|(_, receipt)| receipt.is_ok())
        else {
            violations.push(format!("no node has a receipt of {id}"));
            continue;
        };
        for (node, receipt) in &receipts {
            match receipt {
                // A node that resumed at a snapshot has no receipt of what
                // precedes it (the error says so); its other answers count.
                Err(error) if error.contains("joined from a snapshot") => {}
                Err(error) => {
                    violations.push(format!("no receipt of {id} on node {node}: {error}"))
                }
                Ok(receipt) => {
                    if let Err(error) = receipt.verify(&key) {
                        violations.push(format!("the receipt of {id} on node {node}: {error}"));
                    }
                    if receipt.tree_size < id.seqno || receipt.tree_size > committed_seqno {
                        violations.push(format!(
                            "the receipt of {id} on node {node} is over a tree of {}",
                            receipt.tree_size
                        ));
                    }
                    if reference.as_ref().ok() != Some(receipt) {
                        violations.push(format!(
                            "the receipts of {id} differ between nodes {reference_node} and {node}"
                        ));
                    }
                    if id == last {
                        root = Some(receipt.root);
                    }
                }
            }
        }
    }
    let checkpoints: BTreeSet<Option<String>> =
        engines.values().map(|engine| engine.checkpoint()).collect();
    if checkpoints.len() != 1 {
        violations.push(format!("the committed checkpoints differ: {checkpoints:?}"));
    }

    violations.extend(check_kv(engines, &evidence.answered));
    fail(violations)?;
    Ok(Agreed {
        committed_seqno,
        last,
        root: root.ok_or("no receipt of the last committed transaction")?,
    })
}

/// The id of the transaction at `seqno` on `engine`, by asking its state in
/// every view up to the current one.
fn tx_at(engine: &Engine, seqno: u64) -> Option<TransactionId> {
    (1..=engine.view())
        .map(|view| TransactionId { view, seqno })
        .find(|id| engine.tx_state(*id) == TxState::Committed)
}

/// A committed value and the transaction that wrote it.
type Committed = (Vec<u8>, TransactionId);

/// Committed state: every node serves the same value and writer for every key,
/// and no write answered committed was lost (the key's writer is at least as
/// recent, and is the answered write itself when at the same seqno).
fn check_kv(engines: &BTreeMap<u64, Arc<Engine>>, answered: &[Answered]) -> Vec<String> {
    let mut violations = Vec::new();
    for key in KEYS {
        let values: Vec<(u64, Option<Committed>)> = engines
            .iter()
            .map(|(&node, engine)| (node, engine.kv_get(MAP, key)))
            .collect();
        let (reference_node, reference) = &values[0];
        for (node, value) in &values[1..] {
            if value != reference {
                violations.push(format!(
                    "{key} is {value:?} on node {node} but {reference:?} on node {reference_node}"
                ));
            }
        }
        let latest = answered
            .iter()
            .filter_map(|a| {
                let written = a.writes.iter().find(|(k, _)| k == key)?;
                Some((a.id, written.1.clone()))
            })
            .max_by_key(|(id, _)| id.seqno);
        let (Some((id, written)), Some((value, writer))) = (latest, reference.clone()) else {
            continue;
        };
        let value = String::from_utf8_lossy(&value).into_owned();
        if writer.seqno < id.seqno {
            violations.push(format!(
                "{key} was last written by {writer}, before {id} answered committed"
            ));
        } else if writer.seqno == id.seqno && (writer != id || written.as_ref() != Some(&value)) {
            violations.push(format!(
                "{key} holds {value:?} from {writer}, but {id} wrote {written:?}"
            ));
        }
        if let Some(other) = answered.iter().find(|a| a.id == writer) {
            let wrote = other.writes.iter().find(|(k, _)| k == key);
            if wrote.map(|(_, v)| v.as_ref()) != Some(Some(&value)) {
                violations.push(format!(
                    "{key} holds {value:?} from {writer}, which wrote {wrote:?}"
                ));
            }
        }
    }
    violations
}

/// Invariant 2 on the stopped nodes: every ledger re-hashes and verifies with
/// the service key, and ends at the agreed committed checkpoint.
pub fn check_ledgers(cluster: &Cluster, agreed: &Agreed) -> Result<(), String> {
    let key = service_key();
    let mut violations = Vec::new();
    for node in 1..=NODES {
        let dir = cluster.ledger_dir(node);
        match verify_ledger(&dir, Some(&key), &mut |_| {}) {
            Err(failure) => violations.push(format!("the ledger of node {node}: {failure}")),
            Ok(summary) => {
                let checkpoint = summary.last_checkpoint.as_ref();
                let ends = checkpoint.map(|c| (c.tree_size, c.root));
                // A ledger that resumed at a snapshot lacks what it skipped.
                let skipped: u64 = summary
                    .absent
                    .iter()
                    .map(|(first, last)| last - first + 1)
                    .sum();
                if ends != Some((agreed.committed_seqno, agreed.root))
                    || summary.transactions + skipped != agreed.committed_seqno
                {
                    violations.push(format!(
                        "the ledger of node {node} holds {} transactions and ends at {:?}; \
                         the cluster committed {} up to {} (root {:?})",
                        summary.transactions,
                        checkpoint,
                        agreed.committed_seqno,
                        agreed.last,
                        agreed.root
                    ));
                }
            }
        }
    }
    fail(violations)
}
