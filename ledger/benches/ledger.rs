//! The ledger's figures, each beside the ceiling it competes with, in one run:
//!
//! - `append_sync`: a batch of 1,000 transactions appended and fdatasync'd, against
//!   writing the same number of bytes to a plain file and fdatasync'ing it.
//! - `verify_100k`: `verify_ledger` over 100,000 transactions, against the hashing
//!   it cannot avoid (write-set digests, leaf hashes, Merkle root) of the same
//!   transactions already in memory.
//! - `open_100k`: reopening (recovery scan + index rebuild) of the same ledger.
//!
//! Run: `scripts/bench-ledger.sh` (3 runs, medians, same-run ratios).

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stele_history::MerkleTree;
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::{verify_ledger, BatchEntry, Entry, Ledger, LedgerConfig};

const BATCH_TXS: usize = 1_000;
const VERIFY_BATCHES: usize = 100;
/// Transactions per batch as a node under load writes them (27 on average at
/// 64 clients on 2 cores): one signature per 32 transactions instead of 1,000.
const SMALL_BATCH_TXS: usize = 32;

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group.throughput(Throughput::Elements(BATCH_TXS as u64));
    group.sample_size(30);

    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut writer = FixtureWriter::new(1);
    let mut ledger =
        Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).expect("new ledger");
    let (sample, _) = writer.batch(BATCH_TXS);
    let batch_bytes = Entry::Batch(sample).encode().len();
    writer.rollback(0);
    group.bench_function("stele", |bencher| {
        bencher.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (batch, signature) = writer.batch(BATCH_TXS);
                let start = Instant::now();
                ledger.append(&batch, &signature).expect("append");
                ledger.sync().expect("sync");
                total += start.elapsed();
            }
            total
        })
    });

    let raw_path = dir.path().join("raw");
    let mut raw = std::fs::File::create(&raw_path).expect("raw file");
    let payload = vec![0x5a; batch_bytes];
    group.bench_function("raw_write_fdatasync_ceiling", |bencher| {
        bencher.iter(|| {
            raw.write_all(&payload).expect("write");
            raw.sync_data().expect("fdatasync");
        })
    });
    group.finish();
}

/// A ledger of 100,000 transactions in batches of `batch_txs`, and the
/// batches themselves.
fn verify_fixture(batch_txs: usize) -> (tempfile::TempDir, FixtureWriter, Vec<BatchEntry>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut writer = FixtureWriter::new(2);
    let mut ledger =
        Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).expect("new ledger");
    let count = (VERIFY_BATCHES * BATCH_TXS).div_ceil(batch_txs);
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        let (batch, signature) = writer.batch(batch_txs);
        ledger.append(&batch, &signature).expect("append");
        batches.push(batch);
    }
    ledger.sync().expect("sync");
    (dir, writer, batches)
}

fn verify(c: &mut Criterion) {
    verify_group(c, "verify_100k", BATCH_TXS);
    verify_group(c, "verify_100k_small_batches", SMALL_BATCH_TXS);

    let (dir, _, _) = verify_fixture(BATCH_TXS);
    let mut group = c.benchmark_group("open_100k");
    group.throughput(Throughput::Elements((VERIFY_BATCHES * BATCH_TXS) as u64));
    group.sample_size(10);
    group.bench_function("stele", |bencher| {
        bencher.iter(|| Ledger::open(dir.path(), LedgerConfig::default()).expect("opens"))
    });
    group.finish();
}

/// `stele verify`'s library call against hashing the same leaves into a tree
/// (its floor without decoding or signatures).
fn verify_group(c: &mut Criterion, name: &str, batch_txs: usize) {
    let (dir, writer, batches) = verify_fixture(batch_txs);
    let key = writer.public_key();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements((VERIFY_BATCHES * BATCH_TXS) as u64));
    group.sample_size(10);
    group.bench_function("stele", |bencher| {
        bencher.iter(|| verify_ledger(dir.path(), Some(&key), &mut |_| {}).expect("verifies"))
    });
    group.bench_function("hashing_ceiling", |bencher| {
        bencher.iter(|| {
            let mut tree = MerkleTree::new();
            for batch in &batches {
                let hashes = batch.leaf_hashes();
                tree.append_leaf_hashes(&hashes);
                std::hint::black_box(tree.root());
            }
            tree.size()
        })
    });
    group.finish();
}

criterion_group!(benches, append_sync, verify);
criterion_main!(benches);
