//! `BftNode` on its own: four nodes decide over a FIFO queue, the certificate
//! checks refuse tampered certificates, commit signatures are Ed25519 over the
//! note text, a restarted node re-sends the votes it logged (Ed25519 is
//! deterministic, so equal messages here mean the replay re-derived the same
//! votes) without logging them again, the proposer sticks across heights, and
//! parked nodes start a height only when told or given a reason.

mod common;

use common::{config, keys, validators};
use std::collections::VecDeque;

use ed25519_dalek::{SigningKey, Verifier};
use stele_bft::{
    certificate_note_text, commit_note_text, round_view, select_proposer, verify_certificate,
    AcceptAll, Action, BftError, BftNode, CommitCertificate, CommitSignature, Decision, Event,
    Height, Message, Round, SteleContext, Timeout, ValidatorId, Value, WalEntry, STICKY_ROUNDS,
};

/// The value node `node` proposes at `(height, round)`.
fn batch(node: usize, height: Height, round: Round) -> Value {
    let body = format!("example.com/log\n{height}\nroot-{round}-{node}\n");
    Value::new(body, format!("batch {height} {round}").into_bytes()).expect("well formed")
}

type Decided = (usize, Height, Value, CommitCertificate<SteleContext>, u64);

/// Nodes over a FIFO queue (no timeouts fire).
struct Run {
    nodes: Vec<BftNode>,
    queue: VecDeque<(usize, Event)>,
    wals: Vec<Vec<WalEntry>>,
    decided: Vec<Decided>,
    sent: Vec<(usize, Message)>,
    /// Every action, by node, in order.
    actions: Vec<Vec<Action>>,
    /// Nodes whose events are dropped (a lagging or crashed node).
    deaf: Vec<usize>,
    /// Pending timers: (node, height, timeout).
    timers: Vec<(usize, Height, Timeout)>,
}

impl Run {
    fn new(nodes: Vec<BftNode>) -> Run {
        let count = nodes.len();
        Run {
            nodes,
            queue: VecDeque::new(),
            wals: vec![Vec::new(); count],
            decided: Vec::new(),
            sent: Vec::new(),
            actions: vec![Vec::new(); count],
            deaf: Vec::new(),
            timers: Vec::new(),
        }
    }

    /// Fires every pending timer (the network is quiet: they all elapse).
    fn fire_timers(&mut self) {
        for (node, height, timeout) in std::mem::take(&mut self.timers) {
            self.queue
                .push_back((node, Event::TimeoutElapsed(height, timeout)));
        }
    }

    /// Runs until quiet, dropping events of nodes past height `heights`.
    fn until_quiet(&mut self, heights: u64) {
        let count = self.nodes.len();
        while let Some((node, event)) = self.queue.pop_front() {
            if self.nodes[node].height().0 > heights || self.deaf.contains(&node) {
                continue;
            }
            for action in self.nodes[node].handle(event) {
                self.actions[node].push(action.clone());
                match action {
                    Action::PersistWal(entry) => self.wals[node].push(entry),
                    Action::Broadcast(message) => {
                        self.sent.push((node, message.clone()));
                        for to in (0..count).filter(|to| *to != node) {
                            let from = ValidatorId(node as u64 + 1);
                            self.queue
                                .push_back((to, Event::Message(from, message.clone())));
                        }
                    }
                    Action::GetValue { height, round } => {
                        let value = batch(node, height, round);
                        self.queue
                            .push_back((node, Event::ValueToPropose(height, round, value)));
                    }
                    Action::Decided {
                        height,
                        value,
                        certificate,
                        view,
                    } => self.decided.push((node, height, value, certificate, view)),
                    Action::ScheduleTimeout {
                        height, timeout, ..
                    } => {
                        self.timers.retain(|t| *t != (node, height, timeout));
                        self.timers.push((node, height, timeout));
                    }
                    Action::CancelTimeout { height, timeout } => {
                        self.timers.retain(|t| *t != (node, height, timeout));
                    }
                    Action::CancelAllTimeouts => self.timers.retain(|t| t.0 != node),
                }
            }
        }
    }
}

fn fresh_nodes(keys: &[SigningKey], park: bool) -> Vec<BftNode> {
    (0..4)
        .map(|i| {
            BftNode::new(config(keys, i, park), Box::new(AcceptAll), Height(1), 0).expect("valid")
        })
        .collect()
}

/// Runs fresh, started nodes until every node decided `heights` heights.
fn run(keys: &[SigningKey], heights: u64) -> Run {
    let mut run = Run::new(fresh_nodes(keys, false));
    run.queue.extend((0..4).map(|i| (i, Event::Start)));
    run.until_quiet(heights);
    run
}

