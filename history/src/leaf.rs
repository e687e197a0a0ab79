//! What a transaction puts in the tree: its id, commit evidence and leaf.
//!
//! Leaf format 1 (96 bytes) = write_set_digest (32) || SHA-256(commit_evidence)
//! (32) || claims_digest (32), the same components as CCF's receipts. Format 2
//! (128 bytes) appends command_digest (32), SHA-256 of the command as the
//! ledger stores it, so the signed root also covers what was asked, not only
//! what it wrote. The lengths differ, so no leaf reads as both formats. The
//! commit evidence is the text `ce:<view>.<seqno>:<64 lowercase hex>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::parse_canonical_u64;
use crate::hash::{decode_lower_hex, encode_lower_hex, leaf_hash, sha256};
use crate::{Digest, HistoryError};

/// Bytes in a format-1 leaf (no command digest).
pub const LEAF_BYTES: usize = 96;

/// Bytes in a format-2 leaf (with the command digest).
pub const LEAF_V2_BYTES: usize = LEAF_BYTES + 32;

/// The leaf bytes from the component digests (the commit evidence already
/// hashed): format 1 without `command_digest`, format 2 with it. The one
/// definition of the layout, for receipts, the ledger and the node.
pub fn leaf_bytes_of(
    write_set_digest: &Digest,
    commit_evidence_digest: &Digest,
    claims_digest: &Digest,
    command_digest: Option<&Digest>,
) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(LEAF_V2_BYTES);
    leaf.extend_from_slice(write_set_digest.as_bytes());
    leaf.extend_from_slice(commit_evidence_digest.as_bytes());
    leaf.extend_from_slice(claims_digest.as_bytes());
    if let Some(command_digest) = command_digest {
        leaf.extend_from_slice(command_digest.as_bytes());
    }
    debug_assert!(leaf.len() == LEAF_BYTES || leaf.len() == LEAF_V2_BYTES);
    leaf
}

/// A transaction's id: the view (Raft term) in which it was ordered and its
/// sequence number. Written `<view>.<seqno>` in canonical decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId {
    /// The view (Raft term) of the batch that ordered the transaction.
    pub view: u64,
    /// The transaction's position in the ledger; seqnos start at 1.
    pub seqno: u64,
}

impl std::fmt::Display for TransactionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.view, self.seqno)
    }
}

impl std::str::FromStr for TransactionId {
    type Err = HistoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || HistoryError::MalformedTransactionId(text.chars().take(64).collect());
        let (view, seqno) = text.split_once('.').ok_or_else(malformed)?;
        Ok(TransactionId {
            view: parse_canonical_u64(view).ok_or_else(malformed)?,
            seqno: parse_canonical_u64(seqno).ok_or_else(malformed)?,
        })
    }
}

/// Serializes as the text `<view>.<seqno>` and parses it strictly.
macro_rules! serde_as_text {
    ($type:ty) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(TransactionId);
serde_as_text!(CommitEvidence);

/// Evidence that a transaction committed, revealed only with its receipt:
/// `ce:<view>.<seqno>:<64 lowercase hex>`. The 32 secret bytes are chosen by
/// the ledger (see `docs/receipts.md`); this crate only checks the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitEvidence {
    /// The transaction it is evidence for.
    pub transaction_id: TransactionId,
    /// The secret bytes.
    pub secret: [u8; 32],
}

impl CommitEvidence {
    /// SHA-256 of its text: the leaf's commit-evidence component.
    pub fn digest(&self) -> Digest {
        sha256(self.to_string().as_bytes())
    }
}

impl std::fmt::Display for CommitEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ce:{}:{}",
            self.transaction_id,
            encode_lower_hex(&self.secret)
        )
    }
}

impl std::str::FromStr for CommitEvidence {
    type Err = HistoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix("ce:")
            .ok_or(HistoryError::MalformedCommitEvidence(
                "it must start with ce:",
            ))?;
        let (id, secret_hex) =
            rest.split_once(':')
                .ok_or(HistoryError::MalformedCommitEvidence(
                    "expected ce:<view>.<seqno>:<hex>",
                ))?;
        let transaction_id = id
            .parse()
            .map_err(|_| HistoryError::MalformedCommitEvidence("malformed transaction id"))?;
        let mut secret = [0u8; 32];
        decode_lower_hex(secret_hex, &mut secret, "commit evidence").map_err(|_| {
            HistoryError::MalformedCommitEvidence("the secret is not 64 lowercase hex digits")
        })?;
        Ok(CommitEvidence {
            transaction_id,
            secret,
        })
    }
}

