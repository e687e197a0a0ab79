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

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use stele_bft::{
    commit_note_text, CommitCertificate, CommitSignature, Decision, Height, Round, Signature,
    SteleContext, ValidatorId, ValidatorSet, Value,
};
use stele_history::note::key_id;
use stele_history::validator_key_name;
use stele_ledger::entry::EntryRef;
use stele_ledger::{BatchEntry, SignatureEntry};

use crate::ConsensusError;

/// What opens the decision's extension line.
pub const DECISION_EXTENSION_PREFIX: &str = "stele-bft ";

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
        let mut blob = key_id(&name, &validator.public_key).to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.signature.0);
        note.push_str(&format!("\u{2014} {name} {}\n", BASE64.encode(blob)));
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

/// The decision recorded in the ledger as `batch` and its certificate note
/// `signature`, for a lagging validator (it checks the certificate itself).
pub fn decision_from_ledger(
    origin: &str,
    batch: &BatchEntry,
    signature: &SignatureEntry,
) -> Result<Decision, ConsensusError> {
    let refused = |reason: &str| ConsensusError::Bft(format!("the certificate note: {reason}"));
    let note = &signature.checkpoint;
    let (text, lines) = note
        .rsplit_once("\n\n")
        .ok_or_else(|| refused("no signature lines"))?;
    let text = format!("{text}\n");
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|end| end + 1)
        .ok_or_else(|| refused("too short"))?;
    let (body, line) = text.split_at(body_end);
    let fields: Vec<&str> = line
        .trim_end_matches('\n')
        .strip_prefix(DECISION_EXTENSION_PREFIX)
        .ok_or_else(|| refused("no decision line"))?
        .split(' ')
        .collect();
    let [height, round, view, digest] = fields[..] else {
        return Err(refused("the decision line needs four fields"));
    };
    let number = |field: &str| {
        stele_history::checkpoint::parse_canonical_u64(field)
            .ok_or_else(|| refused("a number is not canonical decimal"))
    };
    let (height, round, view) = (number(height)?, number(round)?, number(view)?);
    let round = u32::try_from(round).map_err(|_| refused("the round is too large"))?;
    let value = value_of(batch, body)?;
    if value.id().to_string() != digest {
        return Err(refused("the value digest differs from the batch's"));
    }
    let prefix = format!("{origin}/v");
    let mut commit_signatures = Vec::new();
    for line in lines.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| refused("a malformed signature line"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| refused("a malformed signature line"))?;
        let id = name
            .strip_prefix(&prefix)
            .and_then(stele_history::checkpoint::parse_canonical_u64)
            .ok_or_else(|| refused("a signer that is not a validator of this service"))?;
        let blob = BASE64
            .decode(encoded)
            .map_err(|_| refused("a signature is not base64"))?;
        let bytes: [u8; 64] = blob
            .get(4..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| refused("a signature is not 64 bytes"))?;
        commit_signatures.push(CommitSignature::new(ValidatorId(id), Signature(bytes)));
    }
    let certificate = CommitCertificate {
        height: Height(height),
        round: Round::new(round),
        value_id: value.id(),
        commit_signatures,
    };
    Ok(Decision {
        height: Height(height),
        view,
        value,
        certificate,
    })
}

/// The decided view recorded in a certificate note (the next height's base).
pub fn decided_view(note: &str) -> Option<u64> {
    let text = note.rsplit_once("\n\n")?.0;
    let line = text.lines().last()?;
    let fields: Vec<&str> = line
        .strip_prefix(DECISION_EXTENSION_PREFIX)?
        .split(' ')
        .collect();
    stele_history::checkpoint::parse_canonical_u64(fields.get(2)?)
}
