//! Ed25519 signatures over canonical sign-bytes, and certificate checks.
//!
//! Sign-bytes (all integers big-endian):
//!
//! ```text
//! vote:     "stele-bft/vote/v1\0"     type(1: prevote 1, precommit 2) height(8) round(8, i64)
//!                                     value(1: nil 0, some 1) [value id (32) if some] validator(8)
//! proposal: "stele-bft/proposal/v1\0" height(8) round(8, i64) pol_round(8, i64, nil = -1)
//!                                     value id(32) proposer(8)
//! ```
//!
//! The domain prefixes differ before their first NUL, so a signature over one
//! kind never verifies as the other. A vote's extension is not signed
//! (Malachite rebuilds precommits without one to check certificates), and a
//! proposal signs its value's id, which binds the bytes through SHA-256.

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
use crate::validators::ValidatorSet;

/// Domain prefix of a vote's sign-bytes.
pub const VOTE_DOMAIN: &[u8] = b"stele-bft/vote/v1\0";
/// Domain prefix of a proposal's sign-bytes.
pub const PROPOSAL_DOMAIN: &[u8] = b"stele-bft/proposal/v1\0";

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

/// The canonical bytes a vote's signature covers (extension excluded).
pub fn vote_sign_bytes(vote: &Vote) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(VOTE_DOMAIN.len() + 66);
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
            bytes.push(1);
            bytes.extend_from_slice(&id.0);
        }
    }
    bytes.extend_from_slice(&vote.validator.0.to_be_bytes());
    bytes
}

/// The canonical bytes a proposal's signature covers.
pub fn proposal_sign_bytes(proposal: &Proposal) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PROPOSAL_DOMAIN.len() + 64);
    bytes.extend_from_slice(PROPOSAL_DOMAIN);
    bytes.extend_from_slice(&proposal.height.0.to_be_bytes());
    push_round(&mut bytes, proposal.round);
    push_round(&mut bytes, proposal.pol_round);
    bytes.extend_from_slice(&proposal.value.id().0);
    bytes.extend_from_slice(&proposal.proposer.0.to_be_bytes());
    bytes
}

/// Signs `vote` with `key`.
pub fn sign_vote(key: &SigningKey, vote: Vote) -> SignedVote {
    let signature = Signature(key.sign(&vote_sign_bytes(&vote)).to_bytes());
    SignedVote::new(vote, signature)
}

/// Signs `proposal` with `key`.
pub fn sign_proposal(key: &SigningKey, proposal: Proposal) -> SignedProposal {
    let signature = Signature(key.sign(&proposal_sign_bytes(&proposal)).to_bytes());
    SignedProposal::new(proposal, signature)
}

fn verify_bytes(bytes: &[u8], signature: &Signature, key: &VerifyingKey) -> bool {
    // Strict verification refuses malleable and small-order signatures.
    key.verify_strict(bytes, &ed25519_dalek::Signature::from_bytes(&signature.0))
        .is_ok()
}

/// Whether `signature` is `key`'s signature of `vote`.
pub fn verify_vote(vote: &Vote, signature: &Signature, key: &VerifyingKey) -> bool {
    verify_bytes(&vote_sign_bytes(vote), signature, key)
}

/// Whether `signature` is `key`'s signature of `proposal`.
pub fn verify_proposal(proposal: &Proposal, signature: &Signature, key: &VerifyingKey) -> bool {
    verify_bytes(&proposal_sign_bytes(proposal), signature, key)
}

