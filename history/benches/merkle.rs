//! Merkle tree benchmarks, each beside the ceiling it competes with.
//!
//! - `append_root_every_1000`: appends of 96-byte transaction leaves in
//!   batches of 1,000 with the root after each batch, on 1 and 2 threads,
//!   against raw SHA-256 of the same inputs (one 97-byte leaf input and one
//!   65-byte node input per leaf) on 1 and 2 threads.
//! - `full_root_1m`: the root of 1 M leaves in one batch, 1 vs 2 threads.
//! - `proofs_1m`: inclusion and consistency proofs in a tree of ~1 M leaves.
//!
//! `scripts/bench-history.sh` runs this 3 times and prints medians and ratios.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use stele_history::{verify_consistency, verify_inclusion, MerkleTree};

const APPEND_LEAVES: usize = 100_000;
const APPEND_BATCH_LEAVES: usize = 1_000;
const FULL_TREE_LEAVES: usize = 1 << 20;
/// A ragged size, so proofs exercise the recomputed right edge.
const PROOF_TREE_LEAVES: u64 = 1_000_003;
const THREADS: [usize; 2] = [1, 2];

fn leaves(count: usize) -> Vec<[u8; 96]> {
    (0..count as u64)
        .map(|i| {
            let mut leaf = [0u8; 96];
            leaf[..8].copy_from_slice(&i.to_le_bytes());
            leaf[40..48].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            leaf
        })
        .collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("building a rayon pool of 1 or 2 threads")
}

/// The raw hashing an append of `leaf` costs at least: its leaf input
/// (0x00 || 96 bytes) and one node input (0x01 || 64 bytes).
fn raw_hashes(leaf: &[u8; 96]) -> [u8; 32] {
    let mut leaf_input = [0u8; 97];
    leaf_input[1..].copy_from_slice(leaf);
    let leaf_hash: [u8; 32] = Sha256::digest(leaf_input).into();
    let mut node_input = [1u8; 65];
    node_input[1..33].copy_from_slice(&leaf_hash);
    node_input[33..].copy_from_slice(&leaf_hash);
    Sha256::digest(node_input).into()
}

fn append_root_every_1000(c: &mut Criterion) {
    let leaves = leaves(APPEND_LEAVES);
    let mut group = c.benchmark_group("append_root_every_1000");
    group.throughput(Throughput::Elements(APPEND_LEAVES as u64));
    group.sample_size(20);
    for threads in THREADS {
        let pool = pool(threads);
        group.bench_function(
            BenchmarkId::new("stele", format!("{threads}_threads")),
            |b| {
                b.iter(|| {
                    pool.install(|| {
                        let mut tree = MerkleTree::new();
                        for batch in leaves.chunks(APPEND_BATCH_LEAVES) {
                            tree.append_batch(batch);
                            std::hint::black_box(tree.root());
                        }
                        tree.size()
                    })
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("sha256_ceiling", format!("{threads}_threads")),
            |b| {
                b.iter(|| {
                    pool.install(|| {
                        leaves
                            .par_chunks(APPEND_BATCH_LEAVES)
                            .map(|chunk| chunk.iter().map(raw_hashes).fold(0u8, |a, h| a ^ h[0]))
                            .reduce(|| 0, |a, b| a ^ b)
                    })
                })
            },
        );
    }
    group.finish();
}

fn full_root_1m(c: &mut Criterion) {
    let leaves = leaves(FULL_TREE_LEAVES);
    let mut group = c.benchmark_group("full_root_1m");
    group.throughput(Throughput::Elements(FULL_TREE_LEAVES as u64));
    group.sample_size(10);
    for threads in THREADS {
        let pool = pool(threads);
        group.bench_function(
            BenchmarkId::new("stele", format!("{threads}_threads")),
            |b| {
                b.iter(|| {
                    pool.install(|| {
                        let mut tree = MerkleTree::new();
                        tree.append_batch(&leaves);
                        tree.root()
                    })
                })
            },
        );
    }
    group.finish();
}

fn proofs_1m(c: &mut Criterion) {
    let mut tree = MerkleTree::new();
    tree.append_batch(&leaves(PROOF_TREE_LEAVES as usize));
    let size = PROOF_TREE_LEAVES;
    let root = tree.root();
    let mut group = c.benchmark_group("proofs_1m");
    let mut index = 0u64;
    let mut next_index = move || {
        index = (index + 0x9e37_79b9) % size;
        index
    };
    group.bench_function("inclusion_proof", |b| {
        b.iter_batched(
            &mut next_index,
            |i| tree.inclusion_proof(i, size),
            BatchSize::SmallInput,
        )
    });
    let proofs: Vec<(u64, _, _)> = (0..1024)
        .map(|_| {
            let i = next_index();
            (
                i,
                tree.leaf_hash(i).expect("i < size"),
                tree.inclusion_proof(i, size).expect("i < size"),
            )
        })
        .collect();
    let mut at = 0;
    group.bench_function("inclusion_verify", |b| {
        b.iter(|| {
            at = (at + 1) % proofs.len();
            let (i, leaf, proof) = &proofs[at];
            verify_inclusion(*i, size, leaf, proof, &root)
        })
    });
    group.bench_function("consistency_proof", |b| {
        b.iter_batched(
            || next_index() + 1,
            |m| tree.consistency_proof(m, size),
            BatchSize::SmallInput,
        )
    });
    let old = 654_321;
    let old_root = tree.root_at(old).expect("old < size");
    let proof = tree.consistency_proof(old, size).expect("old < size");
    group.bench_function("consistency_verify", |b| {
        b.iter(|| verify_consistency(old, size, &old_root, &root, &proof))
    });
    group.finish();
}

criterion_group!(benches, append_root_every_1000, full_root_1m, proofs_1m);
criterion_main!(benches);
