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
use stele_ledger::{verify_ledger, BatchEntry, Entry, Ledger, LedgerConfig, TxRecord};

const BATCH_TXS: usize = 1_000;
const VERIFY_BATCHES: usize = 100;

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

/// A ledger of 100 batches of 1,000 transactions, and the batches themselves.
fn verify_fixture() -> (tempfile::TempDir, FixtureWriter, Vec<BatchEntry>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut writer = FixtureWriter::new(2);
    let mut ledger =
        Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).expect("new ledger");
    let mut batches = Vec::with_capacity(VERIFY_BATCHES);
    for _ in 0..VERIFY_BATCHES {
        let (batch, signature) = writer.batch(BATCH_TXS);
        ledger.append(&batch, &signature).expect("append");
        batches.push(batch);
    }
    ledger.sync().expect("sync");
    (dir, writer, batches)
}

fn verify(c: &mut Criterion) {
    let (dir, writer, batches) = verify_fixture();
    let key = writer.public_key();
    let mut group = c.benchmark_group("verify_100k");
    group.throughput(Throughput::Elements((VERIFY_BATCHES * BATCH_TXS) as u64));
    group.sample_size(10);
    group.bench_function("stele", |bencher| {
        bencher.iter(|| verify_ledger(dir.path(), Some(&key), &mut |_| {}).expect("verifies"))
    });
    group.bench_function("hashing_ceiling", |bencher| {
        bencher.iter(|| {
            let mut tree = MerkleTree::new();
            for batch in &batches {
                let hashes: Vec<_> = batch.txs.iter().map(TxRecord::leaf_hash).collect();
                tree.append_leaf_hashes(&hashes);
                std::hint::black_box(tree.root());
            }
            tree.size()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("open_100k");
    group.throughput(Throughput::Elements((VERIFY_BATCHES * BATCH_TXS) as u64));
    group.sample_size(10);
    group.bench_function("stele", |bencher| {
        bencher.iter(|| Ledger::open(dir.path(), LedgerConfig::default()).expect("opens"))
    });
    group.finish();
}

criterion_group!(benches, append_sync, verify);
criterion_main!(benches);