/// Checks a commit certificate on its own: it names `value_id`, its signers
/// are distinct members of `validators`, each signature verifies over the
/// precommit `(height, round, value_id, signer)`, and the signers hold more
/// than 2/3 of the total power.
pub fn verify_certificate(
    certificate: &CommitCertificate<SteleContext>,
    value_id: ValueId,
    validators: &ValidatorSet,
) -> Result<(), BftError> {
    if certificate.value_id != value_id {
        return Err(BftError::CertificateValueMismatch {
            expected: value_id,
            found: certificate.value_id,
        });
    }
    let signers = certificate.commit_signatures.iter().map(|signature| {
        let vote = new_vote(
            VoteType::Precommit,
            certificate.height,
            certificate.round,
            NilOrVal::Val(certificate.value_id),
            signature.address,
        );
        (vote, signature.signature)
    });
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

/// Sums the power of distinct, known signers whose signatures verify; fails
/// on the first duplicate, unknown signer or bad signature.
fn signed_power(
    votes: impl Iterator<Item = (Vote, Signature)>,
    validators: &ValidatorSet,
) -> Result<Power, BftError> {
    let mut seen = BTreeSet::new();
    let mut signed: Power = 0;
    for (vote, signature) in votes {
        let signer = vote.validator;
        if !seen.insert(signer) {
            return Err(BftError::DuplicateSigner(signer));
        }
        let validator = validators
            .get(signer)
            .ok_or(BftError::UnknownSigner(signer))?;
        if !verify_vote(&vote, &signature, &validator.public_key) {
            return Err(BftError::BadSignature(signer));
        }
        // Cannot overflow: distinct members' powers sum to at most the total.
        signed += validator.power;
    }
    Ok(signed)
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

fn check_threshold(
    votes: impl Iterator<Item = (Vote, Signature)>,
    validators: &ValidatorSet,
    threshold: ThresholdParam,
) -> Result<(), CertificateError<SteleContext>> {
    let total = validators.total_power();
    let expected = threshold.min_expected(total);
    let signed =
        signed_power(votes, validators).map_err(|e| certificate_error(e, validators, expected))?;
    if threshold.is_met(signed, total) {
        Ok(())
    } else {
        Err(CertificateError::NotEnoughVotingPower {
            signed,
            total,
            expected,
        })
    }
}

/// The votes of `vote_type` for `value_id` at `(height, round)` that
/// `signers` (address, signature) claim, rebuilt for checking.
fn votes_for_value(
    vote_type: VoteType,
    height: Height,
    round: Round,
    value_id: ValueId,
    signers: impl Iterator<Item = (ValidatorId, Signature)>,
) -> impl Iterator<Item = (Vote, Signature)> {
    signers.map(move |(address, signature)| {
        let vote = new_vote(vote_type, height, round, NilOrVal::Val(value_id), address);
        (vote, signature)
    })
}

/// The commit-certificate check Malachite asks for (`VerifyCommitCertificate`).
pub(crate) fn check_commit_certificate(
    certificate: &CommitCertificate<SteleContext>,
    validators: &ValidatorSet,
    threshold: ThresholdParam,
) -> Result<(), CertificateError<SteleContext>> {
    let signers = certificate
        .commit_signatures
        .iter()
        .map(|signature| (signature.address, signature.signature));
    let votes = votes_for_value(
        VoteType::Precommit,
        certificate.height,
        certificate.round,
        certificate.value_id,
        signers,
    );
    check_threshold(votes, validators, threshold)
}

/// The polka-certificate check (> 2/3 prevotes for one value).
pub(crate) fn check_polka_certificate(
    certificate: &PolkaCertificate<SteleContext>,
    validators: &ValidatorSet,
    threshold: ThresholdParam,
) -> Result<(), CertificateError<SteleContext>> {
    let signers = certificate
        .polka_signatures
        .iter()
        .map(|signature| (signature.address, signature.signature));
    let votes = votes_for_value(
        VoteType::Prevote,
        certificate.height,
        certificate.round,
        certificate.value_id,
        signers,
    );
    check_threshold(votes, validators, threshold)
}

/// The round-certificate check: a precommit certificate needs > 2/3 of
/// precommits, a skip certificate > 1/3 of votes of either kind.
pub(crate) fn check_round_certificate(
    certificate: &RoundCertificate<SteleContext>,
    validators: &ValidatorSet,
    thresholds: types::ThresholdParams,
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
    let votes = certificate.round_signatures.iter().map(|signature| {
        let vote = new_vote(
            signature.vote_type,
            certificate.height,
            certificate.round,
            signature.value_id,
            signature.address,
        );
        (vote, signature.signature)
    });
    check_threshold(votes, validators, threshold)
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

    #[test]
    fn a_vote_signature_never_verifies_as_a_proposal_nor_another_vote_kind() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let value = Value::new(b"batch".to_vec());
        let prevote = new_vote(
            VoteType::Prevote,
            Height(3),
            Round::new(1),
            NilOrVal::Val(value.id()),
            ValidatorId(7),
        );
        let signed = sign_vote(&key, prevote.clone());
        assert!(verify_vote(
            &prevote,
            &signed.signature,
            &key.verifying_key()
        ));
        let precommit = Vote {
            vote_type: VoteType::Precommit,
            ..prevote.clone()
        };
        assert!(!verify_vote(
            &precommit,
            &signed.signature,
            &key.verifying_key()
        ));
        let proposal = Proposal {
            height: Height(3),
            round: Round::new(1),
            value,
            pol_round: Round::Nil,
            proposer: ValidatorId(7),
        };
        assert!(!verify_proposal(
            &proposal,
            &signed.signature,
            &key.verifying_key()
        ));
        let signed_proposal = sign_proposal(&key, proposal.clone());
        assert!(verify_proposal(
            &proposal,
            &signed_proposal.signature,
            &key.verifying_key()
        ));
        assert!(!verify_vote(
            &prevote,
            &signed_proposal.signature,
            &key.verifying_key()
        ));
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
        let signed = sign_vote(&key, vote.clone());
        let extended = Vote {
            extension: Some(types::SignedMessage::new((), signed.signature)),
            ..vote
        };
        assert!(verify_vote(
            &extended,
            &signed.signature,
            &key.verifying_key()
        ));
    }
}
