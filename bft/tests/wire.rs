//! The bytes validators exchange (`Message::encode`, `Decision::encode`),
//! taken from real runs of four `BftNode`s: every kind round-trips, and
//! decoding refuses (never panics on) every truncation and every single-byte
//! change of real encodings, trailing bytes, other format bytes, unknown
//! variants and oversized input.

mod common;

use common::{config, keys};
use std::collections::VecDeque;

use arc_malachitebft_core_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, RoundCertificate, RoundCertificateType,
    RoundSignature,
};
use stele_bft::wire::{DECISION_FORMAT, MESSAGE_FORMAT};
use stele_bft::{
    AcceptAll, Action, BftError, BftNode, Decision, Event, Height, Message, Round, ValidatorId,
    Value, VoteType, MESSAGE_BYTES_MAX,
};

/// Height 1 of four nodes over a FIFO queue: the messages sent, and a decision.
fn real_run() -> (Vec<Message>, Decision) {
    let keys = keys();
    let mut nodes: Vec<BftNode> = (0..4)
        .map(|i| {
            BftNode::new(config(&keys, i, false), Box::new(AcceptAll), Height(1), 0).expect("valid")
        })
        .collect();
    let mut queue: VecDeque<(usize, Event)> = (0..4).map(|i| (i, Event::Start)).collect();
    let (mut sent, mut decision) = (Vec::new(), None);
    while let Some((i, event)) = queue.pop_front() {
        if nodes[i].height() > Height(1) {
            continue;
        }
        for action in nodes[i].handle(event) {
            match action {
                Action::Broadcast(message) => {
                    sent.push(message.clone());
                    for to in (0..4).filter(|to| *to != i) {
                        let from = ValidatorId(i as u64 + 1);
                        queue.push_back((to, Event::Message(from, message.clone())));
                    }
                }
                Action::GetValue { height, round } => {
                    let body = format!("example.com/log\n{height}\nroot\n");
                    let value = Value::new(body, vec![0xa5; 40]).expect("well formed");
                    queue.push_back((i, Event::ValueToPropose(height, round, value)));
                }
                Action::Decided {
                    height,
                    value,
                    certificate,
                    view,
                } => {
                    decision.get_or_insert(Decision {
                        height,
                        view,
                        value,
                        certificate,
                    });
                }
                _ => {}
            }
        }
    }
    (sent, decision.expect("height 1 is decided"))
}

/// One message of each kind: a proposal, a value prevote, a value precommit,
/// a nil vote, a polka certificate, and round certificates of both types.
fn samples() -> (Vec<Message>, Decision) {
    let (sent, decision) = real_run();
    let find = |wanted: &dyn Fn(&Message) -> bool| {
        sent.iter()
            .find(|message| wanted(message))
            .cloned()
            .expect("the run sent one")
    };
    let proposal = find(&|m| matches!(m, Message::Proposal(_)));
    let prevote = find(&|m| matches!(m, Message::Vote(v) if v.vote_type == VoteType::Prevote));
    let precommit = find(&|m| matches!(m, Message::Vote(v) if v.vote_type == VoteType::Precommit));
    let Message::Vote(vote) = prevote.clone() else {
        unreachable!("found as a vote")
    };
    let mut nil = vote.clone();
    nil.message.value_id = NilOrVal::Nil;
    nil.message.round = Round::Nil;
    let NilOrVal::Val(value_id) = vote.value_id.clone() else {
        panic!("the run prevotes a value");
    };
    let polka = PolkaCertificate {
        height: vote.height,
        round: vote.round,
        value_id: value_id.clone(),
        polka_signatures: vec![PolkaSignature::new(vote.validator, vote.signature)],
    };
    let round_certificate = |cert_type| RoundCertificate {
        height: vote.height,
        round: vote.round,
        cert_type,
        round_signatures: vec![
            RoundSignature::new(
                VoteType::Precommit,
                NilOrVal::Val(value_id.clone()),
                vote.validator,
                vote.signature,
            ),
            RoundSignature::new(
                VoteType::Prevote,
                NilOrVal::Nil,
                ValidatorId(2),
                vote.signature,
            ),
        ],
    };
    let messages = vec![
        proposal,
        prevote,
        precommit,
        Message::Vote(nil),
        Message::PolkaCertificate(polka),
        Message::RoundCertificate(round_certificate(RoundCertificateType::Precommit)),
        Message::RoundCertificate(round_certificate(RoundCertificateType::Skip)),
    ];
    (messages, decision)
}