#[test]
fn four_nodes_decide_and_certificates_verify() {
    let keys = keys();
    let run = run(&keys, 3);
    assert_eq!(run.decided.len(), 12, "4 nodes x 3 heights");
    let set = validators(&keys);
    for (_, height, value, certificate, view) in &run.decided {
        assert_eq!(certificate.height, *height);
        assert_eq!(*view, 0, "every height decides in round 0 of view base 0");
        verify_certificate(certificate, &value.id(), &set, *view)
            .expect("a decided certificate verifies");
        // Each commit signature is Ed25519 over the note text, checked here
        // without the crate's verification.
        let text = commit_note_text(*height, certificate.round, *view, &value.id());
        assert_eq!(text, certificate_note_text(certificate, *view));
        assert!(text.starts_with(value.checkpoint_body()));
        assert!(text.ends_with(&format!("\nstele-bft {height} 0 0 {}\n", value.id())));
        for signature in &certificate.commit_signatures {
            let key = set.get(signature.address).expect("a member").public_key;
            let signature = ed25519_dalek::Signature::from_bytes(&signature.signature.0);
            key.verify(text.as_bytes(), &signature)
                .expect("a commit signature is a note signature");
        }
    }
}

#[test]
fn tampered_certificates_are_refused() {
    let keys = keys();
    let run = run(&keys, 1);
    let set = validators(&keys);
    let (_, _, value, certificate, view) = run.decided[0].clone();
    let id = value.id();
    assert!(certificate.commit_signatures.len() >= 3);

    let other = batch(9, Height(1), Round::new(0));
    assert!(matches!(
        verify_certificate(&certificate, &other.id(), &set, view),
        Err(BftError::CertificateValueMismatch { .. })
    ));
    let first = certificate.commit_signatures[0].address;
    assert_eq!(
        verify_certificate(&certificate, &id, &set, view + 1),
        Err(BftError::BadSignature(first)),
        "another view is another text"
    );

    let mut short = certificate.clone();
    short.commit_signatures.truncate(2);
    assert_eq!(
        verify_certificate(&short, &id, &set, view),
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
        verify_certificate(&duplicated, &id, &set, view),
        Err(BftError::DuplicateSigner(_))
    ));

    let mut unknown = certificate.clone();
    let signature = unknown.commit_signatures[0].signature;
    unknown
        .commit_signatures
        .push(CommitSignature::new(ValidatorId(9), signature));
    assert_eq!(
        verify_certificate(&unknown, &id, &set, view),
        Err(BftError::UnknownSigner(ValidatorId(9)))
    );

    let mut forged = certificate.clone();
    let second = forged.commit_signatures[1].signature;
    forged.commit_signatures[0].signature = second;
    assert_eq!(
        verify_certificate(&forged, &id, &set, view),
        Err(BftError::BadSignature(first))
    );
}

