//! The bytes of a [`WalEntry`]: a format byte ([`WAL_ENTRY_FORMAT`]), then the
//! CBOR (`ciborium`) of serde mirror types, some shared with [`crate::wire`].
//!
//! Malachite's types are not serde types here (its `serde` feature is off, and
//! its `borsh` feature covers neither `Input` nor `Timeout` nor our own
//! context types while adding ten crates to the build), so each logged input
//! is copied into a mirror and back. Only the inputs the core logs are
//! encoded: `Vote`, `Proposal`, `ProposedValue`, `TimeoutElapsed` and
//! `PolkaCertificate`; any other is refused with [`WalError::Encode`].
//!
//! Decoding checks everything a constructor would: fixed-size digests and
//! signatures, well-formed checkpoint bodies, known variants, a valid
//! duration, no trailing bytes. It never panics on any input. A value is
//! rebuilt with [`Value::new`] (its id recomputed from its body and payload);
//! a value id alone (in a vote or a certificate) is its digest and its body,
//! the body checked, the digest kept as is (nothing to check it against).
//!
//! Format 2 carries values as a body and a payload, ids as a digest and a
//! body. Format 1 (bare value bytes) is refused naming it: an older version's
//! log of a height in progress cannot be replayed by this one.

use std::time::Duration;

use arc_malachitebft_core_consensus::{Input, ProposedValue};
use arc_malachitebft_core_types::{
    NilOrVal, PolkaCertificate, PolkaSignature, Round, SignedMessage, Timeout, TimeoutKind,
    Validity, ValueOrigin, VoteType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};

use crate::context::{Height, Proposal, ValidatorId, Value, ValueId, Vote};
use crate::error::{BftError, WalError};
use crate::node::WalEntry;
use crate::signing::{Signature, SignedProposal, SignedVote};

/// The first byte of an encoded entry: the version of what follows.
pub const WAL_ENTRY_FORMAT: u8 = 2;
/// The entry format of the versions before values carried checkpoint bodies.
pub const WAL_ENTRY_FORMAT_BARE_VALUES: u8 = 1;

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
        let mirror = EntryCbor {
            height: self.height.0,
            input: InputCbor::from_input(&self.input)?,
        };
        to_cbor(WAL_ENTRY_FORMAT, &mirror).map_err(WalError::Encode)
    }

    /// The entry `bytes` encode; refuses (never panics on) anything else.
    pub fn decode(bytes: &[u8]) -> Result<WalEntry, WalError> {
        if bytes.first() == Some(&WAL_ENTRY_FORMAT_BARE_VALUES) {
            return Err(WalError::Decode(format!(
                "entry format {WAL_ENTRY_FORMAT_BARE_VALUES} (values without checkpoint \
                 bodies, written by an older stele-bft) is no longer read; this version \
                 reads format {WAL_ENTRY_FORMAT}: the height this log holds cannot be \
                 replayed"
            )));
        }
        let mirror: EntryCbor = from_cbor(WAL_ENTRY_FORMAT, bytes).map_err(WalError::Decode)?;
        Ok(WalEntry {
            height: Height(mirror.height),
            input: mirror
                .input
                .into_input()
                .map_err(|error| WalError::Decode(error.to_string()))?,
        })
    }
}

/// `format`, then the CBOR of `mirror`.
pub(crate) fn to_cbor<T: Serialize>(format: u8, mirror: &T) -> Result<Vec<u8>, String> {
    let mut bytes = vec![format];
    ciborium::into_writer(mirror, &mut bytes).map_err(|error| error.to_string())?;
    Ok(bytes)
}

