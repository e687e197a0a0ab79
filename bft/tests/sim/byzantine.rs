//! Byzantine hosts: the real node with one decision swapped, test side only.

use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use stele_bft::{
    sign_proposal, sign_vote, CommitCertificate, Decision, Height, Message, NilOrVal, Proposal,
    Round, Signature, SignedVote, ValidatorId, Value, Vote, VoteType,
};

use super::cluster::{Cluster, Payload};

/// Old messages the garbage node keeps to replay.
pub const REPLAY_KEPT_MAX: usize = 256;

fn own_id(node: usize) -> ValidatorId {
    ValidatorId(node as u64 + 1)
}

/// The view base the faulty node signs with: its node's, for its height.
fn view_base(cluster: &Cluster, node: usize) -> u64 {
    cluster.hosts[node].node.as_ref().map_or_else(
        || cluster.hosts[node].next_view_base(),
        |bft| bft.view_base(),
    )
}

/// A value no honest node proposes.
fn ghost(height: Height, tag: &str) -> Value {
    Value::new(format!("ghost\n{height}\n"), tag.as_bytes().to_vec()).expect("well formed")
}

/// Sends `first` to half of the peers and `second` to the other half.
fn split(cluster: &mut Cluster, node: usize, first: Message, second: Message) {
    for to in 0..cluster.hosts.len() {
        if to == node {
            continue;
        }
        let message = if to % 2 == 0 { &first } else { &second };
        cluster.send(node, to, Payload::message(message));
    }
}

/// Equivocation: two proposals (different values) for one height and round,
/// and for each vote a conflicting one, each to half of the peers.
pub fn equivocate(cluster: &mut Cluster, node: usize, message: Message) {
    let key = cluster.hosts[node].key.clone();
    match &message {
        Message::Proposal(proposal) if proposal.proposer == own_id(node) => {
            let mut payload = proposal.value.payload().to_vec();
            payload.extend_from_slice(b"/twin");
            let body = proposal.value.checkpoint_body().to_string();
            let twin = Proposal {
                value: Value::new(body, payload).expect("the same body"),
                ..proposal.message.clone()
            };
            let base = view_base(cluster, node);
            let twin = Message::Proposal(sign_proposal(&key, twin, base));
            split(cluster, node, message, twin);
        }
        Message::Vote(vote) if vote.validator == own_id(node) => {
            let other = match vote.value_id {
                NilOrVal::Nil => NilOrVal::Val(ghost(vote.height, "equivocation").id()),
                NilOrVal::Val(_) => NilOrVal::Nil,
            };
            let conflicting = Vote {
                value_id: other,
                ..vote.message.clone()
            };
            let base = view_base(cluster, node);
            let conflicting = Message::Vote(sign_vote(&key, conflicting, base));
            split(cluster, node, message, conflicting);
        }
        _ => cluster.send_all(node, Payload::message(&message)),
    }
}

fn signed(
    node_key: &ed25519_dalek::SigningKey,
    vote_type: VoteType,
    (height, round): (Height, Round),
    value: NilOrVal<stele_bft::ValueId>,
    validator: ValidatorId,
    view_base: u64,
) -> SignedVote {
    let vote = stele_bft::context::new_vote(vote_type, height, round, value, validator);
    sign_vote(node_key, vote, view_base)
}

/// Vote-all: on every proposal it sees, valid or not, it prevotes and
/// precommits the value (on top of what its node does), signing with its
/// node's view base.
pub fn vote_for_everything(cluster: &mut Cluster, node: usize, message: &Message) {
    let Message::Proposal(proposal) = message else {
        return;
    };
    let key = cluster.hosts[node].key.clone();
    let base = view_base(cluster, node);
    let value = NilOrVal::Val(proposal.value.id());
    let at = (proposal.height, proposal.round);
    for vote_type in [VoteType::Prevote, VoteType::Precommit] {
        let vote = signed(&key, vote_type, at, value.clone(), own_id(node), base);
        cluster.send_all(node, Payload::message(&Message::Vote(vote)));
    }
}

fn random_signature(cluster: &mut Cluster) -> Signature {
    let mut bytes = [0u8; 64];
    cluster.net.fill_bytes(&mut bytes);
    Signature(bytes)
}

/// Garbage: replays old messages, sends damaged bytes and forged messages
/// (bad signatures, votes and proposals in other validators' names, forged
/// certificates).
pub fn send_garbage(cluster: &mut Cluster, node: usize) {
    let key = cluster.hosts[node].key.clone();
    let nodes = cluster.hosts.len();
    let base = view_base(cluster, node);
    let received = &mut cluster.hosts[node].received;
    if received.len() > REPLAY_KEPT_MAX {
        received.drain(..received.len() - REPLAY_KEPT_MAX);
    }
    // Replays of old votes and proposals, from any height and round, and one
    // with a byte changed (it may not decode).
    for replay in 0..3 {
        let old = cluster.hosts[node]
            .received
            .choose(&mut cluster.net)
            .cloned();
        if let Some(old) = old {
            let mut bytes = old.encode();
            if replay == 0 {
                let at = cluster.net.gen_range(0..bytes.len());
                bytes[at] ^= 1 << cluster.net.gen_range(0..8);
            }
            cluster.send_all(node, Payload::Consensus(bytes));
        }
    }
    let height = Height(cluster.hosts[node].committed.len() as u64 + 1);
    let round = Round::new(cluster.net.gen_range(0..3));
    let victim = ValidatorId(cluster.net.gen_range(1..=nodes as u64));
    let ghost = ghost(height, "garbage");
    let at = (height, round);
    // A vote with a random signature in the victim's name.
    let value = NilOrVal::Val(ghost.id());
    let mut forged = signed(&key, VoteType::Precommit, at, value.clone(), victim, base);
    forged.signature = random_signature(cluster);
    cluster.send_all(node, Payload::message(&Message::Vote(forged)));
    // A vote in the victim's name, signed with this node's key.
    let impersonated = signed(&key, VoteType::Prevote, at, value.clone(), victim, base);
    cluster.send_all(node, Payload::message(&Message::Vote(impersonated)));
    // A proposal in the victim's name, signed with this node's key.
    let proposal = Proposal {
        height,
        round,
        value: ghost.clone(),
        pol_round: Round::Nil,
        proposer: victim,
    };
    let proposal = sign_proposal(&key, proposal, base);
    cluster.send_all(node, Payload::message(&Message::Proposal(proposal)));
    // A decision with random signatures from every validator, and one that
    // counts this node's genuine precommit once per validator slot.
    let mut forged_certificate = CommitCertificate {
        height,
        round,
        value_id: ghost.id(),
        commit_signatures: Vec::new(),
    };
    for id in 1..=nodes as u64 {
        let signature = random_signature(cluster);
        forged_certificate
            .commit_signatures
            .push(stele_bft::CommitSignature::new(ValidatorId(id), signature));
    }
    let view = stele_bft::round_view(height, base, round);
    let decision = |certificate| Decision {
        height,
        view,
        value: ghost.clone(),
        certificate,
    };
    let payload = Payload::SyncResponse(decision(forged_certificate.clone()).encode());
    cluster.send_all(node, payload);
    let genuine = signed(&key, VoteType::Precommit, at, value, own_id(node), base);
    forged_certificate.commit_signatures = (0..nodes)
        .map(|_| stele_bft::CommitSignature::new(own_id(node), genuine.signature))
        .collect();
    let payload = Payload::SyncResponse(decision(forged_certificate).encode());
    cluster.send_all(node, payload);
}