#[test]
fn a_restarted_node_resends_its_logged_votes_with_the_same_signatures() {
    let keys = keys();
    // Height 1; node 3 then "crashes" before its host commits the decision
    // (so its WAL still holds height 1) and recovers from the WAL.
    let first = run(&keys, 1);
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
    let (recovered, actions) = BftNode::recover(
        config(&keys, node, false),
        Box::new(AcceptAll),
        Height(1),
        0,
        &wal,
    )
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

#[test]
fn the_proposer_sticks_across_heights_decided_in_round_0() {
    let keys = keys();
    let set = validators(&keys);
    let run = run(&keys, 4);
    let first = select_proposer(&set, 0).id;
    for (node, height, value, certificate, view) in &run.decided {
        assert_eq!((certificate.round, *view), (Round::new(0), 0));
        // Node i proposes value root-<round>-<i>: the value names its proposer.
        let proposer = value
            .checkpoint_body()
            .rsplit('-')
            .next()
            .and_then(|node| node.trim().parse::<u64>().ok())
            .expect("the body names its proposer");
        assert_eq!(
            ValidatorId(proposer + 1),
            first,
            "node {node} height {height}"
        );
    }
    for node in &run.nodes {
        assert_eq!(node.proposer(), first);
        assert_eq!((node.view_base(), node.view()), (0, 0));
    }
}

#[test]
fn parked_nodes_start_on_start_or_an_authentic_message_of_their_height() {
    let keys = keys();
    let set = validators(&keys);
    let mut run = Run::new(fresh_nodes(&keys, true));
    let proposer = usize::try_from(select_proposer(&set, 0).id.0 - 1).expect("small");
    assert!(run.nodes.iter().all(BftNode::parked));
    assert!(run.nodes.iter().all(|node| node.round() == Round::Nil));

    // Only the proposer is told to start; its proposal starts the others.
    run.queue.push_back((proposer, Event::Start));
    run.until_quiet(1);
    assert_eq!(run.decided.len(), 4, "every node decided height 1");
    for (index, node) in run.nodes.iter().enumerate() {
        assert!(node.parked(), "node {index} parks after the decision");
        assert_eq!((node.height(), node.view_base()), (Height(2), 0));
        assert_eq!(node.proposer(), set.validators()[proposer].id);
        // Nothing is scheduled after the decision, and every timer is cancelled.
        let actions = &run.actions[index];
        let decided_at = actions
            .iter()
            .rposition(|a| matches!(a, Action::Decided { .. }))
            .expect("a decision");
        assert!(matches!(
            actions[decided_at + 1..],
            [Action::CancelAllTimeouts]
        ));
    }

    // A forged vote of the next height does not start a parked node.
    let Some((_, Message::Vote(vote))) = run
        .sent
        .iter()
        .find(|(_, message)| matches!(message, Message::Vote(_)))
        .cloned()
    else {
        panic!("votes were sent");
    };
    let mut forged = vote.clone();
    forged.message.height = Height(2);
    let before = run.nodes[1].stats().dropped_messages;
    let actions = run.nodes[1].handle(Event::Message(ValidatorId(1), Message::Vote(forged)));
    assert!(actions.is_empty() && run.nodes[1].parked());
    assert_eq!(run.nodes[1].stats().dropped_messages, before + 1);
    // Nor does a message of the decided height.
    assert!(run.nodes[1]
        .handle(Event::Message(ValidatorId(1), Message::Vote(vote)))
        .is_empty());
    assert!(run.nodes[1].parked());

    // A parked non-proposer that starts runs round 0 (its propose timer);
    // Start is then a no-op. Its nil prevote, at the timeout, starts the
    // others, and height 2 is decided.
    let other = (proposer + 1) % 4;
    let started = run.nodes[other].handle(Event::Start);
    assert!(started.iter().any(|a| matches!(
        a,
        Action::ScheduleTimeout {
            height: Height(2),
            ..
        }
    )));
    assert!(!run.nodes[other].parked());
    assert_eq!(run.nodes[other].round(), Round::new(0));
    assert!(run.nodes[other].handle(Event::Start).is_empty());
    let timeout = Timeout::propose(Round::new(0));
    run.queue
        .push_back((other, Event::TimeoutElapsed(Height(2), timeout)));
    run.until_quiet(2);
    assert_eq!(run.decided.len(), 8, "every node decided height 2");
    assert!(run.nodes.iter().all(|node| node.height() == Height(3)));
    assert!(run.nodes.iter().all(BftNode::parked));
}

#[test]
fn a_synced_decision_starts_a_parked_node_and_a_wrong_view_is_rejected() {
    let keys = keys();
    let set = validators(&keys);
    let mut run = Run::new(fresh_nodes(&keys, true));
    let proposer = usize::try_from(select_proposer(&set, 0).id.0 - 1).expect("small");
    let lagging = (proposer + 1) % 4;
    run.queue.push_back((proposer, Event::Start));
    run.until_quiet(1);
    // The lagging node misses height 2.
    run.deaf.push(lagging);
    run.queue.push_back((proposer, Event::Start));
    run.until_quiet(2);
    let (_, height, value, certificate, view) = run
        .decided
        .iter()
        .find(|d| d.1 == Height(2))
        .cloned()
        .expect("height 2 is decided without the lagging node");
    let decision = Decision {
        height,
        view,
        value: value.clone(),
        certificate: certificate.clone(),
    };
    let decision = Decision::decode(&decision.encode()).expect("round trip");
    let node = &mut run.nodes[lagging];
    assert!(node.parked() && node.height() == Height(2));

    let wrong = Event::Synced {
        value: decision.value.clone(),
        certificate: decision.certificate.clone(),
        view: decision.view + 1,
    };
    assert!(node.handle(wrong).is_empty());
    assert_eq!(node.stats().rejected_syncs, 1);
    assert!(node.parked());

    let actions = node.handle(Event::Synced {
        value: decision.value,
        certificate: decision.certificate,
        view: decision.view,
    });
    let decided = actions
        .iter()
        .find_map(|action| match action {
            Action::Decided {
                height,
                value,
                view,
                ..
            } => Some((*height, value.clone(), *view)),
            _ => None,
        })
        .expect("the synced value is decided");
    assert_eq!(decided, (Height(2), value, view));
    assert!(node.parked() && node.height() == Height(3));
    assert_eq!(node.stats().synced_other_views, 0);
}

/// A node whose view base diverged (it decided the previous height in another
/// round than the others) cannot take part in their height, and catches up
/// by a synced decision: its signers vouch for their view, which it adopts.
#[test]
fn a_node_whose_view_base_diverged_adopts_the_view_of_a_synced_decision() {
    let keys = keys();
    let set = validators(&keys);
    // Nodes 1 to 3 decided height 1 in round 1 (view 1); node 0 in round 0.
    let nodes: Vec<BftNode> = (0..4)
        .map(|i| {
            let base = if i == 0 { 0 } else { 1 };
            BftNode::new(
                config(&keys, i, false),
                Box::new(AcceptAll),
                Height(2),
                base,
            )
            .expect("valid")
        })
        .collect();
    let mut run = Run::new(nodes);
    run.deaf.push(0);
    run.queue.extend((1..4).map(|i| (i, Event::Start)));
    run.until_quiet(2);
    let (_, height, value, certificate, view) = run.decided[0].clone();
    assert_eq!((height, view), (Height(2), 1));
    assert_eq!(select_proposer(&set, 1), &set.validators()[3]);
    // Node 0's own view of round 0 is 0: the signatures do not verify there.
    assert!(verify_certificate(&certificate, &value.id(), &set, 0).is_err());

    let lagging = &mut run.nodes[0];
    let actions = lagging.handle(Event::Start);
    assert!(!actions.is_empty());
    let actions = lagging.handle(Event::Synced {
        value: value.clone(),
        certificate,
        view,
    });
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Decided {
                view: 1,
                height: Height(2),
                ..
            }
        )),
        "{actions:?} {:?}",
        lagging.stats()
    );
    assert_eq!(lagging.stats().synced_other_views, 1);
    assert_eq!(lagging.stats().rejected_syncs, 0);
    assert_eq!((lagging.height(), lagging.view_base()), (Height(3), 1));
    assert_eq!(lagging.proposer(), run.nodes[1].proposer());
}

