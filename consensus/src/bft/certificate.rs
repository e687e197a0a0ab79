//! A decided height as the ledger holds it, and back.
//!
//! The ledger's signature entry after a BFT batch is the **certificate note**:
//! a C2SP signed note whose text is the checkpoint body the batch was proposed
//! with plus one extension line binding the decision,
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root>
//! stele-view <view of the batch>
//! stele-bft <height> <round> <decided view> <value digest, hex>
//!
//! — <origin>/v1 <base64(key id || Ed25519 signature)>
//! — <origin>/v3 ...
//! ```
//!
//! with one signature line per precommit of the commit certificate: each is
//! the validator's precommit signature, made over exactly this text
//! (`stele_bft::commit_note_text`). Any signed-note verifier checks each line
//! with the validator's verifier key; the note is certified when the signers
//! hold more than two thirds of the voting power
//! ([`stele_history::ValidatorQuorum`]). A lagging validator gets the decision
//! back ([`decision_from_ledger`]) from these bytes and the batch entry.

use stele_bft::signing::COMMIT_LINE_PREFIX;
use stele_bft::{
    commit_note_text, CommitCertificate, CommitSignature, Decision, Height, Round, Signature,
    SteleContext, ValidatorId, ValidatorSet, Value,
};
use stele_history::note::{key_id, signature_line};
use stele_history::{validator_id_of_key_name, validator_key_name};
use stele_ledger::entry::EntryRef;
use stele_ledger::{BatchEntry, SignatureEntry};

use crate::ConsensusError;

/// The certificate note of `certificate`, decided in `view`.
pub fn certificate_note(
    origin: &str,
    validators: &ValidatorSet,
    certificate: &CommitCertificate<SteleContext>,
    view: u64,
) -> Result<String, ConsensusError> {
    let text = commit_note_text(
        certificate.height,
        certificate.round,
        view,
        &certificate.value_id,
    );
    let mut note = format!("{text}\n");
    for signature in &certificate.commit_signatures {
        let validator = validators.get(signature.address).ok_or_else(|| {
            ConsensusError::Bft(format!(
                "a commit signature of {}, not a validator",
                signature.address
            ))
        })?;
        let name = validator_key_name(origin, signature.address.0);
        let key_id = key_id(&name, &validator.public_key);
        note.push_str(&signature_line(&name, key_id, &signature.signature.0));
    }
    Ok(note)
}

/// The value a batch entry is proposed as: its checkpoint body and its
/// ledger encoding.
pub fn value_of(batch: &BatchEntry, checkpoint_body: &str) -> Result<Value, ConsensusError> {
    Value::new(checkpoint_body.to_owned(), EntryRef::Batch(batch).encode())
        .map_err(|error| ConsensusError::Bft(format!("the batch is not a valid value: {error}")))
}

/// The batch entry a value carries.
pub fn batch_of(value: &Value) -> Result<BatchEntry, String> {
    match stele_ledger::Entry::decode(value.payload()) {
        Ok(stele_ledger::Entry::Batch(batch)) => Ok(batch),
        Ok(_) => Err("the value is not a batch entry".to_owned()),
        Err(error) => Err(format!("the value does not decode: {error}")),
    }
}

/// A certificate note taken apart (its signatures not checked).
struct CertificateParts<'a> {
    /// The checkpoint body the batch was proposed with.
    body: &'a str,
    height: u64,
    round: u32,
    /// The view the height was decided in.
    view: u64,
    /// The value's digest, lowercase hex.
    digest: &'a str,
    /// The signature lines, without newlines.
    signatures: std::str::Lines<'a>,
}

/// Splits a certificate note into its body, decision line and signatures.
fn certificate_parts(note: &str) -> Result<CertificateParts<'_>, String> {
    let (text, signatures) = stele_history::note::split_note(note).map_err(|e| e.to_string())?;
    let body_end = text[..text.len() - 1]
        .rfind('\n')
        .map(|end| end + 1)
        .ok_or("too short")?;
    let (body, line) = text.split_at(body_end);
    let fields: Vec<&str> = line
        .trim_end_matches('\n')
        .strip_prefix(COMMIT_LINE_PREFIX)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or("no decision line")?
        .split(' ')
        .collect();
    let [height, round, view, digest] = fields[..] else {
        return Err("the decision line needs four fields".to_owned());
    };
    let number = |field: &str| {
        stele_history::checkpoint::parse_canonical_u64(field)
            .ok_or_else(|| "a number is not canonical decimal".to_owned())
    };
    Ok(CertificateParts {
        body,
        height: number(height)?,
        round: u32::try_from(number(round)?).map_err(|_| "the round is too large")?,
        view: number(view)?,
        digest,
        signatures,
    })
}

/// The decision recorded in the ledger as `batch` and its certificate note
/// `signature`, for a lagging validator (it checks the certificate itself).
pub fn decision_from_ledger(
    origin: &str,
    batch: &BatchEntry,
    signature: &SignatureEntry,
) -> Result<Decision, ConsensusError> {
    let refused = |reason: &str| ConsensusError::Bft(format!("the certificate note: {reason}"));
    let parts = certificate_parts(&signature.checkpoint).map_err(|reason| refused(&reason))?;
    let value = value_of(batch, parts.body)?;
    if value.id().to_string() != parts.digest {
        return Err(refused("the value digest differs from the batch's"));
    }
    let mut commit_signatures = Vec::new();
    for line in parts.signatures {
        let (name, _, signature) = stele_history::note::parse_signature_line(line)
            .map_err(|error| refused(&error.to_string()))?;
        let id = validator_id_of_key_name(origin, name)
            .ok_or_else(|| refused("a signer that is not a validator of this service"))?;
        let bytes: [u8; 64] = signature
            .try_into()
            .map_err(|_| refused("a signature is not 64 bytes"))?;
        commit_signatures.push(CommitSignature::new(ValidatorId(id), Signature(bytes)));
    }
    let certificate = CommitCertificate {
        height: Height(parts.height),
        round: Round::new(parts.round),
        value_id: value.id(),
        commit_signatures,
    };
    Ok(Decision {
        height: Height(parts.height),
        view: parts.view,
        value,
        certificate,
    })
}

/// The decided view recorded in a certificate note (the next height's base).
pub fn decided_view(note: &str) -> Option<u64> {
    certificate_parts(note).ok().map(|parts| parts.view)
}