/// The claims digest of a transaction: SHA-256 of its claims text, or all
/// zero when it has none.
pub fn claims_digest(claims: Option<&str>) -> Digest {
    claims.map_or(Digest::ZERO, |claims| sha256(claims.as_bytes()))
}

/// The components of a transaction's leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafComponents {
    /// SHA-256 of the canonical encoding of the write set (see `stele-kv`).
    pub write_set_digest: Digest,
    /// The transaction's commit evidence.
    pub commit_evidence: CommitEvidence,
    /// The claims digest ([`claims_digest`]).
    pub claims_digest: Digest,
    /// SHA-256 of the command as the ledger stores it: leaf format 2; `None`
    /// for format 1 (ledgers written before commands were bound).
    pub command_digest: Option<Digest>,
}

impl LeafComponents {
    /// The leaf bytes: 96 (format 1) or 128 (format 2).
    pub fn leaf_bytes(&self) -> Vec<u8> {
        let evidence_digest = self.commit_evidence.digest();
        leaf_bytes_of(
            &self.write_set_digest,
            &evidence_digest,
            &self.claims_digest,
            self.command_digest.as_ref(),
        )
    }

    /// The RFC 9162 leaf hash of the leaf bytes.
    pub fn leaf_hash(&self) -> Digest {
        leaf_hash(&self.leaf_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_have_one_spelling() {
        let id: TransactionId = "2.15".parse().unwrap();
        assert_eq!(id, TransactionId { view: 2, seqno: 15 });
        assert_eq!(id.to_string(), "2.15");
        for bad in [
            "", "2", "2.", ".15", "02.15", "2.015", "2.15.1", "-2.15", "2.+15", "a.b", " 2.15",
        ] {
            assert!(bad.parse::<TransactionId>().is_err(), "{bad:?} parsed");
        }
        assert!("18446744073709551616.1".parse::<TransactionId>().is_err());
    }

    #[test]
    fn commit_evidence_round_trips_strictly() {
        let text = format!("ce:3.42:{}", "ab".repeat(32));
        let evidence: CommitEvidence = text.parse().unwrap();
        assert_eq!(
            evidence.transaction_id,
            TransactionId { view: 3, seqno: 42 }
        );
        assert_eq!(evidence.to_string(), text);
        for bad in [
            format!("ce:3.42:{}", "AB".repeat(32)),
            format!("ce:3.42:{}", "ab".repeat(31)),
            format!("cx:3.42:{}", "ab".repeat(32)),
            format!("ce:3:{}", "ab".repeat(32)),
            "ce:3.42".to_owned(),
        ] {
            assert!(bad.parse::<CommitEvidence>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn leaf_bytes_are_the_three_components() {
        let components = LeafComponents {
            write_set_digest: sha256(b"ws"),
            commit_evidence: format!("ce:1.1:{}", "00".repeat(32)).parse().unwrap(),
            claims_digest: claims_digest(None),
            command_digest: None,
        };
        let leaf = components.leaf_bytes();
        assert_eq!(leaf.len(), LEAF_BYTES);
        assert_eq!(&leaf[..32], sha256(b"ws").as_bytes());
        let evidence = format!("ce:1.1:{}", "00".repeat(32));
        assert_eq!(&leaf[32..64], sha256(evidence.as_bytes()).as_bytes());
        assert_eq!(&leaf[64..], &[0u8; 32]);
        assert_eq!(claims_digest(Some("c")), sha256(b"c"));
    }

    #[test]
    fn a_format_2_leaf_appends_the_command_digest() {
        let v1 = LeafComponents {
            write_set_digest: sha256(b"ws"),
            commit_evidence: format!("ce:1.1:{}", "00".repeat(32)).parse().unwrap(),
            claims_digest: claims_digest(None),
            command_digest: None,
        };
        let v2 = LeafComponents {
            command_digest: Some(sha256(b"command")),
            ..v1
        };
        let leaf = v2.leaf_bytes();
        assert_eq!(leaf.len(), LEAF_V2_BYTES);
        assert_eq!(&leaf[..LEAF_BYTES], v1.leaf_bytes().as_slice());
        assert_eq!(&leaf[LEAF_BYTES..], sha256(b"command").as_bytes());
        let other = LeafComponents {
            command_digest: Some(sha256(b"another command")),
            ..v1
        };
        assert_ne!(v2.leaf_hash(), other.leaf_hash());
        assert_ne!(v2.leaf_hash(), v1.leaf_hash());
    }
}