/// Honest nodes can decide a height in different rounds, so their view
/// bases for the next height can differ: here two nodes have base 0 and two
/// base 1, and neither pair holds > 2/3. Each pair rejects the other's
/// proposals (another proposer, another view) until round STICKY_ROUNDS,
/// whose view does not depend on the base; there they agree and decide.
#[test]
fn nodes_whose_view_bases_split_two_against_two_agree_again_after_the_sticky_rounds() {
    let keys = keys();
    let set = validators(&keys);
    let nodes: Vec<BftNode> = (0..4)
        .map(|i| {
            let base = if i < 2 { 0 } else { 1 };
            BftNode::new(
                config(&keys, i, false),
                Box::new(AcceptAll),
                Height(2),
                base,
            )
            .expect("valid")
        })
        .collect();
    let mut run = Run::new(nodes);
    run.queue.extend((0..4).map(|i| (i, Event::Start)));
    for _ in 0..20 {
        run.until_quiet(2);
        if run.decided.len() == 4 {
            break;
        }
        run.fire_timers();
    }
    assert_eq!(run.decided.len(), 4, "every node decided height 2");
    let round = Round::new(STICKY_ROUNDS);
    let view = round_view(Height(2), 0, round);
    assert_eq!(view, round_view(Height(2), 1, round));
    for (_, height, value, certificate, decided_view) in &run.decided {
        assert_eq!(
            (*height, certificate.round, *decided_view),
            (Height(2), round, view)
        );
        verify_certificate(certificate, &value.id(), &set, view).expect("verifies");
    }
    for node in &run.nodes {
        assert_eq!((node.height(), node.view_base()), (Height(3), view));
    }
}

#[test]
fn each_height_decides_the_value_proposed_for_it_not_the_last_heights() {
    let keys = keys();
    for park in [false, true] {
        let run = if park {
            let mut run = Run::new(fresh_nodes(&keys, true));
            for height in 1..=3u64 {
                // Parked nodes start when told (the host's proposer with a batch).
                run.queue.extend((0..4).map(|i| (i, Event::Start)));
                run.until_quiet(height);
            }
            run
        } else {
            run(&keys, 3)
        };
        for height in 1..=3u64 {
            let values: Vec<&Value> = run
                .decided
                .iter()
                .filter(|decided| decided.1 == Height(height))
                .map(|decided| &decided.2)
                .collect();
            assert_eq!(
                values.len(),
                4,
                "park {park}: height {height} decided by all"
            );
            for value in values {
                assert!(
                    value.checkpoint_body().contains(&format!("\n{height}\n")),
                    "park {park}: height {height} decided {:?}",
                    value.checkpoint_body()
                );
            }
        }
    }
}
