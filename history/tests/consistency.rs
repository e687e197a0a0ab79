//! Consistency proofs for every pair of sizes m <= n <= 64, and their
//! rejection when any input changes.

// Test code: a panic is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use stele_history::hash::sha256;
use stele_history::{verify_consistency, Digest, MerkleTree};

const SIZE_MAX: u64 = 64;

fn tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    let leaves: Vec<[u8; 8]> = (0..SIZE_MAX).map(u64::to_be_bytes).collect();
    tree.append_batch(&leaves);
    tree
}

fn flipped(digest: &Digest, bit: usize) -> Digest {
    let mut bytes = digest.0;
    bytes[bit % 32] ^= 1 << (bit % 8);
    Digest(bytes)
}

#[test]
fn every_pair_verifies() {
    let tree = tree();
    for n in 0..=SIZE_MAX {
        for m in 0..=n {
            let proof = tree.consistency_proof(m, n).unwrap();
            let (old, new) = (tree.root_at(m).unwrap(), tree.root_at(n).unwrap());
            assert_eq!(
                verify_consistency(m, n, &old, &new, &proof),
                Ok(()),
                "m={m} n={n}"
            );
        }
    }
}

#[test]
fn every_change_is_rejected() {
    let tree = tree();
    for n in 1..=SIZE_MAX {
        for m in 1..n {
            let proof = tree.consistency_proof(m, n).unwrap();
            let (old, new) = (tree.root_at(m).unwrap(), tree.root_at(n).unwrap());
            let context = format!("m={m} n={n}");
            for at in 0..proof.len() {
                let mut bad = proof.clone();
                bad[at] = flipped(&bad[at], at + m as usize);
                assert!(
                    verify_consistency(m, n, &old, &new, &bad).is_err(),
                    "{context} hash {at}"
                );
            }
            assert!(
                verify_consistency(m, n, &flipped(&old, 3), &new, &proof).is_err(),
                "{context}"
            );
            assert!(
                verify_consistency(m, n, &old, &flipped(&new, 5), &proof).is_err(),
                "{context}"
            );
            assert!(
                verify_consistency(m, n, &new, &old, &proof).is_err(),
                "{context}"
            );
            assert!(
                verify_consistency(m, n, &old, &new, &proof[1..]).is_err(),
                "{context}"
            );
            let mut longer = proof.clone();
            longer.push(new);
            assert!(
                verify_consistency(m, n, &old, &new, &longer).is_err(),
                "{context}"
            );
            // Another m or n, with the roots of those sizes, is a different claim.
            for other_m in (1..n).filter(|&other| other != m) {
                let other_old = tree.root_at(other_m).unwrap();
                assert!(
                    verify_consistency(other_m, n, &other_old, &new, &proof).is_err(),
                    "{context} as m={other_m}"
                );
            }
            for other_n in (m + 1..=SIZE_MAX).filter(|&other| other != n) {
                let other_new = tree.root_at(other_n).unwrap();
                assert!(
                    verify_consistency(m, other_n, &old, &other_new, &proof).is_err(),
                    "{context} as n={other_n}"
                );
            }
        }
    }
}

#[test]
fn degenerate_sizes_have_empty_proofs() {
    let tree = tree();
    let root = tree.root_at(10).unwrap();
    assert!(tree.consistency_proof(10, 10).unwrap().is_empty());
    assert!(tree.consistency_proof(0, 10).unwrap().is_empty());
    assert_eq!(verify_consistency(10, 10, &root, &root, &[]), Ok(()));
    assert!(verify_consistency(10, 10, &root, &tree.root_at(11).unwrap(), &[]).is_err());
    assert!(verify_consistency(10, 10, &root, &root, &[root]).is_err());
    assert_eq!(verify_consistency(0, 10, &sha256(&[]), &root, &[]), Ok(()));
    assert!(verify_consistency(0, 10, &root, &root, &[]).is_err());
    assert!(verify_consistency(11, 10, &root, &root, &[]).is_err());
    assert!(tree.consistency_proof(11, 10).is_err());
    assert!(tree.consistency_proof(1, SIZE_MAX + 1).is_err());
}

#[test]
fn the_empty_tree_is_consistent_only_with_the_empty_root() {
    let empty = sha256(&[]);
    let root = tree().root_at(10).unwrap();
    assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
    // Size 0 has one root: a proof "from 0 to 0" must not vouch for another.
    assert!(verify_consistency(0, 0, &empty, &root, &[]).is_err());
}
