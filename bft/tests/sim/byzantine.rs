//! Byzantine hosts: the real node with one decision swapped, test side only.

use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use stele_bft::{
    sign_proposal, sign_vote, CommitCertificate, Height, Message, NilOrVal, Proposal, Round,
    Signature, SignedVote, ValidatorId, Value, Vote, VoteType,
};

use super::cluster::{Cluster, Payload};

/// Old messages the garbage node keeps to replay.
pub const REPLAY_KEPT_MAX: usize = 256;

fn own_id(node: usize) -> ValidatorId {
    ValidatorId(node as u64 + 1)
}

/// Sends `first` to half of the peers and `second` to the other half.
fn split(cluster: &mut Cluster, node: usize, first: Message, second: Message) {
    for to in 0..cluster.hosts.len() {
        if to == node {
            continue;
        }
        let message = if to % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        cluster.send(node, to, Payload::Consensus(message));
    }
}

/// Equivocation: two proposals (different values) for one height and round,
/// and for each vote a conflicting one, each to half of the peers.
pub fn equivocate(cluster: &mut Cluster, node: usize, message: Message) {
    let key = cluster.hosts[node].key.clone();
    match &message {
        Message::Proposal(proposal) if proposal.proposer == own_id(node) => {
            let mut bytes = proposal.value.bytes().to_vec();
            bytes.extend_from_slice(b"/twin");
            let twin = Proposal {
                value: Value::new(bytes),
                ..proposal.message.clone()
            };
            let twin = Message::Proposal(sign_proposal(&key, twin));
            split(cluster, node, message, twin);
        }
        Message::Vote(vote) if vote.validator == own_id(node) => {
            let other = match vote.value_id {
                NilOrVal::Nil => NilOrVal::Val(Value::new(b"ghost".to_vec()).id()),
                NilOrVal::Val(_) => NilOrVal::Nil,
            };
            let conflicting = Vote {
                value_id: other,
                ..vote.message.clone()
            };
            let conflicting = Message::Vote(sign_vote(&key, conflicting));
            split(cluster, node, message, conflicting);
        }
        _ => cluster.send_all(node, Payload::Consensus(message)),
    }
}

fn signed(
    node_key: &ed25519_dalek::SigningKey,
    vote_type: VoteType,
    height: Height,
    round: Round,
    value: NilOrVal<stele_bft::ValueId>,
    validator: ValidatorId,
) -> SignedVote {
    sign_vote(
        node_key,
        stele_bft::context::new_vote(vote_type, height, round, value, validator),
    )
}

/// Vote-all: on every proposal it sees, valid or not, it prevotes and
/// precommits the value (on top of what its node does).
pub fn vote_for_everything(cluster: &mut Cluster, node: usize, message: &Message) {
    let Message::Proposal(proposal) = message else {
        return;
    };
    let key = cluster.hosts[node].key.clone();
    let value = NilOrVal::Val(proposal.value.id());
    for vote_type in [VoteType::Prevote, VoteType::Precommit] {
        let vote = signed(
            &key,
            vote_type,
            proposal.height,
            proposal.round,
            value,
            own_id(node),
        );
        cluster.send_all(node, Payload::Consensus(Message::Vote(vote)));
    }
}

fn random_signature(cluster: &mut Cluster) -> Signature {
    let mut bytes = [0u8; 64];
    cluster.net.fill_bytes(&mut bytes);
    Signature(bytes)
}

/// Garbage: replays old messages and sends forged ones (bad signatures,
/// votes and proposals in other validators' names, forged certificates).
pub fn send_garbage(cluster: &mut Cluster, node: usize) {
    let key = cluster.hosts[node].key.clone();
    let nodes = cluster.hosts.len();
    let received = &mut cluster.hosts[node].received;
    if received.len() > REPLAY_KEPT_MAX {
        received.drain(..received.len() - REPLAY_KEPT_MAX);
    }
    // Replays of old votes and proposals, from any height and round.
    for _ in 0..3 {
        let old = cluster.hosts[node]
            .received
            .choose(&mut cluster.net)
            .cloned();
        if let Some(old) = old {
            cluster.send_all(node, Payload::Consensus(old));
        }
    }
    let height = Height(cluster.hosts[node].committed.len() as u64 + 1);
    let round = Round::new(cluster.net.gen_range(0..3));
    let victim = ValidatorId(cluster.net.gen_range(1..=nodes as u64));
    let ghost = Value::new(format!("ghost/{height}").into_bytes());
    // A vote with a random signature in the victim's name.
    let mut forged = signed(
        &key,
        VoteType::Precommit,
        height,
        round,
        NilOrVal::Val(ghost.id()),
        victim,
    );
    forged.signature = random_signature(cluster);
    cluster.send_all(node, Payload::Consensus(Message::Vote(forged)));
    // A vote in the victim's name, signed with this node's key.
    let impersonated = signed(
        &key,
        VoteType::Prevote,
        height,
        round,
        NilOrVal::Val(ghost.id()),
        victim,
    );
    cluster.send_all(node, Payload::Consensus(Message::Vote(impersonated)));
    // A proposal in the victim's name, signed with this node's key.
    let proposal = Proposal {
        height,
        round,
        value: ghost.clone(),
        pol_round: Round::Nil,
        proposer: victim,
    };
    let proposal = sign_proposal(&key, proposal);
    cluster.send_all(node, Payload::Consensus(Message::Proposal(proposal)));
    // A certificate with random signatures from every validator, and one that
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
    cluster.send_all(
        node,
        Payload::SyncResponse(ghost.bytes().to_vec(), forged_certificate.clone()),
    );
    let genuine = signed(
        &key,
        VoteType::Precommit,
        height,
        round,
        NilOrVal::Val(ghost.id()),
        own_id(node),
    );
    forged_certificate.commit_signatures = (0..nodes)
        .map(|_| stele_bft::CommitSignature::new(own_id(node), genuine.signature))
        .collect();
    cluster.send_all(
        node,
        Payload::SyncResponse(ghost.bytes().to_vec(), forged_certificate),
    );
}
