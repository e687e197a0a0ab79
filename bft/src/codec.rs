//! The bytes of a [`WalEntry`]: a format byte ([`WAL_ENTRY_FORMAT`]), then the
//! CBOR (`ciborium`) of serde mirror types private to this module.
//!
//! Malachite's types are not serde types here (its `serde` feature is off, and
//! its `borsh` feature covers neither `Input` nor `Timeout` nor our own
//! context types while adding ten crates to the build), so each logged input
//! is copied into a mirror and back. Only the inputs the core logs are
//! encoded: `Vote`, `Proposal`, `ProposedValue`, `TimeoutElapsed` and
//! `PolkaCertificate`; any other is refused with [`WalError::Encode`].
//!
//! Decoding checks everything a constructor would: fixed-size ids and
//! signatures, known variants, a valid duration, no trailing bytes. It never
//! panics on any input, and a value's id is recomputed from its bytes.

use std::time::Duration;

use arc_malachitebft_core_consensus::{Input, ProposedValue};
use arc_malachitebft_core_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, Round, SignedMessage, Timeout, TimeoutKind,
    Validity, ValueOrigin, VoteType,
};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};

use crate::context::{Height, Proposal, SteleContext, ValidatorId, Value, ValueId, Vote};
use crate::error::WalError;
use crate::node::WalEntry;
use crate::signing::{Signature, SignedProposal, SignedVote};

/// The first byte of an encoded entry: the version of what follows.
pub const WAL_ENTRY_FORMAT: u8 = 1;

/// The kind of input a [`WalEntry`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalEntryKind {
    /// A signed vote (a peer's or the node's own).
    Vote,
    /// A signed proposal.
    Proposal,
    /// A proposed value (the node's own proposal is logged as one).
    ProposedValue,
    /// An elapsed propose, prevote or precommit timeout.
    TimeoutElapsed,
    /// A verified polka certificate.
    PolkaCertificate,
    /// Any other input (never logged by the core; not encodable).
    Other,
}

impl WalEntry {
    /// The kind of input the entry holds.
    pub fn kind(&self) -> WalEntryKind {
        match &self.input {
            Input::Vote(_) => WalEntryKind::Vote,
            Input::Proposal(_) => WalEntryKind::Proposal,
            Input::ProposedValue(..) => WalEntryKind::ProposedValue,
            Input::TimeoutElapsed(_) => WalEntryKind::TimeoutElapsed,
            Input::PolkaCertificate(_) => WalEntryKind::PolkaCertificate,
            _ => WalEntryKind::Other,
        }
    }

    /// The entry's bytes: [`WAL_ENTRY_FORMAT`], then CBOR.
    pub fn encode(&self) -> Result<Vec<u8>, WalError> {
        let mirror = EntryV1 {
            height: self.height.0,
            input: InputV1::from_input(&self.input)?,
        };
        let mut bytes = vec![WAL_ENTRY_FORMAT];
        ciborium::into_writer(&mirror, &mut bytes)
            .map_err(|error| WalError::Encode(error.to_string()))?;
        Ok(bytes)
    }

    /// The entry `bytes` encode; refuses (never panics on) anything else.
    pub fn decode(bytes: &[u8]) -> Result<WalEntry, WalError> {
        let (format, mut rest) = bytes
            .split_first()
            .ok_or_else(|| WalError::Decode("no bytes".into()))?;
        if *format != WAL_ENTRY_FORMAT {
            return Err(WalError::Decode(format!("unknown format byte {format}")));
        }
        let mirror: EntryV1 = ciborium::from_reader(&mut rest)
            .map_err(|error| WalError::Decode(error.to_string()))?;
        if !rest.is_empty() {
            return Err(WalError::Decode(format!(
                "{} trailing bytes after the entry",
                rest.len()
            )));
        }
        Ok(WalEntry {
            height: Height(mirror.height),
            input: mirror.input.into_input()?,
        })
    }
}

