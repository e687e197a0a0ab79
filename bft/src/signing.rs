//! Ed25519 signatures over canonical sign-bytes, and certificate checks.
//!
//! Sign-bytes (binary integers big-endian):
//!
//! ```text
//! prevote, nil precommit:
//!   "stele-bft/vote/v1\0" type(1: prevote 1, precommit 2) height(8) round(8, i64)
//!   value(1: nil 0, some 1) [if some: digest(32) body length(4) body] validator(8)
//! proposal:
//!   "stele-bft/proposal/v1\0" height(8) round(8, i64) pol_round(8, i64, nil = -1)
//!   view(8) value digest(32) proposer(8)
//! precommit for a value: the UTF-8 text commit_note_text(height, round, view, id) =
//!   "{checkpoint body}stele-bft {height} {round} {view} {digest in lowercase hex}\n"
//! ```
//!
//! A precommit for a value signs a C2SP signed-note text: the host can put
//! each commit signature of a decided certificate on a note signature line
//! over the same text ([`commit_note_text`] with the view of
//! `Action::Decided`). A proposal signs its round's view too, so that nodes
//! whose view bases diverged never accept the same proposal and never
//! precommit the same value in different views (see [`crate::validators`]).
//! Views are [`crate::validators::round_view`]`(height, view_base, round)`,
//! so signing or checking a proposal or a precommit for a value needs the
//! height's view base: one of a height whose base is not known does not
//! verify (the node refuses rather than guesses).
//!
//! Domain separation: binary sign-bytes start with `stele-bft/` and hold a
//! NUL; a note text starts with a checkpoint body, which may neither start
//! with `stele-bft/` nor hold a NUL, so no signature of one kind verifies as
//! another, and the binary domains differ before their first NUL. A vote's
//! extension is not signed (Malachite rebuilds precommits without one to
//! check certificates). A proposal signs its value's digest, which binds the
//! body and the payload; a value vote signs the body too, so nothing about
//! the id it carries is unsigned.

use std::collections::BTreeSet;
use std::fmt;

use arc_malachitebft_core_types as types;
use arc_malachitebft_core_types::{
    CertificateError, CommitCertificate, NilOrVal, PolkaCertificate, Round, RoundCertificate,
    RoundCertificateType, ThresholdParam, VoteType,
};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::context::{new_vote, Height, Power, Proposal, SteleContext, ValidatorId, ValueId, Vote};
use crate::error::BftError;
use crate::validators::{round_view, ValidatorSet};

/// Domain prefix of a vote's binary sign-bytes.
pub const VOTE_DOMAIN: &[u8] = b"stele-bft/vote/v1\0";
/// Domain prefix of a proposal's sign-bytes.
pub const PROPOSAL_DOMAIN: &[u8] = b"stele-bft/proposal/v1\0";
/// The first word of the line a precommit's note text adds to the body.
pub const COMMIT_LINE_PREFIX: &str = "stele-bft";

/// An Ed25519 signature (a newtype: Malachite needs `Ord`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        self.0[..8]
            .iter()
            .try_for_each(|byte| write!(f, "{byte:02x}"))?;
        write!(f, "..)")
    }
}

/// The signing scheme: Ed25519 (ed25519-dalek), one key per validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl types::SigningScheme for Ed25519 {
    type DecodingError = String;
    type Signature = Signature;
    type PublicKey = VerifyingKey;
    type PrivateKey = SigningKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, String> {
        <[u8; 64]>::try_from(bytes)
            .map(Signature)
            .map_err(|_| format!("a signature is 64 bytes, not {}", bytes.len()))
    }
    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<VerifyingKey, String> {
        let bytes = <[u8; 32]>::try_from(bytes)
            .map_err(|_| format!("a public key is 32 bytes, not {}", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes).map_err(|error| error.to_string())
    }
    fn encode_public_key(public_key: &VerifyingKey) -> Vec<u8> {
        public_key.to_bytes().to_vec()
    }
}