/// The mirror `bytes` hold after the format byte `format`; refuses another
/// format byte and trailing bytes.
pub(crate) fn from_cbor<T: DeserializeOwned>(format: u8, bytes: &[u8]) -> Result<T, String> {
    let (found, mut rest) = bytes.split_first().ok_or("no bytes")?;
    if *found != format {
        return Err(format!(
            "unknown format byte {found} (this version reads {format})"
        ));
    }
    let mirror = ciborium::from_reader(&mut rest).map_err(|error| error.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(mirror)
}

pub(crate) type SignatureCbor = ByteArray<64>;

pub(crate) fn signature_cbor(signature: &Signature) -> SignatureCbor {
    ByteArray::new(signature.0)
}

pub(crate) fn signature_from(signature: SignatureCbor) -> Signature {
    Signature(signature.into_array())
}

pub(crate) fn round_cbor(round: Round) -> Option<u32> {
    round.as_u32()
}

pub(crate) fn round_from(round: Option<u32>) -> Round {
    round.map_or(Round::Nil, Round::new)
}

/// A [`ValueId`]: its digest and its checkpoint body.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValueIdCbor {
    digest: ByteArray<32>,
    body: String,
}

impl ValueIdCbor {
    pub(crate) fn from_id(id: &ValueId) -> ValueIdCbor {
        ValueIdCbor {
            digest: ByteArray::new(id.digest()),
            body: id.checkpoint_body().to_string(),
        }
    }

    pub(crate) fn into_id(self) -> Result<ValueId, BftError> {
        ValueId::from_parts(self.digest.into_array(), self.body)
    }
}

/// A [`Value`]: its checkpoint body and payload (its id is recomputed).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValueCbor {
    body: String,
    payload: ByteBuf,
}

impl ValueCbor {
    pub(crate) fn from_value(value: &Value) -> ValueCbor {
        ValueCbor {
            body: value.checkpoint_body().to_string(),
            payload: ByteBuf::from(value.payload().to_vec()),
        }
    }

    pub(crate) fn into_value(self) -> Result<Value, BftError> {
        Value::new(self.body, self.payload.into_vec())
    }
}

/// A [`SignedVote`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoteCbor {
    prevote: bool,
    height: u64,
    round: Option<u32>,
    value_id: Option<ValueIdCbor>,
    validator: u64,
    /// The signature of an extension (`Extension = ()`), never expected.
    extension: Option<SignatureCbor>,
    signature: SignatureCbor,
}

impl VoteCbor {
    pub(crate) fn from_vote(signed: &SignedVote) -> VoteCbor {
        let vote = &signed.message;
        VoteCbor {
            prevote: vote.vote_type == VoteType::Prevote,
            height: vote.height.0,
            round: round_cbor(vote.round),
            value_id: match &vote.value_id {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(ValueIdCbor::from_id(id)),
            },
            validator: vote.validator.0,
            extension: vote
                .extension
                .as_ref()
                .map(|extension| signature_cbor(&extension.signature)),
            signature: signature_cbor(&signed.signature),
        }
    }

    pub(crate) fn into_vote(self) -> Result<SignedVote, BftError> {
        let vote = Vote {
            vote_type: if self.prevote {
                VoteType::Prevote
            } else {
                VoteType::Precommit
            },
            height: Height(self.height),
            round: round_from(self.round),
            value_id: match self.value_id {
                None => NilOrVal::Nil,
                Some(id) => NilOrVal::Val(id.into_id()?),
            },
            validator: ValidatorId(self.validator),
            extension: self
                .extension
                .map(|signature| SignedMessage::new((), signature_from(signature))),
        };
        Ok(SignedVote::new(vote, signature_from(self.signature)))
    }
}

/// A [`SignedProposal`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProposalCbor {
    height: u64,
    round: Option<u32>,
    value: ValueCbor,
    pol_round: Option<u32>,
    proposer: u64,
    signature: SignatureCbor,
}

impl ProposalCbor {
    pub(crate) fn from_proposal(signed: &SignedProposal) -> ProposalCbor {
        let proposal = &signed.message;
        ProposalCbor {
            height: proposal.height.0,
            round: round_cbor(proposal.round),
            value: ValueCbor::from_value(&proposal.value),
            pol_round: round_cbor(proposal.pol_round),
            proposer: proposal.proposer.0,
            signature: signature_cbor(&signed.signature),
        }
    }

