//! C2SP `tlog-checkpoint`: the signed statement "the tree of this origin has
//! this size and this root".
//!
//! Body: `<origin>\n<tree size, decimal>\n<base64 root>\n`, optionally followed
//! by non-empty extension lines (signed; unknown ones are ignored). Stele signs
//! its checkpoints with a key named after the origin, and since ledger format 2
//! adds one extension line, `stele-view <view>`: the view of the batch the
//! checkpoint follows, so that an offline checker (who cannot recompute the
//! commit evidence, which also names it) can check the views the ledger
//! records.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;

use crate::note::{NoteSigner, NoteVerifier};
use crate::quorum::{validator_key_name, ValidatorQuorum};
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
    /// The `stele-view` extension: the view of the batch ending at
    /// `tree_size`; `None` in checkpoints written before ledger format 2.
    pub view: Option<u64>,
}

/// What opens Stele's view extension line.
pub const VIEW_EXTENSION_PREFIX: &str = "stele-view ";

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root.as_bytes())
        );
        if let Some(view) = self.view {
            body.push_str(&format!("{VIEW_EXTENSION_PREFIX}{view}\n"));
        }
        body
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

    /// Verifies a checkpoint note certified by `validators` (BFT mode: the
    /// signers hold more than two thirds of the voting power) and parses it.
    /// Returns it with the ids of the validators whose signature verified.
    /// Its origin must be the validators' service (each validator's key is
    /// named `<origin>/v<id>`), as [`Checkpoint::open`] requires the origin
    /// to be the signing key's name.
    pub fn open_certified(
        note: &str,
        validators: &ValidatorQuorum,
    ) -> Result<(Checkpoint, Vec<u64>), HistoryError> {
        let (text, signers) = validators.verify_signers(note)?;
        let checkpoint = Checkpoint::parse_body(text)?;
        if !validators_of_origin(validators, &checkpoint.origin) {
            return Err(HistoryError::MalformedCheckpoint(
                "the origin is not the validators' service",
            ));
        }
        Ok((checkpoint, signers))
    }

    /// Parses a signed checkpoint without verifying its signatures: for a
    /// note this process signed or verified before (kept in memory).
    pub fn parse_unverified(note: &str) -> Result<Checkpoint, HistoryError> {
        Checkpoint::parse_body(crate::note::unverified_text(note)?)
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
        let mut view = None;
        for extension in lines {
            if extension.is_empty() {
                return Err(HistoryError::MalformedCheckpoint("empty extension line"));
            }
            if let Some(number) = extension.strip_prefix(VIEW_EXTENSION_PREFIX) {
                let parsed = parse_canonical_u64(number).ok_or(
                    HistoryError::MalformedCheckpoint("the view is not canonical decimal"),
                )?;
                if view.replace(parsed).is_some() {
                    return Err(HistoryError::MalformedCheckpoint("two view lines"));
                }
            }
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
            view,
        })
    }
}

/// Whether `validators` are those of the service `origin`: every validator's
/// key is named [`validator_key_name`]`(origin, id)`.
pub fn validators_of_origin(validators: &ValidatorQuorum, origin: &str) -> bool {
    validators
        .members()
        .iter()
        .all(|member| member.verifier.name() == validator_key_name(origin, member.id))
}

/// Decimal digits without sign or leading zeros ("0" itself is fine), so each
/// number has one spelling.
pub fn parse_canonical_u64(text: &str) -> Option<u64> {
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
            view: None,
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
    fn the_view_line_is_signed_and_read_back() {
        let in_view = Checkpoint {
            view: Some(7),
            ..checkpoint()
        };
        let note = in_view.sign(&signer()).unwrap();
        assert!(note.contains("\nstele-view 7\n\n"), "{note}");
        assert_eq!(Checkpoint::open(&note, &signer().verifier()), Ok(in_view));
        // Rewriting the view breaks the signature.
        let rewritten = note.replace("stele-view 7", "stele-view 8");
        assert!(Checkpoint::open(&rewritten, &signer().verifier()).is_err());
        let root = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        for bad in [
            format!("o\n1\n{root}\nstele-view 07\n"),
            format!("o\n1\n{root}\nstele-view \n"),
            format!("o\n1\n{root}\nstele-view 1\nstele-view 1\n"),
        ] {
            assert!(Checkpoint::parse_body(&bad).is_err(), "{bad:?} parsed");
        }
        let other = format!("o\n1\n{root}\nother extension\n");
        assert_eq!(Checkpoint::parse_body(&other).unwrap().view, None);
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