/// A signed vote.
pub type SignedVote = types::SignedVote<SteleContext>;
/// A signed proposal.
pub type SignedProposal = types::SignedProposal<SteleContext>;

fn push_round(bytes: &mut Vec<u8>, round: types::Round) {
    bytes.extend_from_slice(&round.as_i64().to_be_bytes());
}

/// The note text a precommit for `id` at `(height, round)` signs, `view` being
/// the round's view: the checkpoint body, then
/// `stele-bft {height} {round} {view} {digest hex}` and a newline. A valid
/// C2SP signed-note text (the body is checked as one).
pub fn commit_note_text(height: Height, round: Round, view: u64, id: &ValueId) -> String {
    format!(
        "{}{COMMIT_LINE_PREFIX} {height} {round} {view} {id}\n",
        id.checkpoint_body()
    )
}

/// The note text every commit signature of `certificate` signs, the
/// certificate being decided in `view` (as `Action::Decided` and
/// [`crate::Decision`] carry it).
pub fn certificate_note_text(certificate: &CommitCertificate<SteleContext>, view: u64) -> String {
    commit_note_text(
        certificate.height,
        certificate.round,
        view,
        &certificate.value_id,
    )
}

/// The canonical bytes a vote's signature covers (extension excluded), at a
/// height whose view base is `view_base` (read only for a precommit for a
/// value: see the module's documentation).
pub fn vote_sign_bytes(vote: &Vote, view_base: u64) -> Vec<u8> {
    if let (VoteType::Precommit, NilOrVal::Val(id)) = (vote.vote_type, &vote.value_id) {
        let view = round_view(vote.height, view_base, vote.round);
        return commit_note_text(vote.height, vote.round, view, id).into_bytes();
    }
    let mut bytes = Vec::with_capacity(VOTE_DOMAIN.len() + 70);
    bytes.extend_from_slice(VOTE_DOMAIN);
    bytes.push(match vote.vote_type {
        VoteType::Prevote => 1,
        VoteType::Precommit => 2,
    });
    bytes.extend_from_slice(&vote.height.0.to_be_bytes());
    push_round(&mut bytes, vote.round);
    match &vote.value_id {
        NilOrVal::Nil => bytes.push(0),
        NilOrVal::Val(id) => {
            let body = id.checkpoint_body().as_bytes();
            let length = u32::try_from(body.len()).expect("a checked body is at most 1024 bytes");
            bytes.push(1);
            bytes.extend_from_slice(&id.digest());
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes.extend_from_slice(body);
        }
    }
    bytes.extend_from_slice(&vote.validator.0.to_be_bytes());
    bytes
}

/// The canonical bytes a proposal's signature covers, at a height whose view
/// base is `view_base`.
pub fn proposal_sign_bytes(proposal: &Proposal, view_base: u64) -> Vec<u8> {
    let view = round_view(proposal.height, view_base, proposal.round);
    let mut bytes = Vec::with_capacity(PROPOSAL_DOMAIN.len() + 72);
    bytes.extend_from_slice(PROPOSAL_DOMAIN);
    bytes.extend_from_slice(&proposal.height.0.to_be_bytes());
    push_round(&mut bytes, proposal.round);
    push_round(&mut bytes, proposal.pol_round);
    bytes.extend_from_slice(&view.to_be_bytes());
    bytes.extend_from_slice(&proposal.value.id().digest());
    bytes.extend_from_slice(&proposal.proposer.0.to_be_bytes());
    bytes
}

/// Signs `vote` with `key`, at a height whose view base is `view_base`.
pub fn sign_vote(key: &SigningKey, vote: Vote, view_base: u64) -> SignedVote {
    let signature = Signature(key.sign(&vote_sign_bytes(&vote, view_base)).to_bytes());
    SignedVote::new(vote, signature)
}

