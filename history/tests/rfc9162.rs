//! Our tree against two independent references: a direct recursive RFC 9162
//! MTH/PATH written from the RFC text, and rs_merkle 1.5 with RFC hashing.

// Test code: a panic is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rs_merkle::{Hasher, MerkleTree as RsMerkleTree};
use stele_history::hash::{leaf_hash, node_hash, sha256};
use stele_history::{verify_inclusion, Digest, MerkleTree};

/// rs_merkle builds the RFC 9162 shape (an odd node is promoted, not
/// duplicated); with the 0x01 prefix on interior nodes its roots are RFC roots.
#[derive(Clone)]
struct Rfc9162Hasher;

impl Hasher for Rfc9162Hasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        sha256(data).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node_hash(&Digest(*left), &Digest(*right)).0,
            None => *left,
        }
    }
}

/// MTH(D[n]) exactly as RFC 9162 2.1.1 writes it.
fn reference_root(leaves: &[Vec<u8>]) -> Digest {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = largest_power_of_two_below(n);
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]) exactly as RFC 9162 2.1.3.1 writes it.
fn reference_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Digest> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        let mut path = reference_path(m, &leaves[..k]);
        path.push(reference_root(&leaves[k..]));
        path
    } else {
        let mut path = reference_path(m - k, &leaves[k..]);
        path.push(reference_root(&leaves[..k]));
        path
    }
}

fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn leaves_strategy(size_max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..size_max)
}

/// Splits `leaves` into batches at the given cut points.
fn batches<'a>(leaves: &'a [Vec<u8>], cuts: &[usize]) -> Vec<&'a [Vec<u8>]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (leaves.len() + 1)).collect();
    points.push(0);
    points.push(leaves.len());
    points.sort_unstable();
    points.windows(2).map(|w| &leaves[w[0]..w[1]]).collect()
}

#[test]
fn certificate_transparency_test_vectors() {
    // The eight leaves and roots of the RFC 6962 test vectors used by
    // certificate-transparency-go and Trillian.
    let leaves: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        (0x50..=0x57).collect(),
        (0x60..=0x6f).collect(),
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut tree = MerkleTree::new();
    for (leaf, root) in leaves.iter().zip(roots) {
        tree.append(leaf);
        assert_eq!(tree.root().to_hex(), root, "size {}", tree.size());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roots_and_paths_equal_both_references(
        leaves in leaves_strategy(2_000),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut tree = MerkleTree::new();
        for batch in batches(&leaves, &cuts) {
            tree.append_batch(batch);
        }
        prop_assert_eq!(tree.size(), leaves.len() as u64);
        let root = reference_root(&leaves);
        prop_assert_eq!(tree.root(), root);

        let leaf_hashes: Vec<[u8; 32]> = leaves.iter().map(|l| leaf_hash(l).0).collect();
        let rs_tree = RsMerkleTree::<Rfc9162Hasher>::from_leaves(&leaf_hashes);
        if !leaves.is_empty() {
            prop_assert_eq!(rs_tree.root(), Some(root.0));
        }
        for index in 0..leaves.len() {
            let path = tree.inclusion_proof(index as u64, leaves.len() as u64).unwrap();
            // The recursive reference is O(n) per path: sample it here; the
            // test below checks every path of every size up to 300 with it.
            if index % 41 == 0 || index + 1 == leaves.len() {
                prop_assert_eq!(&path, &reference_path(index, &leaves));
            }
            let rs_path: Vec<Digest> =
                rs_tree.proof(&[index]).proof_hashes().iter().copied().map(Digest).collect();
            prop_assert_eq!(&path, &rs_path);
            prop_assert!(verify_inclusion(
                index as u64, leaves.len() as u64, &leaf_hash(&leaves[index]), &path, &root
            ).is_ok());
        }
    }

    #[test]
    fn past_sizes_keep_their_roots_and_paths(leaves in leaves_strategy(300)) {
        let mut tree = MerkleTree::new();
        tree.append_batch(&leaves);
        for size in 0..=leaves.len() {
            prop_assert_eq!(tree.root_at(size as u64).unwrap(), reference_root(&leaves[..size]));
            for index in 0..size {
                prop_assert_eq!(
                    tree.inclusion_proof(index as u64, size as u64).unwrap(),
                    reference_path(index, &leaves[..size])
                );
            }
        }
    }

    #[test]
    fn a_changed_path_or_leaf_does_not_verify(
        leaves in leaves_strategy(200).prop_filter("two leaves at least", |l| l.len() >= 2),
        pick in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        // Distinct leaves: with two equal leaves, swapping their positions
        // is a correct proof, not a forgery.
        let leaves: Vec<Vec<u8>> = leaves
            .into_iter()
            .enumerate()
            .map(|(i, mut leaf)| { leaf.extend_from_slice(&i.to_le_bytes()); leaf })
            .collect();
        let mut tree = MerkleTree::new();
        tree.append_batch(&leaves);
        let size = leaves.len() as u64;
        let index = pick.index(leaves.len()) as u64;
        let leaf = leaf_hash(&leaves[index as usize]);
        let path = tree.inclusion_proof(index, size).unwrap();
        let root = tree.root();

        let mut bad_path = path.clone();
        let at = flip.index(bad_path.len());
        bad_path[at].0[at % 32] ^= 1;
        prop_assert!(verify_inclusion(index, size, &leaf, &bad_path, &root).is_err());
        prop_assert!(verify_inclusion(index, size, &leaf, &path[..path.len() - 1], &root).is_err());
        let mut longer = path.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err());
        let other = (index + 1) % size;
        prop_assert!(verify_inclusion(other, size, &leaf, &path, &root).is_err());
        prop_assert!(verify_inclusion(index, size, &leaf_hash(b"forged"), &path, &root).is_err());
        // No check with a changed tree size: for some positions RFC 9162's
        // walk is the same for sizes n and n + 1 (leaf 0 of 3 and of 4), so
        // the size is bound by the signed checkpoint (see receipts), not here.
    }
}

#[test]
fn one_million_leaves_in_batches_match_one_big_batch() {
    let leaves: Vec<[u8; 8]> = (0u64..1_000_000).map(u64::to_le_bytes).collect();
    let mut whole = MerkleTree::new();
    whole.append_batch(&leaves);
    let mut batched = MerkleTree::new();
    for batch in leaves.chunks(1_000) {
        batched.append_batch(batch);
    }
    assert_eq!(whole.root(), batched.root());
    // Spot-check against rs_merkle at a size whose shape is ragged.
    let size = 999_999usize;
    let leaf_hashes: Vec<[u8; 32]> = leaves[..size].iter().map(|l| leaf_hash(l).0).collect();
    let rs_tree = RsMerkleTree::<Rfc9162Hasher>::from_leaves(&leaf_hashes);
    assert_eq!(Some(whole.root_at(size as u64).unwrap().0), rs_tree.root());
    for index in [0usize, 1, 4_095, 524_288, 999_998] {
        let rs_path: Vec<Digest> = rs_tree
            .proof(&[index])
            .proof_hashes()
            .iter()
            .copied()
            .map(Digest)
            .collect();
        assert_eq!(
            whole.inclusion_proof(index as u64, size as u64).unwrap(),
            rs_path
        );
    }
}
