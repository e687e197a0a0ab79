//! C2SP `signed-note` with Ed25519: signing, verifier keys, and verification.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then signature
//! lines `— <key name> <base64(key_id || signature)>`. The key ID is the first
//! 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || public key); the
//! signature is Ed25519 over the text. Verifier keys are written
//! `<name>+<key id, 8 hex>+<base64(0x01 || public key)>`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::HistoryError;

/// The signature algorithm byte of Ed25519 in C2SP signed notes.
const ALGORITHM_ED25519: u8 = 0x01;
/// What opens every signature line: an em dash and a space.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
/// Notes longer than this are refused before parsing (a checkpoint is ~150 bytes).
pub const NOTE_BYTES_MAX: usize = 64 * 1024;
/// Signature lines past this many are refused (the Go reference uses 100).
pub const NOTE_SIGNATURES_MAX: usize = 100;

/// The 4-byte key ID of an Ed25519 key under `name`.
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALGORITHM_ED25519]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Key names are non-empty and contain no Unicode whitespace and no '+'.
fn check_key_name(name: &str) -> Result<(), HistoryError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '+') {
        return Err(HistoryError::InvalidKeyName(name.to_owned()));
    }
    Ok(())
}

/// Signs note texts under a key name with an Ed25519 key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "NoteSigner({}+{:08x})", self.name, self.key_id)
    }
}

impl NoteSigner {
    /// A signer for `name` (the checkpoint origin) with `key`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, HistoryError> {
        check_key_name(name)?;
        let key_id = key_id(name, &key.verifying_key());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier that accepts this signer's notes.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// The signed note: `text`, a blank line, and this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, HistoryError> {
        check_note_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let line = signature_line(&self.name, self.key_id, &signature.to_bytes());
        Ok(format!("{text}\n{line}"))
    }
}

/// One signature line, newline included: `— <name> <base64(key id ||
/// signature)>` (a signature made elsewhere, e.g. a validator's precommit).
pub fn signature_line(name: &str, key_id: u32, signature: &[u8; 64]) -> String {
    let mut blob = Vec::with_capacity(4 + 64);
    blob.extend_from_slice(&key_id.to_be_bytes());
    blob.extend_from_slice(signature);
    format!("{SIGNATURE_LINE_PREFIX}{name} {}\n", BASE64.encode(blob))
}

/// Verifies notes signed by one named Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl NoteVerifier {
    /// A verifier for `name` with public key `key`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, HistoryError> {
        check_key_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// Parses a C2SP verifier key `<name>+<8 hex>+<base64(0x01 || key)>`,
    /// checking that the key ID matches the name and key.
    pub fn from_verifier_key(text: &str) -> Result<Self, HistoryError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(HistoryError::MalformedVerifierKey(
                "expected <name>+<key id>+<key>",
            ));
        };
        let mut id_bytes = [0u8; 4];
        crate::hash::decode_lower_hex(id_hex, &mut id_bytes, "verifier key id")
            .map_err(|_| HistoryError::MalformedVerifierKey("the key id is not 8 lowercase hex"))?;
        let raw = BASE64
            .decode(key_b64)
            .map_err(|_| HistoryError::MalformedVerifierKey("the key is not base64"))?;
        let Some((&ALGORITHM_ED25519, key_bytes)) = raw.split_first() else {
            return Err(HistoryError::MalformedVerifierKey("the key is not Ed25519"));
        };
        let key_bytes: [u8; 32] = key_bytes
            .try_into()
            .map_err(|_| HistoryError::MalformedVerifierKey("an Ed25519 key has 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| HistoryError::MalformedVerifierKey("not a valid Ed25519 point"))?;
        let verifier = NoteVerifier::new(name, key)?;
        if verifier.key_id != u32::from_be_bytes(id_bytes) {
            return Err(HistoryError::MalformedVerifierKey(
                "the key id does not match the name and key",
            ));
        }
        Ok(verifier)
    }

    /// The C2SP verifier key text.
    pub fn to_verifier_key(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALGORITHM_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The 4-byte key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Verifies `note` and returns its text (everything before the blank
    /// line, with its final newline). Signature lines of other keys are
    /// ignored, as C2SP requires; a line of this key whose signature fails is
    /// an error, and so is a note without a line of this key.
    pub fn verify<'a>(&self, note: &'a str) -> Result<&'a str, HistoryError> {
        let (text, signatures) = split_note(note)?;
        let mut verified = false;
        for line in signatures {
            let (name, id, signature) = parse_signature_line(line)?;
            if name != self.name || id != self.key_id {
                continue;
            }
            let signature = Signature::from_slice(&signature)
                .map_err(|_| HistoryError::MalformedNote("an Ed25519 signature has 64 bytes"))?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| HistoryError::SignatureInvalid {
                    name: self.name.clone(),
                })?;
            verified = true;
        }
        if !verified {
            return Err(HistoryError::NoSignatureFromKey {
                name: self.name.clone(),
                key_id: self.key_id,
            });
        }
        Ok(text)
    }
}