type SignatureV1 = ByteArray<64>;
type IdV1 = ByteArray<32>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryV1 {
    height: u64,
    input: InputV1,
}

#[derive(Serialize, Deserialize)]
enum InputV1 {
    Vote(SignedVoteV1),
    Proposal(SignedProposalV1),
    ProposedValue(ProposedValueV1),
    TimeoutElapsed(TimeoutV1),
    PolkaCertificate(PolkaCertificateV1),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedVoteV1 {
    prevote: bool,
    height: u64,
    round: Option<u32>,
    value_id: Option<IdV1>,
    validator: u64,
    /// The signature of an extension (`Extension = ()`), never expected.
    extension: Option<SignatureV1>,
    signature: SignatureV1,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedProposalV1 {
    height: u64,
    round: Option<u32>,
    value: ByteBuf,
    pol_round: Option<u32>,
    proposer: u64,
    signature: SignatureV1,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposedValueV1 {
    height: u64,
    round: Option<u32>,
    valid_round: Option<u32>,
    proposer: u64,
    value: ByteBuf,
    valid: bool,
    /// `ValueOrigin::Sync` if true, `Consensus` otherwise.
    synced: bool,
}

#[derive(Serialize, Deserialize)]
enum TimeoutKindV1 {
    Propose,
    Prevote,
    Precommit,
    Rebroadcast,
    FinalizeHeight { secs: u64, nanos: u32 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutV1 {
    kind: TimeoutKindV1,
    round: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolkaCertificateV1 {
    height: u64,
    round: Option<u32>,
    value_id: IdV1,
    /// `(validator, signature)` pairs, in the certificate's order.
    signatures: Vec<(u64, SignatureV1)>,
}

fn round_v1(round: Round) -> Option<u32> {
    round.as_u32()
}

fn round_from(round: Option<u32>) -> Round {
    round.map_or(Round::Nil, Round::new)
}

fn signature_v1(signature: &Signature) -> SignatureV1 {
    ByteArray::new(signature.0)
}

fn signature_from(signature: SignatureV1) -> Signature {
    Signature(signature.into_array())
}

impl InputV1 {
    fn from_input(input: &Input<SteleContext>) -> Result<InputV1, WalError> {
        Ok(match input {
            Input::Vote(signed) => {
                let vote = &signed.message;
                InputV1::Vote(SignedVoteV1 {
                    prevote: vote.vote_type == VoteType::Prevote,
                    height: vote.height.0,
                    round: round_v1(vote.round),
                    value_id: match &vote.value_id {
                        NilOrVal::Nil => None,
                        NilOrVal::Val(id) => Some(ByteArray::new(id.0)),
                    },
                    validator: vote.validator.0,
                    extension: vote
                        .extension
                        .as_ref()
                        .map(|extension| signature_v1(&extension.signature)),
                    signature: signature_v1(&signed.signature),
                })
            }
            Input::Proposal(signed) => {
                let proposal = &signed.message;
                InputV1::Proposal(SignedProposalV1 {
                    height: proposal.height.0,
                    round: round_v1(proposal.round),
                    value: ByteBuf::from(proposal.value.bytes().to_vec()),
                    pol_round: round_v1(proposal.pol_round),
                    proposer: proposal.proposer.0,
                    signature: signature_v1(&signed.signature),
                })
            }
            Input::ProposedValue(value, origin) => InputV1::ProposedValue(ProposedValueV1 {
                height: value.height.0,
                round: round_v1(value.round),
                valid_round: round_v1(value.valid_round),
                proposer: value.proposer.0,
                value: ByteBuf::from(value.value.bytes().to_vec()),
                valid: value.validity == Validity::Valid,
                synced: *origin == ValueOrigin::Sync,
            }),
            Input::TimeoutElapsed(timeout) => InputV1::TimeoutElapsed(TimeoutV1 {
                kind: match timeout.kind {
                    TimeoutKind::Propose => TimeoutKindV1::Propose,
                    TimeoutKind::Prevote => TimeoutKindV1::Prevote,
                    TimeoutKind::Precommit => TimeoutKindV1::Precommit,
                    TimeoutKind::Rebroadcast => TimeoutKindV1::Rebroadcast,
                    TimeoutKind::FinalizeHeight(after) => TimeoutKindV1::FinalizeHeight {
                        secs: after.as_secs(),
                        nanos: after.subsec_nanos(),
                    },
                },
                round: round_v1(timeout.round),
            }),
            Input::PolkaCertificate(certificate) => InputV1::PolkaCertificate(PolkaCertificateV1 {
                height: certificate.height.0,
                round: round_v1(certificate.round),
                value_id: ByteArray::new(certificate.value_id.0),
                signatures: certificate
                    .polka_signatures
                    .iter()
                    .map(|s| (s.address.0, signature_v1(&s.signature)))
                    .collect(),
            }),
            other => {
                let name = match other {
                    Input::StartHeight(..) => "StartHeight",
                    Input::Propose(_) => "Propose",
                    Input::RoundCertificate(_) => "RoundCertificate",
                    Input::SyncValueResponse(_) => "SyncValueResponse",
                    _ => "an unknown input",
                };
                return Err(WalError::Encode(format!("{name} is not logged")));
            }
        })
    }

    fn into_input(self) -> Result<Input<SteleContext>, WalError> {
        Ok(match self {
            InputV1::Vote(v) => {
                let vote = Vote {
                    vote_type: if v.prevote {
                        VoteType::Prevote
                    } else {
                        VoteType::Precommit
                    },
                    height: Height(v.height),
                    round: round_from(v.round),
                    value_id: v
                        .value_id
                        .map_or(NilOrVal::Nil, |id| NilOrVal::Val(ValueId(id.into_array()))),
                    validator: ValidatorId(v.validator),
                    extension: v
                        .extension
                        .map(|signature| SignedMessage::new((), signature_from(signature))),
                };
                Input::Vote(SignedVote::new(vote, signature_from(v.signature)))
            }
            InputV1::Proposal(p) => {
                let proposal = Proposal {
                    height: Height(p.height),
                    round: round_from(p.round),
                    value: Value::new(p.value.into_vec()),
                    pol_round: round_from(p.pol_round),
                    proposer: ValidatorId(p.proposer),
                };
                Input::Proposal(SignedProposal::new(proposal, signature_from(p.signature)))
            }
            InputV1::ProposedValue(p) => Input::ProposedValue(
                ProposedValue {
                    height: Height(p.height),
                    round: round_from(p.round),
                    valid_round: round_from(p.valid_round),
                    proposer: ValidatorId(p.proposer),
                    value: Value::new(p.value.into_vec()),
                    validity: if p.valid {
                        Validity::Valid
                    } else {
                        Validity::Invalid
                    },
                },
                if p.synced {
                    ValueOrigin::Sync
                } else {
                    ValueOrigin::Consensus
                },
            ),
            InputV1::TimeoutElapsed(t) => {
                let kind = match t.kind {
                    TimeoutKindV1::Propose => TimeoutKind::Propose,
                    TimeoutKindV1::Prevote => TimeoutKind::Prevote,
                    TimeoutKindV1::Precommit => TimeoutKind::Precommit,
                    TimeoutKindV1::Rebroadcast => TimeoutKind::Rebroadcast,
                    TimeoutKindV1::FinalizeHeight { secs, nanos } => {
                        // `Duration::new` panics when the nanoseconds carry
                        // over `u64::MAX` seconds; refuse any non-canonical one.
                        if nanos >= 1_000_000_000 {
                            return Err(WalError::Decode(format!(
                                "{nanos} nanoseconds is not a fraction of a second"
                            )));
                        }
                        TimeoutKind::FinalizeHeight(Duration::new(secs, nanos))
                    }
                };
                Input::TimeoutElapsed(Timeout::new(round_from(t.round), kind))
            }
            InputV1::PolkaCertificate(c) => Input::PolkaCertificate(PolkaCertificate {
                height: Height(c.height),
                round: round_from(c.round),
                value_id: ValueId(c.value_id.into_array()),
                polka_signatures: c
                    .signatures
                    .into_iter()
                    .map(|(id, signature)| {
                        PolkaSignature::new(ValidatorId(id), signature_from(signature))
                    })
                    .collect(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_core_consensus::LocallyProposedValue;
    use rand::{Rng, SeedableRng};

    fn samples() -> Vec<WalEntry> {
        let id = Value::new(b"batch".to_vec()).id();
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: Height(7),
            round: Round::new(3),
            value_id: NilOrVal::Val(id),
            validator: ValidatorId(2),
            extension: Some(SignedMessage::new((), Signature([9; 64]))),
        };
        let proposal = Proposal {
            height: Height(7),
            round: Round::new(1),
            value: Value::new(b"batch".to_vec()),
            pol_round: Round::Nil,
            proposer: ValidatorId(4),
        };
        let inputs = vec![
            Input::Vote(SignedVote::new(vote, Signature([1; 64]))),
            Input::Proposal(SignedProposal::new(proposal, Signature([2; 64]))),
            Input::ProposedValue(
                ProposedValue {
                    height: Height(7),
                    round: Round::new(0),
                    valid_round: Round::new(0),
                    proposer: ValidatorId(1),
                    value: Value::new(Vec::new()),
                    validity: Validity::Invalid,
                },
                ValueOrigin::Sync,
            ),
            Input::TimeoutElapsed(Timeout::finalize_height(
                Round::new(u32::MAX),
                Duration::new(u64::MAX, 999_999_999),
            )),
            Input::PolkaCertificate(PolkaCertificate {
                height: Height(7),
                round: Round::new(2),
                value_id: id,
                polka_signatures: vec![PolkaSignature::new(ValidatorId(3), Signature([3; 64]))],
            }),
        ];
        inputs
            .into_iter()
            .map(|input| WalEntry {
                height: Height(7),
                input,
            })
            .collect()
    }

    #[test]
    fn hand_built_entries_round_trip_exactly() {
        for entry in samples() {
            let bytes = entry.encode().expect("encodable");
            assert_eq!(bytes[0], WAL_ENTRY_FORMAT);
            assert_eq!(WalEntry::decode(&bytes).expect("decodable"), entry);
        }
    }

    #[test]
    fn inputs_the_core_does_not_log_are_refused() {
        let entry = WalEntry {
            height: Height(1),
            input: Input::Propose(LocallyProposedValue::new(
                Height(1),
                Round::new(0),
                Value::new(Vec::new()),
            )),
        };
        assert_eq!(entry.kind(), WalEntryKind::Other);
        assert!(matches!(entry.encode(), Err(WalError::Encode(_))));
    }

    #[test]
    fn bad_format_bytes_and_trailing_bytes_are_refused() {
        let mut bytes = samples()[0].encode().expect("encodable");
        assert!(matches!(WalEntry::decode(&[]), Err(WalError::Decode(_))));
        bytes.push(0);
        assert!(matches!(WalEntry::decode(&bytes), Err(WalError::Decode(_))));
        bytes.pop();
        bytes[0] = 2;
        assert!(matches!(WalEntry::decode(&bytes), Err(WalError::Decode(_))));
    }

    /// Truncations, bit flips and random bytes: decoding may fail, never panic.
    #[test]
    fn garbage_never_panics() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for entry in samples() {
            let bytes = entry.encode().expect("encodable");
            for cut in 0..bytes.len() {
                assert!(WalEntry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            for _ in 0..2_000 {
                let mut bad = bytes.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..bad.len());
                    bad[at] ^= 1 << rng.gen_range(0..8);
                }
                let _ = WalEntry::decode(&bad);
            }
        }
        for _ in 0..5_000 {
            let len = rng.gen_range(0..64);
            let mut bad: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(first) = bad.first_mut() {
                *first = WAL_ENTRY_FORMAT;
            }
            let _ = WalEntry::decode(&bad);
        }
    }
}
