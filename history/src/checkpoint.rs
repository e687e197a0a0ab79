//! C2SP `tlog-checkpoint`: the signed statement "the tree of this origin has
//! this size and this root".
//!
//! Body: `<origin>\n<tree size, decimal>\n<base64 root>\n`, optionally followed
//! by non-empty extension lines (signed, otherwise ignored). Stele signs its
//! checkpoints with a key named after the origin.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;

use crate::note::{NoteSigner, NoteVerifier};
use crate::{Digest, HistoryError};

/// A tree head: origin, size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (C2SP: a schema-less URL such as `example.com/log`).
    pub origin: String,
    /// Number of leaves.
    pub tree_size: u64,
    /// RFC 9162 root of the first `tree_size` leaves.
    pub root: Digest,
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root.as_bytes())
        )
    }

    /// The signed note: body, blank line, signature line of `signer`.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, HistoryError> {
        if signer.name() != self.origin {
            return Err(HistoryError::MalformedCheckpoint(
                "Stele signs a checkpoint with the key named after its origin",
            ));
        }
        signer.sign(&self.body())
    }

    /// Verifies a signed checkpoint note with `verifier` and parses it.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, HistoryError> {
        let text = verifier.verify(note)?;
        let checkpoint = Checkpoint::parse_body(text)?;
        if checkpoint.origin != verifier.name() {
            return Err(HistoryError::MalformedCheckpoint(
                "the origin is not the signing key's name",
            ));
        }
        Ok(checkpoint)
    }

    /// Verifies a signed checkpoint note against a bare public key, taking
    /// the key name from the checkpoint's origin (Stele's convention).
    pub fn open_with_key(note: &str, key: &VerifyingKey) -> Result<Checkpoint, HistoryError> {
        let origin = note
            .split_once('\n')
            .map(|(origin, _)| origin)
            .ok_or(HistoryError::MalformedCheckpoint("no origin line"))?;
        let verifier = NoteVerifier::new(origin, *key)?;
        Checkpoint::open(note, &verifier)
    }

    /// Parses a checkpoint body (the note text, without signatures).
    pub fn parse_body(text: &str) -> Result<Checkpoint, HistoryError> {
        let mut lines = text.split_terminator('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(HistoryError::MalformedCheckpoint(
                "expected origin, size and root lines",
            ));
        };
        if origin.is_empty() {
            return Err(HistoryError::MalformedCheckpoint("empty origin"));
        }
        if lines.any(str::is_empty) {
            return Err(HistoryError::MalformedCheckpoint("empty extension line"));
        }
        let tree_size = parse_canonical_u64(size).ok_or(HistoryError::MalformedCheckpoint(
            "the size is not canonical decimal",
        ))?;
        let root_bytes: [u8; 32] = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(HistoryError::MalformedCheckpoint(
                "the root is not base64 of 32 bytes",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root: Digest(root_bytes),
        })
    }
}

/// Decimal digits without sign or leading zeros ("0" itself is fine), so each
/// number has one spelling.
pub(crate) fn parse_canonical_u64(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|digit| digit.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;
    use ed25519_dalek::SigningKey;

    fn signer() -> NoteSigner {
        NoteSigner::new("stele.example/ledger", SigningKey::from_bytes(&[3; 32])).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "stele.example/ledger".into(),
            tree_size: 1234,
            root: sha256(b"root"),
        }
    }

    #[test]
    fn round_trip() {
        let note = checkpoint().sign(&signer()).unwrap();
        assert_eq!(
            Checkpoint::open(&note, &signer().verifier()),
            Ok(checkpoint())
        );
        let key = signer().verifier().key().to_owned();
        assert_eq!(Checkpoint::open_with_key(&note, &key), Ok(checkpoint()));
    }

    #[test]
    fn any_flipped_byte_fails_verification() {
        let note = checkpoint().sign(&signer()).unwrap();
        let key = signer().verifier().key().to_owned();
        let bytes = note.as_bytes();
        for position in 0..bytes.len() {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut tampered = bytes.to_vec();
                tampered[position] ^= flip;
                let Ok(tampered) = String::from_utf8(tampered) else {
                    continue; // Not text: no note can be read from it at all.
                };
                assert!(
                    Checkpoint::open_with_key(&tampered, &key).is_err(),
                    "flip {flip:#x} at byte {position} went unnoticed:\n{tampered}"
                );
            }
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [
            "",
            "origin\n",
            "origin\n12\n",
            "\n12\nAAAA\n",
            "origin\n012\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "origin\n+12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "origin\n12\nnot base64\n",
            "origin\n12\nAAAA\n",
            "origin\n99999999999999999999\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            assert!(Checkpoint::parse_body(body).is_err(), "{body:?} parsed");
        }
        let good = "origin\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n";
        assert_eq!(Checkpoint::parse_body(good).unwrap().tree_size, 12);
    }
}