    pub(crate) fn into_proposal(self) -> Result<SignedProposal, BftError> {
        let proposal = Proposal {
            height: Height(self.height),
            round: round_from(self.round),
            value: self.value.into_value()?,
            pol_round: round_from(self.pol_round),
            proposer: ValidatorId(self.proposer),
        };
        Ok(SignedProposal::new(
            proposal,
            signature_from(self.signature),
        ))
    }
}

/// A [`PolkaCertificate`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolkaCbor {
    height: u64,
    round: Option<u32>,
    value_id: ValueIdCbor,
    /// `(validator, signature)` pairs, in the certificate's order.
    signatures: Vec<(u64, SignatureCbor)>,
}

impl PolkaCbor {
    pub(crate) fn from_certificate(
        certificate: &PolkaCertificate<crate::SteleContext>,
    ) -> PolkaCbor {
        PolkaCbor {
            height: certificate.height.0,
            round: round_cbor(certificate.round),
            value_id: ValueIdCbor::from_id(&certificate.value_id),
            signatures: certificate
                .polka_signatures
                .iter()
                .map(|s| (s.address.0, signature_cbor(&s.signature)))
                .collect(),
        }
    }

    pub(crate) fn into_certificate(
        self,
    ) -> Result<PolkaCertificate<crate::SteleContext>, BftError> {
        Ok(PolkaCertificate {
            height: Height(self.height),
            round: round_from(self.round),
            value_id: self.value_id.into_id()?,
            polka_signatures: self
                .signatures
                .into_iter()
                .map(|(id, signature)| {
                    PolkaSignature::new(ValidatorId(id), signature_from(signature))
                })
                .collect(),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryCbor {
    height: u64,
    input: InputCbor,
}

#[derive(Serialize, Deserialize)]
enum InputCbor {
    Vote(VoteCbor),
    Proposal(ProposalCbor),
    ProposedValue(ProposedValueCbor),
    TimeoutElapsed(TimeoutCbor),
    PolkaCertificate(PolkaCbor),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposedValueCbor {
    height: u64,
    round: Option<u32>,
    valid_round: Option<u32>,
    proposer: u64,
    value: ValueCbor,
    valid: bool,
    /// `ValueOrigin::Sync` if true, `Consensus` otherwise.
    synced: bool,
}

#[derive(Serialize, Deserialize)]
enum TimeoutKindCbor {
    Propose,
    Prevote,
    Precommit,
    Rebroadcast,
    FinalizeHeight { secs: u64, nanos: u32 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutCbor {
    kind: TimeoutKindCbor,
    round: Option<u32>,
}

impl InputCbor {
    fn from_input(input: &Input<crate::SteleContext>) -> Result<InputCbor, WalError> {
        Ok(match input {
            Input::Vote(signed) => InputCbor::Vote(VoteCbor::from_vote(signed)),
            Input::Proposal(signed) => InputCbor::Proposal(ProposalCbor::from_proposal(signed)),
            Input::ProposedValue(value, origin) => InputCbor::ProposedValue(ProposedValueCbor {
                height: value.height.0,
                round: round_cbor(value.round),
                valid_round: round_cbor(value.valid_round),
                proposer: value.proposer.0,
                value: ValueCbor::from_value(&value.value),
                valid: value.validity == Validity::Valid,
                synced: *origin == ValueOrigin::Sync,
            }),
            Input::TimeoutElapsed(timeout) => InputCbor::TimeoutElapsed(TimeoutCbor {
                kind: match timeout.kind {
                    TimeoutKind::Propose => TimeoutKindCbor::Propose,
                    TimeoutKind::Prevote => TimeoutKindCbor::Prevote,
                    TimeoutKind::Precommit => TimeoutKindCbor::Precommit,
                    TimeoutKind::Rebroadcast => TimeoutKindCbor::Rebroadcast,
                    TimeoutKind::FinalizeHeight(after) => TimeoutKindCbor::FinalizeHeight {
                        secs: after.as_secs(),
                        nanos: after.subsec_nanos(),
                    },
                },
                round: round_cbor(timeout.round),
            }),
            Input::PolkaCertificate(certificate) => {
                InputCbor::PolkaCertificate(PolkaCbor::from_certificate(certificate))
            }
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

    fn into_input(self) -> Result<Input<crate::SteleContext>, BftError> {
        Ok(match self {
            InputCbor::Vote(vote) => Input::Vote(vote.into_vote()?),
            InputCbor::Proposal(proposal) => Input::Proposal(proposal.into_proposal()?),
            InputCbor::ProposedValue(p) => Input::ProposedValue(
                ProposedValue {
                    height: Height(p.height),
                    round: round_from(p.round),
                    valid_round: round_from(p.valid_round),
                    proposer: ValidatorId(p.proposer),
                    value: p.value.into_value()?,
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
            InputCbor::TimeoutElapsed(t) => {
                let kind = match t.kind {
                    TimeoutKindCbor::Propose => TimeoutKind::Propose,
                    TimeoutKindCbor::Prevote => TimeoutKind::Prevote,
                    TimeoutKindCbor::Precommit => TimeoutKind::Precommit,
                    TimeoutKindCbor::Rebroadcast => TimeoutKind::Rebroadcast,
                    TimeoutKindCbor::FinalizeHeight { secs, nanos } => {
                        // `Duration::new` panics when the nanoseconds carry
                        // over `u64::MAX` seconds; refuse any non-canonical one.
                        if nanos >= 1_000_000_000 {
                            return Err(BftError::MalformedMessage(format!(
                                "{nanos} nanoseconds is not a fraction of a second"
                            )));
                        }
                        TimeoutKind::FinalizeHeight(Duration::new(secs, nanos))
                    }
                };
                Input::TimeoutElapsed(Timeout::new(round_from(t.round), kind))
            }
            InputCbor::PolkaCertificate(c) => Input::PolkaCertificate(c.into_certificate()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arc_malachitebft_core_consensus::LocallyProposedValue;
    use rand::{Rng, SeedableRng};

    fn value(body: &str, payload: &[u8]) -> Value {
        Value::new(body.into(), payload.to_vec()).expect("well formed")
    }

    fn samples() -> Vec<WalEntry> {
        let id = value("log\n1\n", b"batch").id();
        let vote = Vote {
            vote_type: VoteType::Precommit,
            height: Height(7),
            round: Round::new(3),
            value_id: NilOrVal::Val(id.clone()),
            validator: ValidatorId(2),
            extension: Some(SignedMessage::new((), Signature([9; 64]))),
        };
        let proposal = Proposal {
            height: Height(7),
            round: Round::new(1),
            value: value("log\n1\n", b"batch"),
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
                    value: value("log\n0\n", b""),
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
                value("log\n0\n", b""),
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
        bytes[0] = 3;
        assert!(matches!(WalEntry::decode(&bytes), Err(WalError::Decode(_))));
        bytes[0] = WAL_ENTRY_FORMAT_BARE_VALUES;
        let refused = WalEntry::decode(&bytes).expect_err("an entry of format 1");
        assert!(refused.to_string().contains("no longer read"), "{refused}");
    }

    #[test]
    fn a_malformed_body_in_an_entry_is_refused() {
        let entry = &samples()[1];
        let bytes = entry.encode().expect("encodable");
        // The body "log\n1\n" becomes "log\r1\n": same length, still CBOR.
        let at = bytes
            .windows(6)
            .position(|window| window == b"log\n1\n")
            .expect("the body is in the bytes");
        let mut bad = bytes.clone();
        bad[at + 3] = b'\r';
        let error = WalEntry::decode(&bad).expect_err("a CR in the body");
        assert!(error.to_string().contains("control character"), "{error}");
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