/// Signs `proposal` with `key`, at a height whose view base is `view_base`.
pub fn sign_proposal(key: &SigningKey, proposal: Proposal, view_base: u64) -> SignedProposal {
    let bytes = proposal_sign_bytes(&proposal, view_base);
    let signature = Signature(key.sign(&bytes).to_bytes());
    SignedProposal::new(proposal, signature)
}

fn verify_bytes(bytes: &[u8], signature: &Signature, key: &VerifyingKey) -> bool {
    // Strict verification refuses malleable and small-order signatures.
    key.verify_strict(bytes, &ed25519_dalek::Signature::from_bytes(&signature.0))
        .is_ok()
}

/// Whether `signature` is `key`'s signature of `vote`, at a height whose view
/// base is `view_base`.
pub fn verify_vote(vote: &Vote, signature: &Signature, key: &VerifyingKey, view_base: u64) -> bool {
    verify_bytes(&vote_sign_bytes(vote, view_base), signature, key)
}

/// Whether `signature` is `key`'s signature of `proposal`, at a height whose
/// view base is `view_base`.
pub fn verify_proposal(
    proposal: &Proposal,
    signature: &Signature,
    key: &VerifyingKey,
    view_base: u64,
) -> bool {
    verify_bytes(&proposal_sign_bytes(proposal, view_base), signature, key)
}

/// Checks a commit certificate on its own: it names `value_id`, its signers
/// are distinct members of `validators`, each signature verifies over
/// [`certificate_note_text`]`(certificate, view)`, and the signers hold more
/// than 2/3 of the total power. `view` is the view the certificate was
/// decided in (`Action::Decided`'s, a [`crate::Decision`]'s).
pub fn verify_certificate(
    certificate: &CommitCertificate<SteleContext>,
    value_id: &ValueId,
    validators: &ValidatorSet,
    view: u64,
) -> Result<(), BftError> {
    if certificate.value_id != *value_id {
        return Err(BftError::CertificateValueMismatch {
            expected: value_id.clone(),
            found: certificate.value_id.clone(),
        });
    }
    let text = certificate_note_text(certificate, view);
    let signers = certificate
        .commit_signatures
        .iter()
        .map(|signature| (signature.address, text.as_bytes(), signature.signature));
    let signed = signed_power(signers, validators)?;
    if validators.is_quorum(signed) {
        Ok(())
    } else {
        Err(BftError::NotEnoughPower {
            signed,
            total: validators.total_power(),
        })
    }
}

/// Sums the power of distinct, known signers whose signatures of their bytes
/// verify; fails on the first duplicate, unknown signer or bad signature.
fn signed_power<B: AsRef<[u8]>>(
    signed: impl Iterator<Item = (ValidatorId, B, Signature)>,
    validators: &ValidatorSet,
) -> Result<Power, BftError> {
    let mut seen = BTreeSet::new();
    let mut power: Power = 0;
    for (signer, bytes, signature) in signed {
        if !seen.insert(signer) {
            return Err(BftError::DuplicateSigner(signer));
        }
        let validator = validators
            .get(signer)
            .ok_or(BftError::UnknownSigner(signer))?;
        if !verify_bytes(bytes.as_ref(), &signature, &validator.public_key) {
            return Err(BftError::BadSignature(signer));
        }
        // Cannot overflow: distinct members' powers sum to at most the total.
        power += validator.power;
    }
    Ok(power)
}

/// Malachite's error for a certificate check, from ours.
fn certificate_error(
    error: BftError,
    validators: &ValidatorSet,
    expected: Power,
) -> CertificateError<SteleContext> {
    match error {
        BftError::DuplicateSigner(id) => CertificateError::DuplicateVote(id),
        BftError::UnknownSigner(id) => CertificateError::UnknownValidator(id),
        BftError::NotEnoughPower { signed, total } => CertificateError::NotEnoughVotingPower {
            signed,
            total,
            expected,
        },
        // A bad signature (the variant Malachite names per kind is only used for logs).
        _ => CertificateError::NotEnoughVotingPower {
            signed: 0,
            total: validators.total_power(),
            expected,
        },
    }
}