/// Note text: UTF-8 (guaranteed by `&str`), ends in a newline, no blank line,
/// no ASCII control characters other than newline.
fn check_note_text(text: &str) -> Result<(), HistoryError> {
    if !text.ends_with('\n') {
        return Err(HistoryError::MalformedNote(
            "the text must end with a newline",
        ));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(HistoryError::MalformedNote(
            "the text must not contain a blank line",
        ));
    }
    if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(HistoryError::MalformedNote("control character in the text"));
    }
    Ok(())
}

/// The text of a well-formed note, its signatures not verified: for a note
/// this process signed or verified before (kept in memory).
pub fn unverified_text(note: &str) -> Result<&str, HistoryError> {
    split_note(note).map(|(text, _)| text)
}

/// Splits a note into its text and its signature lines (without newlines),
/// checking its form (not its signatures).
pub fn split_note(note: &str) -> Result<(&str, std::str::Lines<'_>), HistoryError> {
    if note.len() > NOTE_BYTES_MAX {
        return Err(HistoryError::MalformedNote("the note is too long"));
    }
    if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(HistoryError::MalformedNote("control character in the note"));
    }
    let Some(split) = note.rfind("\n\n") else {
        return Err(HistoryError::MalformedNote(
            "no blank line before the signatures",
        ));
    };
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    check_note_text(text)?;
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(HistoryError::MalformedNote(
            "the signature block must be lines ending with a newline",
        ));
    }
    if signatures.lines().count() > NOTE_SIGNATURES_MAX {
        return Err(HistoryError::MalformedNote("too many signature lines"));
    }
    Ok((text, signatures.lines()))
}

/// `— <name> <base64(key id || signature)>` -> (name, key id, signature).
pub fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), HistoryError> {
    let Some(rest) = line.strip_prefix(SIGNATURE_LINE_PREFIX) else {
        return Err(HistoryError::MalformedNote(
            "a signature line must start with an em dash and a space",
        ));
    };
    let Some((name, encoded)) = rest.split_once(' ') else {
        return Err(HistoryError::MalformedNote(
            "a signature line needs a name and a signature",
        ));
    };
    check_key_name(name).map_err(|_| HistoryError::MalformedNote("invalid key name"))?;
    let blob = BASE64
        .decode(encoded)
        .map_err(|_| HistoryError::MalformedNote("the signature is not base64"))?;
    if blob.len() < 5 {
        return Err(HistoryError::MalformedNote("the signature is too short"));
    }
    let (id, signature) = blob.split_at(4);
    let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    Ok((name, id, signature.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn test_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_then_verify_returns_the_text() {
        let signer = NoteSigner::new("example.com/log", test_key(7)).unwrap();
        let note = signer.sign("hello\nworld\n").unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
        assert_eq!(signer.verifier().verify(&note), Ok("hello\nworld\n"));
    }

    #[test]
    fn verifier_key_round_trips_and_checks_its_id() {
        let verifier = NoteSigner::new("stele.example/log", test_key(1))
            .unwrap()
            .verifier();
        let text = verifier.to_verifier_key();
        assert_eq!(NoteVerifier::from_verifier_key(&text), Ok(verifier.clone()));
        let wrong_id = text.replacen(&format!("{:08x}", verifier.key_id()), "00000000", 1);
        assert!(NoteVerifier::from_verifier_key(&wrong_id).is_err());
        assert!(NoteVerifier::from_verifier_key("name+00000000").is_err());
    }

    #[test]
    fn other_keys_lines_are_ignored_but_ours_must_be_there() {
        let ours = NoteSigner::new("log", test_key(1)).unwrap();
        let theirs = NoteSigner::new("witness", test_key(2)).unwrap();
        let note = ours.sign("body\n").unwrap();
        let their_line = theirs.sign("body\n").unwrap();
        let their_line = their_line.split("\n\n").nth(1).unwrap();
        let cosigned = format!("{note}{their_line}");
        assert_eq!(ours.verifier().verify(&cosigned), Ok("body\n"));
        assert!(matches!(
            ours.verifier().verify(&theirs.sign("body\n").unwrap()),
            Err(HistoryError::NoSignatureFromKey { .. })
        ));
    }

    #[test]
    fn malformed_text_is_refused() {
        let signer = NoteSigner::new("log", test_key(1)).unwrap();
        assert!(signer.sign("no newline").is_err());
        assert!(signer.sign("a\n\nb\n").is_err());
        assert!(signer.sign("tab\there\n").is_err());
        assert!(NoteSigner::new("has space", test_key(1)).is_err());
        assert!(NoteSigner::new("has+plus", test_key(1)).is_err());
        assert!(NoteSigner::new("", test_key(1)).is_err());
    }
}
