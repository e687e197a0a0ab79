//! [`Value`] and [`ValueId`]: what a height decides, and what votes name.
//!
//! A value is a batch: the text of its checkpoint body (the C2SP checkpoint
//! the batch leads to, without signatures) and an opaque payload (the batch's
//! bytes). Its id carries the body too, because a precommit for a value signs
//! a note text made of the body and one more line ([`crate::commit_note_text`]),
//! and a vote only carries the id.
//!
//! ```text
//! digest = SHA-256( u32-LE length of body || body || payload )
//! ```
//!
//! A body is the text of a C2SP signed note (as Stele's `history::note` checks
//! it): non-empty, at most [`CHECKPOINT_BODY_BYTES_MAX`] bytes, ending in a
//! newline, with no empty line and no ASCII control character other than the
//! newline (so no NUL and no CR), and not starting with `stele-bft/` (the
//! prefix of the binary sign-bytes, so that a note text is never the
//! sign-bytes of another message).

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::BftError;

/// The largest checkpoint body a value may carry, in bytes.
pub const CHECKPOINT_BODY_BYTES_MAX: usize = 1024;
/// The prefix no checkpoint body may start with (the sign-bytes' domains').
pub const RESERVED_BODY_PREFIX: &str = "stele-bft/";

/// Checks `body` as a checkpoint body (see the module's documentation).
pub(crate) fn check_checkpoint_body(body: &str) -> Result<(), BftError> {
    let refuse = |why: String| Err(BftError::MalformedValue(why));
    if body.is_empty() {
        return refuse("the checkpoint body is empty".into());
    }
    if body.len() > CHECKPOINT_BODY_BYTES_MAX {
        return refuse(format!(
            "the checkpoint body is {} bytes, over CHECKPOINT_BODY_BYTES_MAX ({CHECKPOINT_BODY_BYTES_MAX})",
            body.len()
        ));
    }
    if !body.ends_with('\n') {
        return refuse("the checkpoint body does not end in a newline".into());
    }
    if body.starts_with('\n') || body.contains("\n\n") {
        return refuse("the checkpoint body holds an empty line".into());
    }
    if let Some(control) = body.chars().find(|c| c.is_ascii_control() && *c != '\n') {
        return refuse(format!(
            "the checkpoint body holds the control character {:#04x}",
            u32::from(control)
        ));
    }
    if body.starts_with(RESERVED_BODY_PREFIX) {
        return refuse(format!(
            "the checkpoint body starts with {RESERVED_BODY_PREFIX:?}"
        ));
    }
    Ok(())
}

/// The id of a value: its digest and its checkpoint body.
///
/// Equality, order and hash cover both, so an id whose body was changed is
/// another id (a vote for it is a vote for another value).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId {
    digest: [u8; 32],
    body: Arc<str>,
}

impl ValueId {
    /// An id as decoded: a digest and a body, the body checked as
    /// [`Value::new`] checks it. The digest cannot be checked without the
    /// payload; a vote or certificate naming a wrong one matches no value.
    pub(crate) fn from_parts(digest: [u8; 32], body: String) -> Result<ValueId, BftError> {
        check_checkpoint_body(&body)?;
        Ok(ValueId {
            digest,
            body: body.into(),
        })
    }

    /// The SHA-256 of the value (see the module's documentation).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The value's checkpoint body.
    pub fn checkpoint_body(&self) -> &str {
        &self.body
    }
}

impl fmt::Display for ValueId {
    /// The digest in lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.digest
            .iter()
            .try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueId({self})")
    }
}

/// A proposed batch: its checkpoint body and its payload, and their id.
///
/// Invariant: the body is well formed and `id` is computed from the body and
/// the payload; the fields are private so that the only way to build one is
/// [`Value::new`] (decoders go through it too).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value {
    id: ValueId,
    payload: Vec<u8>,
}