#[test]
fn real_messages_and_decisions_round_trip_exactly() {
    let (messages, decision) = samples();
    for message in &messages {
        let bytes = message.encode();
        assert_eq!(bytes[0], MESSAGE_FORMAT);
        assert_eq!(&Message::decode(&bytes).expect("decodes"), message);
    }
    let bytes = decision.encode();
    assert_eq!(bytes[0], DECISION_FORMAT);
    assert_eq!(Decision::decode(&bytes).expect("decodes"), decision);
    assert!(decision.certificate.commit_signatures.len() >= 3);
}

/// Every truncation and every single-byte change (each byte replaced by each
/// other value) of real encodings: decoding may fail, never panic, and a
/// truncation always fails.
#[test]
fn truncations_and_byte_changes_never_panic() {
    let (messages, decision) = samples();
    let mut encodings: Vec<(Vec<u8>, bool)> = messages
        .iter()
        .map(|message| (message.encode(), true))
        .collect();
    encodings.push((decision.encode(), false));
    let decode = |bytes: &[u8], message: bool| {
        if message {
            Message::decode(bytes).map(|_| ())
        } else {
            Decision::decode(bytes).map(|_| ())
        }
    };
    let mut changed_and_accepted = 0u64;
    for (bytes, message) in &encodings {
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], *message).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            for delta in 1..=255u8 {
                changed[at] = bytes[at].wrapping_add(delta);
                if decode(&changed, *message).is_ok() {
                    changed_and_accepted += 1;
                }
            }
        }
    }
    // Some changes keep the bytes well formed (a signature byte, a height):
    // the decoder cannot tell, the signatures will.
    assert!(changed_and_accepted > 0);
}

#[test]
fn trailing_bytes_other_formats_unknown_variants_and_oversize_are_refused() {
    let (messages, decision) = samples();
    let mut bytes = messages[0].encode();
    bytes.push(0);
    assert!(matches!(
        Message::decode(&bytes),
        Err(BftError::MalformedMessage(_))
    ));
    bytes.pop();
    bytes[0] = MESSAGE_FORMAT + 1;
    assert!(matches!(
        Message::decode(&bytes),
        Err(BftError::MalformedMessage(_))
    ));
    assert!(Message::decode(&[]).is_err());
    // A decision is not a message, nor a message a decision.
    assert!(Message::decode(&decision.encode()).is_err());
    assert!(Decision::decode(&messages[0].encode()).is_err());
    // An unknown variant: the CBOR of a one-entry map naming no variant.
    let mut unknown = vec![MESSAGE_FORMAT, 0xa1, 0x65];
    unknown.extend_from_slice(b"Hello");
    unknown.push(0x00);
    assert!(matches!(
        Message::decode(&unknown),
        Err(BftError::MalformedMessage(_))
    ));
    // Oversize is refused before decoding.
    let mut huge = messages[0].encode();
    huge.resize(MESSAGE_BYTES_MAX + 1, 0);
    let error = Message::decode(&huge).expect_err("oversize");
    assert!(error.to_string().contains("MESSAGE_BYTES_MAX"), "{error}");
    assert!(Decision::decode(&huge).is_err());
}

#[test]
fn a_malformed_checkpoint_body_is_refused_by_the_decoder() {
    let (messages, _) = samples();
    let bytes = messages[0].encode();
    let at = bytes
        .windows(5)
        .position(|window| window == b"\nroot")
        .expect("the proposal carries the body");
    let mut bad = bytes.clone();
    bad[at] = b'\r';
    assert!(matches!(
        Message::decode(&bad),
        Err(BftError::MalformedValue(_))
    ));
}