// Malachite takes its certificate error as is (a `Resume` of this type).
#[allow(clippy::result_large_err)]
fn check_threshold<B: AsRef<[u8]>>(
    signed: impl Iterator<Item = (ValidatorId, B, Signature)>,
    validators: &ValidatorSet,
    threshold: ThresholdParam,
) -> Result<(), CertificateError<SteleContext>> {
    let total = validators.total_power();
    let expected = threshold.min_expected(total);
    let power =
        signed_power(signed, validators).map_err(|e| certificate_error(e, validators, expected))?;
    if threshold.is_met(power, total) {
        Ok(())
    } else {
        Err(CertificateError::NotEnoughVotingPower {
            signed: power,
            total,
            expected,
        })
    }
}

/// The commit-certificate check Malachite asks for (`VerifyCommitCertificate`),
/// the certificate being decided in `view`.
// Malachite takes its certificate error as is (a `Resume` of this type).
#[allow(clippy::result_large_err)]
pub(crate) fn check_commit_certificate(
    certificate: &CommitCertificate<SteleContext>,
    validators: &ValidatorSet,
    threshold: ThresholdParam,
    view: u64,
) -> Result<(), CertificateError<SteleContext>> {
    let text = certificate_note_text(certificate, view);
    let signed = certificate
        .commit_signatures
        .iter()
        .map(|signature| (signature.address, text.as_bytes(), signature.signature));
    check_threshold(signed, validators, threshold)
}

/// The polka-certificate check (> 2/3 prevotes for one value; prevotes'
/// sign-bytes do not depend on the view).
// Malachite takes its certificate error as is (a `Resume` of this type).
#[allow(clippy::result_large_err)]
pub(crate) fn check_polka_certificate(
    certificate: &PolkaCertificate<SteleContext>,
    validators: &ValidatorSet,
    threshold: ThresholdParam,
) -> Result<(), CertificateError<SteleContext>> {
    let signed = certificate.polka_signatures.iter().map(|signature| {
        let vote = new_vote(
            VoteType::Prevote,
            certificate.height,
            certificate.round,
            NilOrVal::Val(certificate.value_id.clone()),
            signature.address,
        );
        (
            signature.address,
            vote_sign_bytes(&vote, 0),
            signature.signature,
        )
    });
    check_threshold(signed, validators, threshold)
}

/// The round-certificate check: a precommit certificate needs > 2/3 of
/// precommits, a skip certificate > 1/3 of votes of either kind; votes are
/// of a height whose view base is `view_base`.
// Malachite takes its certificate error as is (a `Resume` of this type).
#[allow(clippy::result_large_err)]
pub(crate) fn check_round_certificate(
    certificate: &RoundCertificate<SteleContext>,
    validators: &ValidatorSet,
    thresholds: types::ThresholdParams,
    view_base: u64,
) -> Result<(), CertificateError<SteleContext>> {
    let threshold = match certificate.cert_type {
        RoundCertificateType::Precommit => {
            if let Some(prevote) = certificate
                .round_signatures
                .iter()
                .find(|signature| signature.vote_type == VoteType::Prevote)
            {
                return Err(CertificateError::InvalidVoteType(prevote.address));
            }
            thresholds.quorum
        }
        RoundCertificateType::Skip => thresholds.honest,
    };
    let signed = certificate.round_signatures.iter().map(|signature| {
        let vote = new_vote(
            signature.vote_type,
            certificate.height,
            certificate.round,
            signature.value_id.clone(),
            signature.address,
        );
        let bytes = vote_sign_bytes(&vote, view_base);
        (signature.address, bytes, signature.signature)
    });
    check_threshold(signed, validators, threshold)
}

