//! The bytes validators exchange: a [`Message`], and a [`Decision`] (a decided
//! height served to a lagging peer, fed to it as [`crate::Event::Synced`]).
//!
//! Each is a format byte ([`MESSAGE_FORMAT`], [`DECISION_FORMAT`]) then the
//! CBOR of serde mirror types (those of [`crate::codec`], plus certificates).
//! Decoding checks the size first ([`MESSAGE_BYTES_MAX`]), then everything a
//! constructor would: fixed-size digests and signatures, well-formed
//! checkpoint bodies (a value's id is recomputed from its body and payload),
//! known variants, no trailing bytes. It never panics on any input. A
//! decision's certificate is not given its own height and value id: they are
//! the decision's. Signatures are not checked here: the node checks them.

use arc_malachitebft_core_types::{
    CommitCertificate, CommitSignature, NilOrVal, RoundCertificate, RoundCertificateType,
    RoundSignature, VoteType,
};
use serde::{Deserialize, Serialize};

use crate::codec::{
    from_cbor, round_cbor, round_from, signature_cbor, signature_from, to_cbor, PolkaCbor,
    ProposalCbor, SignatureCbor, ValueCbor, ValueIdCbor, VoteCbor,
};
use crate::context::{Height, SteleContext, ValidatorId, Value};
use crate::error::BftError;
use crate::events::Message;

/// The first byte of an encoded [`Message`]: the version of what follows.
pub const MESSAGE_FORMAT: u8 = 1;
/// The first byte of an encoded [`Decision`]: the version of what follows.
pub const DECISION_FORMAT: u8 = 1;
/// The largest encoded [`Message`] or [`Decision`], 64 MiB (a proposal and a
/// decision carry a whole batch), checked before anything else.
pub const MESSAGE_BYTES_MAX: usize = 64 << 20;

/// A decided height, as a node serves it to a lagging peer: what
/// [`crate::Action::Decided`] gave the host that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The decided height.
    pub height: Height,
    /// The view it was decided in (the next height's view base).
    pub view: u64,
    /// The decided value.
    pub value: Value,
    /// Its commit certificate.
    pub certificate: CommitCertificate<SteleContext>,
}

fn malformed(reason: String) -> BftError {
    BftError::MalformedMessage(reason)
}

fn check_size(bytes: &[u8]) -> Result<(), BftError> {
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(malformed(format!(
            "{} bytes, over MESSAGE_BYTES_MAX ({MESSAGE_BYTES_MAX})",
            bytes.len()
        )));
    }
    Ok(())
}

impl Message {
    /// The message's bytes: [`MESSAGE_FORMAT`], then CBOR.
    pub fn encode(&self) -> Vec<u8> {
        let mirror = match self {
            Message::Proposal(proposal) => {
                MessageCbor::Proposal(ProposalCbor::from_proposal(proposal))
            }
            Message::Vote(vote) => MessageCbor::Vote(VoteCbor::from_vote(vote)),
            Message::PolkaCertificate(certificate) => {
                MessageCbor::PolkaCertificate(PolkaCbor::from_certificate(certificate))
            }
            Message::RoundCertificate(certificate) => {
                MessageCbor::RoundCertificate(RoundCertificateCbor::from_certificate(certificate))
            }
        };
        to_cbor(MESSAGE_FORMAT, &mirror).expect("the mirror types always serialize into a Vec")
    }

    /// The message `bytes` encode; refuses (never panics on) anything else.
    pub fn decode(bytes: &[u8]) -> Result<Message, BftError> {
        check_size(bytes)?;
        let mirror: MessageCbor = from_cbor(MESSAGE_FORMAT, bytes).map_err(malformed)?;
        Ok(match mirror {
            MessageCbor::Proposal(proposal) => Message::Proposal(proposal.into_proposal()?),
            MessageCbor::Vote(vote) => Message::Vote(vote.into_vote()?),
            MessageCbor::PolkaCertificate(certificate) => {
                Message::PolkaCertificate(certificate.into_certificate()?)
            }
            MessageCbor::RoundCertificate(certificate) => {
                Message::RoundCertificate(certificate.into_certificate()?)
            }
        })
    }
}

