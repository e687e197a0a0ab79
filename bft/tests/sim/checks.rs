//! The invariants checked at every decision and every vote an honest node
//! sends (the run's end checks are in `Cluster::run`).

use stele_bft::{
    verify_certificate, CommitCertificate, Height, Message, NilOrVal, SteleContext, ValidatorId,
    Value,
};

use super::cluster::{is_valid_value, Cluster, Decision};

/// A decision: committed in order; for honest nodes, its certificate
/// verifies, its value is valid, and it agrees with every other honest node.
pub fn on_decided(
    cluster: &mut Cluster,
    node: usize,
    height: Height,
    value: Value,
    certificate: CommitCertificate<SteleContext>,
) {
    let host = &mut cluster.hosts[node];
    if height.0 != host.committed.len() as u64 + 1 {
        cluster.violations.push(format!(
            "node {node} decided height {height} after committing {}",
            host.committed.len()
        ));
        return;
    }
    // The ledger commits, then the WAL of the decided height is dropped.
    host.committed.push((value.clone(), certificate.clone()));
    host.wal.retain(|entry| entry.height > height);
    if !cluster.plan.is_honest(node) {
        return;
    }
    cluster.trace.push(Decision {
        at_ms: cluster.now_ms,
        node,
        height,
        round: certificate.round,
        value: value.id(),
    });
    if let Err(error) = verify_certificate(&certificate, value.id(), &cluster.validators) {
        cluster
            .violations
            .push(format!("node {node} height {height}: certificate: {error}"));
    }
    if !is_valid_value(&value) {
        cluster.violations.push(format!(
            "node {node} decided an invalid value at height {height} ({})",
            String::from_utf8_lossy(value.bytes())
        ));
    }
    match cluster.decided.get(&height) {
        Some(first) if *first != value.id() => cluster.violations.push(format!(
            "disagreement at height {height}: node {node} decided {} but another honest \
             node decided {first}",
            value.id()
        )),
        Some(_) => {}
        None => {
            cluster.decided.insert(height, value.id());
        }
    }
}

/// Checks an honest node never signs two different votes of one kind at a
/// height and round, across restarts.
pub fn record_own_vote(cluster: &mut Cluster, node: usize, message: &Message) {
    let Message::Vote(vote) = message else { return };
    if vote.validator != ValidatorId(node as u64 + 1) {
        return;
    }
    let kind = vote.vote_type as u8;
    let value = match vote.value_id {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(id),
    };
    let key = (node, kind, vote.height.0, vote.round.as_i64());
    match cluster.votes_signed.get(&key) {
        Some(previous) if *previous != value => cluster.violations.push(format!(
            "node {node} signed two different {:?}s at height {} round {}",
            vote.vote_type, vote.height, vote.round
        )),
        Some(_) => {}
        None => {
            cluster.votes_signed.insert(key, value);
        }
    }
}
