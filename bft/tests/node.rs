//! `BftNode` on its own: four nodes decide over a FIFO queue, the certificate
//! checks refuse tampered certificates, and a restarted node re-sends the
//! votes it logged (Ed25519 is deterministic, so equal messages here mean the
//! replay re-derived the same votes) without logging them again.

use std::collections::VecDeque;

use ed25519_dalek::SigningKey;
use stele_bft::{
    verify_certificate, AcceptAll, Action, BftConfig, BftError, BftNode, CommitCertificate,
    CommitSignature, Event, Height, LinearTimeouts, Message, SteleContext, Validator, ValidatorId,
    ValidatorSet, Value, WalEntry,
};

fn keys() -> Vec<SigningKey> {
    (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect()
}

fn validators(keys: &[SigningKey]) -> ValidatorSet {
    ValidatorSet::new(
        keys.iter()
            .enumerate()
            .map(|(i, key)| Validator {
                id: ValidatorId(i as u64 + 1),
                public_key: key.verifying_key(),
                power: 1,
            })
            .collect(),
    )
    .expect("four validators")
}

fn config(keys: &[SigningKey], node: usize) -> BftConfig {
    BftConfig {
        id: ValidatorId(node as u64 + 1),
        signing_key: keys[node].clone(),
        validators: validators(keys),
        timeouts: LinearTimeouts::default(),
    }
}

struct Run {
    nodes: Vec<BftNode>,
    wals: Vec<Vec<WalEntry>>,
    decided: Vec<(usize, Height, Value, CommitCertificate<SteleContext>)>,
    sent: Vec<(usize, Message)>,
}

/// Runs the nodes over a FIFO queue (no timeouts fire) until quiet or until
/// every node decided `heights` heights.
fn run(nodes: Vec<BftNode>, heights: u64) -> Run {
    let count = nodes.len();
    let mut run = Run {
        nodes,
        wals: vec![Vec::new(); count],
        decided: Vec::new(),
        sent: Vec::new(),
    };
    let mut queue: VecDeque<(usize, Event)> = (0..count).map(|i| (i, Event::Start)).collect();
    while let Some((node, event)) = queue.pop_front() {
        if run.nodes[node].height().0 > heights {
            continue;
        }
        for action in run.nodes[node].handle(event) {
            match action {
                Action::PersistWal(entry) => run.wals[node].push(entry),
                Action::Broadcast(message) => {
                    run.sent.push((node, message.clone()));
                    for to in (0..count).filter(|to| *to != node) {
                        let from = ValidatorId(node as u64 + 1);
                        queue.push_back((to, Event::Message(from, message.clone())));
                    }
                }
                Action::GetValue { height, round } => {
                    let bytes = format!("batch {height} {round}").into_bytes();
                    queue.push_back((node, Event::ValueToPropose(height, round, bytes)));
                }
                Action::Decided {
                    height,
                    value,
                    certificate,
                } => {
                    run.decided.push((node, height, value, certificate));
                }
                _ => {}
            }
        }
    }
    run
}

fn fresh_nodes(keys: &[SigningKey]) -> Vec<BftNode> {
    (0..4)
        .map(|i| BftNode::new(config(keys, i), Box::new(AcceptAll), Height(1)).expect("valid"))
        .collect()
}

#[test]
fn four_nodes_decide_and_certificates_verify() {
    let keys = keys();
    let run = run(fresh_nodes(&keys), 3);
    assert_eq!(run.decided.len(), 12, "4 nodes x 3 heights");
    let set = validators(&keys);
    for (_, height, value, certificate) in &run.decided {
        assert_eq!(certificate.height, *height);
        verify_certificate(certificate, value.id(), &set).expect("a decided certificate verifies");
    }
}

#[test]
fn tampered_certificates_are_refused() {
    let keys = keys();
    let run = run(fresh_nodes(&keys), 1);
    let set = validators(&keys);
    let (_, _, value, certificate) = run.decided[0].clone();
    assert!(certificate.commit_signatures.len() >= 3);

    let other = Value::new(b"other".to_vec());
    assert!(matches!(
        verify_certificate(&certificate, other.id(), &set),
        Err(BftError::CertificateValueMismatch { .. })
    ));

    let mut short = certificate.clone();
    short.commit_signatures.truncate(2);
    assert_eq!(
        verify_certificate(&short, value.id(), &set),
        Err(BftError::NotEnoughPower {
            signed: 2,
            total: 4
        })
    );

    let mut duplicated = short.clone();
    duplicated
        .commit_signatures
        .push(duplicated.commit_signatures[0].clone());
    assert!(matches!(
        verify_certificate(&duplicated, value.id(), &set),
        Err(BftError::DuplicateSigner(_))
    ));

    let mut unknown = certificate.clone();
    let signature = unknown.commit_signatures[0].signature;
    unknown
        .commit_signatures
        .push(CommitSignature::new(ValidatorId(9), signature));
    assert_eq!(
        verify_certificate(&unknown, value.id(), &set),
        Err(BftError::UnknownSigner(ValidatorId(9)))
    );

    let mut forged = certificate.clone();
    let first = forged.commit_signatures[0].address;
    let second = forged.commit_signatures[1].signature;
    forged.commit_signatures[0].signature = second;
    assert_eq!(
        verify_certificate(&forged, value.id(), &set),
        Err(BftError::BadSignature(first))
    );
}

#[test]
fn a_restarted_node_resends_its_logged_votes_with_the_same_signatures() {
    let keys = keys();
    // Height 1; node 3 then "crashes" before its host commits the decision
    // (so its WAL still holds height 1) and recovers from the WAL.
    let first = run(fresh_nodes(&keys), 1);
    let node = 3;
    let wal: Vec<WalEntry> = first.wals[node].clone();
    assert!(!wal.is_empty());
    let own_votes: Vec<Message> = first
        .sent
        .iter()
        .filter(|(from, message)| *from == node && matches!(message, Message::Vote(_)))
        .map(|(_, message)| message.clone())
        .collect();
    assert!(!own_votes.is_empty());
    let (recovered, actions) =
        BftNode::recover(config(&keys, node), Box::new(AcceptAll), Height(1), &wal)
            .expect("replay does not diverge");
    assert!(recovered.height() >= Height(1));
    let resent: Vec<Message> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Broadcast(message @ Message::Vote(_)) => Some(message.clone()),
            _ => None,
        })
        .collect();
    for vote in &own_votes {
        if let Message::Vote(v) = vote {
            if v.height == Height(1) {
                assert!(
                    resent.contains(vote),
                    "vote {v:?} was not re-sent as logged"
                );
            }
        }
    }
    assert!(
        !actions.iter().any(|a| matches!(a, Action::PersistWal(_))),
        "replayed entries are not logged again"
    );
}