/// The signers of a certificate, in its order.
pub fn certificate_signers(certificate: &CommitCertificate<SteleContext>) -> Vec<ValidatorId> {
    certificate
        .commit_signatures
        .iter()
        .map(|signature| signature.address)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Height, Value};
    use arc_malachitebft_core_types::Round;

    fn value() -> Value {
        Value::new("example.com/log\n7\nroot\n".into(), b"batch".to_vec()).expect("well formed")
    }

    #[test]
    fn a_vote_signature_never_verifies_as_a_proposal_nor_another_vote_kind() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        let value = value();
        let prevote = new_vote(
            VoteType::Prevote,
            Height(3),
            Round::new(1),
            NilOrVal::Val(value.id()),
            ValidatorId(7),
        );
        let signed = sign_vote(&key, prevote.clone(), 0);
        assert!(verify_vote(&prevote, &signed.signature, &public, 0));
        // A prevote does not depend on the view base.
        assert!(verify_vote(&prevote, &signed.signature, &public, 99));
        let precommit = Vote {
            vote_type: VoteType::Precommit,
            ..prevote.clone()
        };
        assert!(!verify_vote(&precommit, &signed.signature, &public, 0));
        let proposal = Proposal {
            height: Height(3),
            round: Round::new(1),
            value,
            pol_round: Round::Nil,
            proposer: ValidatorId(7),
        };
        assert!(!verify_proposal(&proposal, &signed.signature, &public, 0));
        let signed_proposal = sign_proposal(&key, proposal.clone(), 0);
        // A proposal signs its view: another base is another view.
        assert!(!verify_proposal(
            &proposal,
            &signed_proposal.signature,
            &public,
            1
        ));
        assert!(verify_proposal(
            &proposal,
            &signed_proposal.signature,
            &public,
            0
        ));
        assert!(!verify_vote(
            &prevote,
            &signed_proposal.signature,
            &public,
            0
        ));
    }

    #[test]
    fn a_precommit_for_a_value_signs_its_note_text_in_its_view() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let public = key.verifying_key();
        let value = value();
        let precommit = new_vote(
            VoteType::Precommit,
            Height(12),
            Round::new(2),
            NilOrVal::Val(value.id()),
            ValidatorId(5),
        );
        let text = commit_note_text(Height(12), Round::new(2), 9, &value.id());
        assert_eq!(
            text,
            format!(
                "example.com/log\n7\nroot\nstele-bft 12 2 9 {}\n",
                value.id()
            )
        );
        assert_eq!(vote_sign_bytes(&precommit, 7), text.as_bytes());
        let signed = sign_vote(&key, precommit.clone(), 7);
        assert!(verify_vote(&precommit, &signed.signature, &public, 7));
        // Another view base is another view: the signature does not verify.
        assert!(!verify_vote(&precommit, &signed.signature, &public, 8));
        // Nor does the signature of the same text under another body.
        let other = Value::new("example.com/log\n8\nroot\n".into(), b"batch".to_vec())
            .expect("well formed");
        let forged = Vote {
            value_id: NilOrVal::Val(other.id()),
            ..precommit
        };
        assert!(!verify_vote(&forged, &signed.signature, &public, 7));
    }

    #[test]
    fn a_value_prevote_signs_the_body_of_its_id() {
        let value = value();
        let other_body =
            ValueId::from_parts(value.id().digest(), "x\n".into()).expect("well formed");
        let vote = |id: ValueId| {
            new_vote(
                VoteType::Prevote,
                Height(1),
                Round::new(0),
                NilOrVal::Val(id),
                ValidatorId(1),
            )
        };
        assert_ne!(
            vote_sign_bytes(&vote(value.id()), 0),
            vote_sign_bytes(&vote(other_body), 0)
        );
    }

    #[test]
    fn the_extension_is_not_signed() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let vote = new_vote(
            VoteType::Precommit,
            Height(1),
            Round::new(0),
            NilOrVal::Nil,
            ValidatorId(9),
        );
        let signed = sign_vote(&key, vote.clone(), 0);
        let extended = Vote {
            extension: Some(types::SignedMessage::new((), signed.signature)),
            ..vote
        };
        assert!(verify_vote(
            &extended,
            &signed.signature,
            &key.verifying_key(),
            0
        ));
    }
}
