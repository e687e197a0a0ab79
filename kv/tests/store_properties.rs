//! Property tests of the versioned store: rollback restores exactly, and snapshots
//! round-trip through bytes.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use stele_kv::{KvError, Snapshot, Store, WriteSet};

/// A small key space so that versions overwrite and delete each other's keys.
fn write_set_strategy() -> impl Strategy<Value = WriteSet> {
    let entry = (
        0..3u8,
        0..6u8,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..4)),
    );
    prop::collection::vec(entry, 0..5).prop_map(|entries| {
        let mut write_set = WriteSet::new();
        for (map, key, value) in entries {
            let (map, key) = (format!("map{map}"), format!("key{key}"));
            match value {
                Some(value) => write_set.put(&map, &key, value),
                None => write_set.delete(&map, &key),
            }
        }
        write_set
    })
}

fn apply_all(store: &mut Store, write_sets: &[WriteSet]) {
    for write_set in write_sets {
        store.apply(store.version() + 1, write_set).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Apply some versions, commit a prefix, roll back to any retained version, apply
    /// other versions: the result equals a store that never saw the discarded ones.
    #[test]
    fn rollback_then_reapply_equals_never_having_seen_the_suffix(
        first in prop::collection::vec(write_set_strategy(), 1..24),
        replacement in prop::collection::vec(write_set_strategy(), 0..12),
        commit_fraction in 0.0f64..1.0,
        rollback_fraction in 0.0f64..1.0,
    ) {
        let head = first.len() as u64;
        let committed = (commit_fraction * head as f64) as u64;
        let target = committed + (rollback_fraction * (head - committed + 1) as f64) as u64;
        let target = target.min(head);

        let mut store = Store::new();
        apply_all(&mut store, &first);
        store.commit(committed).unwrap();
        let expected_at_target = store.snapshot(target).unwrap();
        store.rollback(target).unwrap();
        prop_assert_eq!(store.version(), target);
        prop_assert_eq!(store.snapshot(target).unwrap(), expected_at_target);
        apply_all(&mut store, &replacement);

        let mut reference = Store::new();
        apply_all(&mut reference, &first[..target as usize]);
        apply_all(&mut reference, &replacement);

        prop_assert_eq!(store.version(), reference.version());
        let ours = store.snapshot(store.version()).unwrap();
        let theirs = reference.snapshot(reference.version()).unwrap();
        prop_assert_eq!(ours.to_bytes(), theirs.to_bytes());

        // Below the committed version: a typed error, and nothing changes.
        if committed > 0 {
            let before = store.snapshot(store.version()).unwrap();
            let refused = store.rollback(committed - 1);
            let is_out_of_range = matches!(refused, Err(KvError::VersionOutOfRange { .. }));
            prop_assert!(is_out_of_range);
            prop_assert_eq!(store.snapshot(store.version()).unwrap(), before);
        }
    }

    /// snapshot -> bytes -> restore gives the same state and digest, and a restored
    /// store carries on exactly like the original.
    #[test]
    fn snapshot_round_trips(
        write_sets in prop::collection::vec(write_set_strategy(), 0..16),
        later in write_set_strategy(),
    ) {
        let mut store = Store::new();
        apply_all(&mut store, &write_sets);
        let snapshot = store.snapshot(store.version()).unwrap();
        let bytes = snapshot.to_bytes();
        let decoded = Snapshot::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &snapshot);
        prop_assert_eq!(decoded.digest(), snapshot.digest());
        prop_assert_eq!(&bytes[bytes.len() - 32..], &snapshot.digest()[..]);
        prop_assert_eq!(snapshot.encoded_len(), bytes.len() as u64);

        let mut restored = Store::from_snapshot(decoded);
        prop_assert_eq!(restored.version(), store.version());
        prop_assert_eq!(restored.committed_version(), store.version());
        store.apply(store.version() + 1, &later).unwrap();
        restored.apply(restored.version() + 1, &later).unwrap();
        prop_assert_eq!(
            restored.snapshot(restored.version()).unwrap().to_bytes(),
            store.snapshot(store.version()).unwrap().to_bytes()
        );
    }

    /// Any single flipped bit anywhere in the snapshot bytes is detected.
    #[test]
    fn a_flipped_bit_is_detected(
        write_sets in prop::collection::vec(write_set_strategy(), 0..8),
        position in any::<prop::sample::Index>(),
        bit in 0..8u32,
    ) {
        let mut store = Store::new();
        apply_all(&mut store, &write_sets);
        let mut bytes = store.snapshot(store.version()).unwrap().to_bytes();
        let index = position.index(bytes.len());
        bytes[index] ^= 1 << bit;
        prop_assert!(Snapshot::from_bytes(&bytes).is_err());
    }
}

#[test]
fn snapshot_of_an_earlier_version_excludes_later_writes() {
    let mut store = Store::new();
    let mut first = WriteSet::new();
    first.put("m", "k", b"1".to_vec());
    let mut second = WriteSet::new();
    second.put("m", "k", b"2".to_vec());
    second.put("m", "new", b"x".to_vec());
    store.apply(1, &first).unwrap();
    store.apply(2, &second).unwrap();
    let at_one = store.snapshot(1).unwrap();
    assert_eq!(at_one.version(), 1);
    assert_eq!(
        at_one.iter().collect::<Vec<_>>(),
        vec![("m", "k", &b"1"[..], 1)]
    );
    store.commit(2).unwrap();
    assert!(matches!(
        store.snapshot(1),
        Err(KvError::VersionOutOfRange { .. })
    ));
}

#[test]
fn truncated_or_padded_snapshots_are_refused() {
    let mut store = Store::new();
    let mut write_set = WriteSet::new();
    write_set.put("m", "k", b"v".to_vec());
    store.apply(1, &write_set).unwrap();
    let bytes = store.snapshot(1).unwrap().to_bytes();
    assert!(Snapshot::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(Snapshot::from_bytes(&bytes[..10]).is_err());
    assert!(Snapshot::from_bytes(&[]).is_err());
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(Snapshot::from_bytes(&padded).is_err());
}

/// A writer that takes `room` bytes, then fails like a full disk.
struct FullDisk {
    room: usize,
}

impl std::io::Write for FullDisk {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "full"));
        }
        let taken = bytes.len().min(self.room);
        self.room -= taken;
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failed_write_of_a_snapshot_is_reported() {
    let mut store = Store::new();
    let mut write_set = WriteSet::new();
    for key in 0..100 {
        write_set.put("m", &format!("k{key}"), vec![7; 100]);
    }
    store.apply(1, &write_set).unwrap();
    let snapshot = store.snapshot(1).unwrap();
    let length = snapshot.to_bytes().len();
    // Short of the body, and short of only the digest: both fail.
    for room in [100, length - 1] {
        let error = snapshot.write_to(&mut FullDisk { room }).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
    }
    snapshot.write_to(&mut FullDisk { room: length }).unwrap();
}