impl Value {
    /// A value of `checkpoint_body` and `payload`; refuses a malformed body
    /// ([`BftError::MalformedValue`]): empty, over [`CHECKPOINT_BODY_BYTES_MAX`],
    /// not ending in `'\n'`, holding an empty line, a NUL, a CR or another
    /// ASCII control character, or starting with [`RESERVED_BODY_PREFIX`].
    pub fn new(checkpoint_body: String, payload: Vec<u8>) -> Result<Value, BftError> {
        check_checkpoint_body(&checkpoint_body)?;
        let length = u32::try_from(checkpoint_body.len())
            .expect("a checked body is at most CHECKPOINT_BODY_BYTES_MAX bytes");
        let mut hasher = Sha256::new();
        hasher.update(length.to_le_bytes());
        hasher.update(checkpoint_body.as_bytes());
        hasher.update(&payload);
        let id = ValueId {
            digest: hasher.finalize().into(),
            body: checkpoint_body.into(),
        };
        Ok(Value { id, payload })
    }

    /// The checkpoint body.
    pub fn checkpoint_body(&self) -> &str {
        &self.id.body
    }

    /// The payload (the batch's bytes).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The value's id.
    pub fn id(&self) -> ValueId {
        self.id.clone()
    }

    /// The value as one byte string, the digest's input: u32-LE length of
    /// the body, the body, the payload (how a synced value travels through
    /// Malachite's `ValueResponse`).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let body = self.checkpoint_body().as_bytes();
        let length = u32::try_from(body.len())
            .expect("a checked body is at most CHECKPOINT_BODY_BYTES_MAX bytes");
        let mut bytes = Vec::with_capacity(4 + body.len() + self.payload.len());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    /// The value [`Value::to_bytes`] gave; refuses anything else.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Value, BftError> {
        let malformed = |why: &str| BftError::MalformedValue(why.into());
        let (length, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("fewer than 4 bytes"))?;
        let length = usize::try_from(u32::from_le_bytes(*length))
            .map_err(|_| malformed("a body length over usize"))?;
        if length > rest.len() {
            return Err(malformed("a body length past the end"));
        }
        let (body, payload) = rest.split_at(length);
        let body =
            String::from_utf8(body.to_vec()).map_err(|_| malformed("a body that is not UTF-8"))?;
        Value::new(body, payload.to_vec())
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A batch can be large: show its id and size, not its bytes.
        write!(f, "Value({}, {} bytes)", self.id, self.payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(body: &str, payload: &[u8]) -> Result<Value, BftError> {
        Value::new(body.to_string(), payload.to_vec())
    }

    #[test]
    fn the_digest_covers_the_length_of_the_body_then_the_body_and_the_payload() {
        let id = value("abc\n", b"xyz").expect("well formed").id();
        let mut preimage = 4u32.to_le_bytes().to_vec();
        preimage.extend_from_slice(b"abc\nxyz");
        let expected: [u8; 32] = Sha256::digest(&preimage).into();
        assert_eq!(id.digest(), expected);
        assert_eq!(id.checkpoint_body(), "abc\n");
        assert_eq!(id.to_string().len(), 64);
        // Moving bytes between the body and the payload changes the id.
        let moved = value("abc\nx\n", b"yz").expect("well formed").id();
        assert_ne!(moved.digest(), id.digest());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let long = format!("{}\n", "a".repeat(CHECKPOINT_BODY_BYTES_MAX));
        let edge = format!("{}\n", "a".repeat(CHECKPOINT_BODY_BYTES_MAX - 1));
        assert!(value(&edge, b"").is_ok());
        for bad in [
            "",
            "no newline",
            "\nfirst line empty\n",
            "a\n\nb\n",
            "nul\0\n",
            "cr\r\n",
            "tab\t\n",
            "stele-bft/vote/v1\n",
            long.as_str(),
        ] {
            assert!(
                matches!(value(bad, b"p"), Err(BftError::MalformedValue(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(
            value("stele-bft 1 2 3\n", b"").is_ok(),
            "no slash: not reserved"
        );
        assert!(ValueId::from_parts([0; 32], "a\n\nb\n".into()).is_err());
    }

    #[test]
    fn bytes_round_trip_and_damaged_bytes_are_refused() {
        let original = value("origin\n42\n", b"\0payload").expect("well formed");
        let bytes = original.to_bytes();
        assert_eq!(Value::from_bytes(&bytes), Ok(original));
        for cut in 0..14 {
            assert!(Value::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long_length = bytes.clone();
        long_length[0] = 0xff;
        assert!(Value::from_bytes(&long_length).is_err());
    }
}
