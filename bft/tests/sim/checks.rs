//! The invariants checked at every decision and every vote an honest node
//! sends (the run's end checks are in `Cluster::run`).

use ed25519_dalek::Signature as Ed25519Signature;
use stele_bft::{
    commit_note_text, round_view, select_proposer, verify_certificate, Decision, Message, NilOrVal,
    ValidatorId,
};

use super::cluster::{is_valid_value, Cluster, TraceLine};

/// A decision: committed in order; for honest nodes, its certificate
/// verifies (through the crate, and as Ed25519 note signatures checked here),
/// its value is valid, and it agrees with every other honest node.
pub fn on_decided(cluster: &mut Cluster, node: usize, decision: Decision) {
    let host = &mut cluster.hosts[node];
    let height = decision.height;
    if height.0 != host.committed.len() as u64 + 1 {
        cluster.violations.push(format!(
            "node {node} decided height {height} after committing {}",
            host.committed.len()
        ));
        return;
    }
    let base = host.next_view_base();
    // The ledger commits, then the WAL of the decided height is dropped.
    host.committed.push(decision.clone());
    host.wal.retain(|entry| entry.height > height);
    if !cluster.plan.is_honest(node) {
        return;
    }
    let Decision {
        view,
        value,
        certificate,
        ..
    } = decision;
    let id = value.id();
    // A round runs in round_view(height, base, round); a synced decision may
    // come in the view its signers had, when this node's base diverged (the
    // crate counts and adopts it).
    if view != round_view(height, base, certificate.round) {
        cluster.views_adopted += 1;
    }
    cluster.trace.push(TraceLine {
        at_ms: cluster.now_ms,
        node,
        height,
        round: certificate.round,
        view,
        proposer: select_proposer(&cluster.validators, view).id,
        value: id.clone(),
    });
    if let Err(error) = verify_certificate(&certificate, &id, &cluster.validators, view) {
        cluster
            .violations
            .push(format!("node {node} height {height}: certificate: {error}"));
    }
    // Each commit signature is an Ed25519 signature of the note text, checked
    // with ed25519-dalek directly (not through the crate).
    let text = commit_note_text(height, certificate.round, view, &id);
    for signature in &certificate.commit_signatures {
        let Some(signer) = cluster.validators.get(signature.address) else {
            continue; // verify_certificate reported it
        };
        let ed25519 = Ed25519Signature::from_bytes(&signature.signature.0);
        if signer
            .public_key
            .verify_strict(text.as_bytes(), &ed25519)
            .is_err()
        {
            cluster.violations.push(format!(
                "node {node} height {height}: {}'s commit signature is not a note signature \
                 of {text:?}",
                signature.address
            ));
        }
    }
    if !is_valid_value(&value) {
        cluster.violations.push(format!(
            "node {node} decided an invalid value at height {height} ({})",
            String::from_utf8_lossy(value.payload())
        ));
    }
    match cluster.decided.get(&height) {
        Some(first) if *first != id => cluster.violations.push(format!(
            "disagreement at height {height}: node {node} decided {id} but another honest \
             node decided {first}"
        )),
        Some(_) => {}
        None => {
            cluster.decided.insert(height, id);
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
    let value = match &vote.value_id {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(id.clone()),
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
