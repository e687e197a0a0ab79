//! What a transaction puts in the tree: its id, commit evidence and leaf.
//!
//! Leaf bytes (96) = write_set_digest (32) || SHA-256(commit_evidence) (32)
//! || claims_digest (32), the same components as CCF's receipts. The commit
//! evidence is the text `ce:<view>.<seqno>:<64 lowercase hex>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::parse_canonical_u64;
use crate::hash::{decode_lower_hex, encode_lower_hex, leaf_hash, sha256};
use crate::{Digest, HistoryError};

/// Bytes in a leaf.
pub const LEAF_BYTES: usize = 96;

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
}

impl LeafComponents {
    /// The 96 leaf bytes.
    pub fn leaf_bytes(&self) -> [u8; LEAF_BYTES] {
        let mut leaf = [0u8; LEAF_BYTES];
        leaf[..32].copy_from_slice(self.write_set_digest.as_bytes());
        let evidence_digest = sha256(self.commit_evidence.to_string().as_bytes());
        leaf[32..64].copy_from_slice(evidence_digest.as_bytes());
        leaf[64..].copy_from_slice(self.claims_digest.as_bytes());
        leaf
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
        };
        let leaf = components.leaf_bytes();
        assert_eq!(&leaf[..32], sha256(b"ws").as_bytes());
        let evidence = format!("ce:1.1:{}", "00".repeat(32));
        assert_eq!(&leaf[32..64], sha256(evidence.as_bytes()).as_bytes());
        assert_eq!(&leaf[64..], &[0u8; 32]);
        assert_eq!(claims_digest(Some("c")), sha256(b"c"));
    }
}
