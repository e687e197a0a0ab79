//! RFC 9162 hashing: the 32-byte [`Digest`], leaf and node hashes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::HistoryError;

/// Bytes in a SHA-256 digest.
pub const DIGEST_BYTES: usize = 32;

/// Domain-separation prefix of a leaf hash (RFC 9162 section 2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 section 2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 digest. Its text form (JSON, `Display`) is 64 lowercase hex
/// digits; parsing accepts exactly that form, so every digest has one spelling.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; DIGEST_BYTES]);

impl Digest {
    /// All zero: the claims digest of a transaction without claims.
    pub const ZERO: Digest = Digest([0; DIGEST_BYTES]);

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; DIGEST_BYTES] {
        &self.0
    }

    /// Parses 64 lowercase hex digits; `field` names the input in errors.
    pub fn from_hex(text: &str, field: &'static str) -> Result<Self, HistoryError> {
        let mut bytes = [0u8; DIGEST_BYTES];
        decode_lower_hex(text, &mut bytes, field)?;
        Ok(Digest(bytes))
    }

    /// The 64 lowercase hex digits of the digest.
    pub fn to_hex(&self) -> String {
        encode_lower_hex(&self.0)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::from_hex(&text, "digest").map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex of `bytes`.
pub fn encode_lower_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes exactly `out.len()` bytes of lowercase hex. Uppercase is refused so
/// that a digest has a single text form: a receipt changed in any character
/// must fail, not re-parse to the same bytes.
pub fn decode_lower_hex(
    text: &str,
    out: &mut [u8],
    field: &'static str,
) -> Result<(), HistoryError> {
    if text.len() != out.len() * 2 {
        return Err(HistoryError::MalformedHex {
            field,
            reason: "wrong length",
        });
    }
    if text.bytes().any(|digit| digit.is_ascii_uppercase()) {
        return Err(HistoryError::MalformedHex {
            field,
            reason: "uppercase hex digits (only lowercase is canonical)",
        });
    }
    hex::decode_to_slice(text, out).map_err(|_| HistoryError::MalformedHex {
        field,
        reason: "not hex",
    })
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    Digest(Sha256::digest(data).into())
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 2.1.1).
pub fn empty_root() -> Digest {
    sha256(&[])
}

/// RFC 9162 leaf hash: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(leaf);
    Digest(hasher.finalize().into())
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    // One contiguous buffer: a single `update` call keeps the hot path free of
    // the hasher's partial-block bookkeeping.
    let mut input = [0u8; 1 + 2 * DIGEST_BYTES];
    input[0] = NODE_PREFIX;
    input[1..=DIGEST_BYTES].copy_from_slice(&left.0);
    input[1 + DIGEST_BYTES..].copy_from_slice(&right.0);
    Digest(Sha256::digest(input).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let leaf = leaf_hash(b"");
        // RFC 9162 / Certificate Transparency test vector: hash of the empty leaf.
        assert_eq!(
            leaf.to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_ne!(node_hash(&leaf, &leaf), sha256(&[leaf.0, leaf.0].concat()));
    }

    #[test]
    fn hex_round_trips_and_refuses_other_spellings() {
        let digest = sha256(b"stele");
        assert_eq!(Digest::from_hex(&digest.to_hex(), "d"), Ok(digest));
        let upper = digest.to_hex().to_uppercase();
        assert!(Digest::from_hex(&upper, "d").is_err());
        assert!(Digest::from_hex(&digest.to_hex()[1..], "d").is_err());
        assert!(Digest::from_hex(&format!("{}0", digest.to_hex()), "d").is_err());
        assert!(Digest::from_hex(&"g".repeat(64), "d").is_err());
    }
}