impl Decision {
    /// The decision's bytes: [`DECISION_FORMAT`], then CBOR. The certificate
    /// is encoded as its round and signatures (its height and value id are the
    /// decision's, as [`crate::Action::Decided`] gives them).
    pub fn encode(&self) -> Vec<u8> {
        let certificate = &self.certificate;
        let mirror = DecisionCbor {
            height: self.height.0,
            view: self.view,
            value: ValueCbor::from_value(&self.value),
            round: round_cbor(certificate.round),
            signatures: certificate
                .commit_signatures
                .iter()
                .map(|s| (s.address.0, signature_cbor(&s.signature)))
                .collect(),
        };
        to_cbor(DECISION_FORMAT, &mirror).expect("the mirror types always serialize into a Vec")
    }

    /// The decision `bytes` encode; refuses (never panics on) anything else.
    pub fn decode(bytes: &[u8]) -> Result<Decision, BftError> {
        check_size(bytes)?;
        let mirror: DecisionCbor = from_cbor(DECISION_FORMAT, bytes).map_err(malformed)?;
        let value = mirror.value.into_value()?;
        let height = Height(mirror.height);
        let certificate = CommitCertificate {
            height,
            round: round_from(mirror.round),
            value_id: value.id(),
            commit_signatures: mirror
                .signatures
                .into_iter()
                .map(|(id, signature)| {
                    CommitSignature::new(ValidatorId(id), signature_from(signature))
                })
                .collect(),
        };
        Ok(Decision {
            height,
            view: mirror.view,
            value,
            certificate,
        })
    }
}

#[derive(Serialize, Deserialize)]
enum MessageCbor {
    Proposal(ProposalCbor),
    Vote(VoteCbor),
    PolkaCertificate(PolkaCbor),
    RoundCertificate(RoundCertificateCbor),
}

/// A decision. The certificate's height and value id are the decision's, so
/// they are not repeated (and cannot disagree).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionCbor {
    height: u64,
    view: u64,
    value: ValueCbor,
    /// The certificate's round.
    round: Option<u32>,
    /// The certificate's `(validator, signature)` pairs, in its order.
    signatures: Vec<(u64, SignatureCbor)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoundSignatureCbor {
    prevote: bool,
    value_id: Option<ValueIdCbor>,
    validator: u64,
    signature: SignatureCbor,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoundCertificateCbor {
    height: u64,
    round: Option<u32>,
    /// `RoundCertificateType::Skip` if true, `Precommit` otherwise.
    skip: bool,
    signatures: Vec<RoundSignatureCbor>,
}

impl RoundCertificateCbor {
    fn from_certificate(certificate: &RoundCertificate<SteleContext>) -> RoundCertificateCbor {
        RoundCertificateCbor {
            height: certificate.height.0,
            round: round_cbor(certificate.round),
            skip: certificate.cert_type == RoundCertificateType::Skip,
            signatures: certificate
                .round_signatures
                .iter()
                .map(|s| RoundSignatureCbor {
                    prevote: s.vote_type == VoteType::Prevote,
                    value_id: match &s.value_id {
                        NilOrVal::Nil => None,
                        NilOrVal::Val(id) => Some(ValueIdCbor::from_id(id)),
                    },
                    validator: s.address.0,
                    signature: signature_cbor(&s.signature),
                })
                .collect(),
        }
    }

    fn into_certificate(self) -> Result<RoundCertificate<SteleContext>, BftError> {
        let round_signatures = self
            .signatures
            .into_iter()
            .map(|s| {
                let value_id = match s.value_id {
                    None => NilOrVal::Nil,
                    Some(id) => NilOrVal::Val(id.into_id()?),
                };
                let vote_type = if s.prevote {
                    VoteType::Prevote
                } else {
                    VoteType::Precommit
                };
                Ok(RoundSignature::new(
                    vote_type,
                    value_id,
                    ValidatorId(s.validator),
                    signature_from(s.signature),
                ))
            })
            .collect::<Result<_, BftError>>()?;
        Ok(RoundCertificate {
            height: Height(self.height),
            round: round_from(self.round),
            cert_type: if self.skip {
                RoundCertificateType::Skip
            } else {
                RoundCertificateType::Precommit
            },
            round_signatures,
        })
    }
}
