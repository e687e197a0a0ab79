//! The store's own costs: point reads and applies on a 100k-key state (what
//! execution pays per transaction), and setting the state aside for a
//! snapshot (what the apply path pays, under the store's lock, per snapshot)
//! against sorting it into the snapshot (what it pays off the lock), and the
//! first put after a freeze (which copies the shard it lands in). The
//! ceiling of a read is a plain hash map lookup of the same keys.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stele_kv::{Store, WriteSet};

const KEYS: u64 = 100_000;
const OPS: u64 = 1_000;

fn key(i: u64) -> String {
    i.to_string()
}

fn filled(keys: u64) -> Store {
    let mut store = Store::new();
    let mut write_set = WriteSet::new();
    for i in 0..keys {
        write_set.put(
            "smallbank.checking",
            &key(i),
            1_000i64.to_le_bytes().to_vec(),
        );
        if write_set.len() == 1_000 {
            store
                .apply(store.version() + 1, &write_set)
                .expect("versions are contiguous");
            write_set = WriteSet::new();
        }
    }
    store
        .apply(store.version() + 1, &write_set)
        .expect("versions are contiguous");
    store.commit(store.version()).expect("the head is retained");
    store
}

/// A spread of keys: a multiplicative step, so reads do not walk memory in order.
fn spread(n: u64) -> Vec<String> {
    (0..n).map(|i| key(i.wrapping_mul(7_919) % KEYS)).collect()
}

fn reads_and_applies(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_100k_keys");
    group.throughput(Throughput::Elements(OPS));
    let keys = spread(OPS);
    let mut store = filled(KEYS);
    group.bench_function("get", |bencher| {
        bencher.iter(|| {
            keys.iter()
                .filter(|key| store.get("smallbank.checking", key).is_some())
                .count()
        })
    });
    // The ceiling: a plain std HashMap of the same keys, one map, no versions.
    let plain: std::collections::HashMap<String, Vec<u8>, foldhash::fast::RandomState> = (0..KEYS)
        .map(|i| (key(i), 1_000i64.to_le_bytes().to_vec()))
        .collect();
    group.bench_function("ceiling_plain_hashmap_get", |bencher| {
        bencher.iter(|| keys.iter().filter(|key| plain.contains_key(*key)).count())
    });
    group.bench_function("apply_one_put_each", |bencher| {
        bencher.iter(|| {
            for key in &keys {
                let mut write_set = WriteSet::new();
                write_set.put("smallbank.checking", key, 7i64.to_le_bytes().to_vec());
                store
                    .apply(store.version() + 1, &write_set)
                    .expect("versions are contiguous");
            }
            store.commit(store.version()).expect("the head is retained");
        })
    });
    group.finish();
}

fn snapshots(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_250k_keys");
    group.sample_size(10);
    let mut store = filled(250_000);
    let version = store.version();
    group.bench_function("freeze_under_the_lock", |bencher| {
        bencher.iter(|| store.freeze(version).expect("the version is retained"))
    });
    group.bench_function("into_snapshot_off_the_lock", |bencher| {
        bencher.iter_batched(
            || store.freeze(version).expect("the version is retained"),
            stele_kv::Frozen::into_snapshot,
            BatchSize::LargeInput,
        )
    });
    // What one put pays while a snapshot holds the state: the first write to
    // a shard after a freeze copies that shard (timed: the put alone).
    group.bench_function("first_put_after_freeze", |bencher| {
        bencher.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for i in 0..iters {
                let head = store.version();
                let frozen = store.freeze(head).expect("the head is retained");
                let mut write_set = WriteSet::new();
                write_set.put(
                    "smallbank.checking",
                    &key(i.wrapping_mul(7_919) % 250_000),
                    7i64.to_le_bytes().to_vec(),
                );
                let started = Instant::now();
                store
                    .apply(head + 1, &write_set)
                    .expect("versions are contiguous");
                timed += started.elapsed();
                drop(frozen);
                store.commit(head + 1).expect("the head is retained");
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, reads_and_applies, snapshots);
criterion_main!(benches);
