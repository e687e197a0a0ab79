//! Verification of RFC 9162 inclusion and consistency proofs (sections
//! 2.1.3.2 and 2.1.4.2), as an auditor with nothing but hashes runs it.

use crate::hash::{empty_root, node_hash};
use crate::{Digest, HistoryError};

/// No valid proof in a tree of fewer than 2^64 leaves has more hashes than
/// this (an inclusion path has at most 64; a consistency proof at most 2 x 64).
/// Longer input is refused before any hashing.
pub const PROOF_HASHES_MAX: usize = 128;

/// Checks that `leaf_hash` is leaf `leaf_index` of the tree of `tree_size`
/// leaves whose root is `root`, given its inclusion path `proof`.
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
    root: &Digest,
) -> Result<(), HistoryError> {
    let computed = root_from_inclusion(leaf_index, tree_size, leaf_hash, proof)?;
    if computed != *root {
        return Err(HistoryError::InclusionProofInvalid(
            "the path leads to a different root",
        ));
    }
    Ok(())
}

/// The root that an inclusion path leads to (RFC 9162 2.1.3.2 steps 1-5).
pub fn root_from_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Digest,
    proof: &[Digest],
) -> Result<Digest, HistoryError> {
    if leaf_index >= tree_size {
        return Err(HistoryError::LeafIndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    if proof.len() > PROOF_HASHES_MAX {
        return Err(HistoryError::InclusionProofInvalid("too many hashes"));
    }
    let mut index = leaf_index;
    let mut last = tree_size - 1;
    let mut hash = *leaf_hash;
    for sibling in proof {
        if last == 0 {
            return Err(HistoryError::InclusionProofInvalid(
                "more hashes than the tree has levels",
            ));
        }
        if index & 1 == 1 || index == last {
            hash = node_hash(sibling, &hash);
            if index & 1 == 0 {
                // The node was promoted: skip the levels where it has no sibling.
                while index & 1 == 0 && index != 0 {
                    index >>= 1;
                    last >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        index >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(HistoryError::InclusionProofInvalid(
            "fewer hashes than the path needs",
        ));
    }
    Ok(hash)
}

/// Checks that the tree of `to` leaves with root `to_root` extends the tree of
/// `from` leaves with root `from_root`, given the consistency `proof`.
///
/// `from == to` needs an empty proof and equal roots; `from == 0` needs an
/// empty proof and `from_root` equal to the empty tree's root (and so does
/// `to_root` when `to == 0`).
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Digest,
    to_root: &Digest,
    proof: &[Digest],
) -> Result<(), HistoryError> {
    if from > to {
        return Err(HistoryError::ConsistencyRange { from, to });
    }
    if from == 0 || from == to {
        let expected_from = if from == 0 { empty_root() } else { *to_root };
        if !proof.is_empty() {
            return Err(HistoryError::ConsistencyProofInvalid(
                "the proof must be empty when from is 0 or equals to",
            ));
        }
        if *from_root != expected_from {
            return Err(HistoryError::ConsistencyProofInvalid(
                "the old root does not match",
            ));
        }
        // Any tree extends the empty one, but only the empty tree has size 0.
        if to == 0 && *to_root != empty_root() {
            return Err(HistoryError::ConsistencyProofInvalid(
                "the new root is not the empty tree's root",
            ));
        }
        return Ok(());
    }
    let (old, new) = roots_from_consistency(from, to, from_root, proof)?;
    if old != *from_root {
        return Err(HistoryError::ConsistencyProofInvalid(
            "the proof does not rebuild the old root",
        ));
    }
    if new != *to_root {
        return Err(HistoryError::ConsistencyProofInvalid(
            "the proof does not rebuild the new root",
        ));
    }
    Ok(())
}

/// RFC 9162 2.1.4.2 steps 1-7 for `0 < from < to`: the (old, new) roots the
/// proof rebuilds.
fn roots_from_consistency(
    from: u64,
    to: u64,
    from_root: &Digest,
    proof: &[Digest],
) -> Result<(Digest, Digest), HistoryError> {
    if proof.is_empty() {
        return Err(HistoryError::ConsistencyProofInvalid("the proof is empty"));
    }
    if proof.len() > PROOF_HASHES_MAX {
        return Err(HistoryError::ConsistencyProofInvalid("too many hashes"));
    }
    // Step 2: when the old tree is a perfect subtree, its root is the
    // proof's implicit first element.
    let (first, rest) = if from.is_power_of_two() {
        (*from_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let mut index = from - 1;
    let mut last = to - 1;
    while index & 1 == 1 {
        index >>= 1;
        last >>= 1;
    }
    let mut old = first;
    let mut new = first;
    for sibling in rest {
        if last == 0 {
            return Err(HistoryError::ConsistencyProofInvalid(
                "more hashes than the tree has levels",
            ));
        }
        if index & 1 == 1 || index == last {
            old = node_hash(sibling, &old);
            new = node_hash(sibling, &new);
            if index & 1 == 0 {
                while index & 1 == 0 && index != 0 {
                    index >>= 1;
                    last >>= 1;
                }
            }
        } else {
            new = node_hash(&new, sibling);
        }
        index >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(HistoryError::ConsistencyProofInvalid(
            "fewer hashes than the proof needs",
        ));
    }
    Ok((old, new))
}
