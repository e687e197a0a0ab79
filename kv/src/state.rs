//! [`State`]: every (map, key) -> value of the store at its head version, in
//! hash tables that a clone shares.
//!
//! Why sharded copy-on-write: a snapshot must set the state aside while the
//! store keeps applying. A deep copy under the store's lock stalled commits for
//! 460-530 ms at ~500k keys (`bench/snapshot-stall.sh`). A persistent trie
//! (imbl) would also make the copy O(1), but its lookups chase a pointer per
//! level (about four at 250k keys). Here a lookup is one hash and one flat hash
//! table probe whose entry holds its (map, key) name inline when short
//! (`kv/benches/store.rs`: 15 ns); a clone is [`STATE_SHARDS`] reference
//! counts; and the first write to a shard after a clone copies that shard
//! alone (short names and values are copied, long ones are `Arc`s), so the
//! cost of a snapshot is spread over the writes that follow it, a fraction of
//! the state at a time.
//!
//! Invariant: every entry sits in the shard its hash names, and the hash is
//! [`hash_of`] its (map, key), computed by one hasher shared by clones.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::entry::Name;
#[cfg(test)]
use crate::entry::Value;
use crate::snapshot::SnapshotEntry;
use crate::store::{Hasher, Versioned};

/// Number of shards: a clone costs this many reference counts, and the first
/// write to a shard after a clone copies 1/`STATE_SHARDS` of the state (about
/// 60 entries at 250k keys). With 256 shards, the batches that followed a
/// Raft snapshot's freeze at ~500k keys took 6-33 ms to execute instead of
/// under 1 (each first write copied ~2,000 entries into fresh memory, which
/// the kernel had to zero), the worst commit latencies of
/// `bench/snapshot-stall.sh`. A power of two: [`shard_of`] takes hash bits.
pub(crate) const STATE_SHARDS: usize = 4096;

/// The hash bits [`shard_of`] takes, from bit 32 up.
const SHARD_BITS: u32 = STATE_SHARDS.trailing_zeros();
const _: () = assert!(STATE_SHARDS.is_power_of_two() && SHARD_BITS <= 24);

/// One entry: its name, value and the version that wrote it.
#[derive(Debug, Clone)]
struct Entry {
    name: Name,
    value: Versioned,
}

/// The hash of (map, key): the one function both lookups and rehashing use.
fn hash_of(hasher: &Hasher, map: &str, key: &str) -> u64 {
    hasher.hash_one((map, key))
}

/// The state: entries spread over [`STATE_SHARDS`] shared hash tables.
#[derive(Clone)]
pub(crate) struct State {
    hasher: Hasher,
    shards: Box<[Arc<HashTable<Entry>>]>,
    entries: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            hasher: Hasher::default(),
            shards: (0..STATE_SHARDS)
                .map(|_| Arc::new(HashTable::new()))
                .collect(),
            entries: 0,
        }
    }
}

impl std::fmt::Debug for State {
    // The entries may be millions: their count says enough.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("State")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// The shard of a hash: [`SHARD_BITS`] bits from bit 32, which hashbrown uses
/// for neither the bucket index (low bits) nor the tag (top 7 bits), so
/// entries spread evenly inside each shard too.
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) & (STATE_SHARDS - 1)
}

impl State {
    fn hash(&self, map: &str, key: &str) -> u64 {
        hash_of(&self.hasher, map, key)
    }

    /// The value of `key` in `map` and the version that wrote it.
    pub(crate) fn get(&self, map: &str, key: &str) -> Option<&Versioned> {
        let hash = self.hash(map, key);
        self.shards[shard_of(hash)]
            .find(hash, |entry| entry.name.is(map, key))
            .map(|entry| &entry.value)
    }

    /// Sets (`Some`) or removes (`None`) one entry and returns the value it
    /// replaced, with the entry's name (shared, for an undo record).
    pub(crate) fn set(
        &mut self,
        map: &str,
        key: &str,
        value: Option<Versioned>,
    ) -> (Name, Option<Versioned>) {
        let hash = self.hash(map, key);
        let hasher = &self.hasher;
        // Copies the shard if a clone still shares it.
        let shard = Arc::make_mut(&mut self.shards[shard_of(hash)]);
        let found = shard.find_entry(hash, |entry| entry.name.is(map, key));
        match (found, value) {
            (Ok(mut occupied), Some(value)) => {
                let entry = occupied.get_mut();
                let previous = std::mem::replace(&mut entry.value, value);
                (entry.name.clone(), Some(previous))
            }
            (Ok(occupied), None) => {
                self.entries -= 1;
                let Entry { name, value } = occupied.remove().0;
                (name, Some(value))
            }
            (Err(_), Some(value)) => {
                let name = Name::new(map, key);
                let entry = Entry {
                    name: name.clone(),
                    value,
                };
                insert_unique(shard, hasher, hash, entry);
                self.entries += 1;
                (name, None)
            }
            (Err(_), None) => (Name::new(map, key), None),
        }
    }

    /// Adds an entry whose name the state does not hold (a snapshot's entries
    /// are unique), sharing the name instead of copying it.
    pub(crate) fn insert_absent(&mut self, name: Name, value: Versioned) {
        let (map, key) = name.strs();
        let hash = self.hash(map, key);
        let shard = Arc::make_mut(&mut self.shards[shard_of(hash)]);
        insert_unique(shard, &self.hasher, hash, Entry { name, value });
        self.entries += 1;
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Every (map, key, value), in no particular order, borrowed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str, &[u8])> + '_ {
        self.shards.iter().flat_map(|shard| {
            shard.iter().map(|entry| {
                let (map, key) = entry.name.strs();
                (map, key, &entry.value.0[..])
            })
        })
    }

    /// Every entry, in no particular order, sharing its map, key and value.
    pub(crate) fn entries(&self) -> impl Iterator<Item = SnapshotEntry> + '_ {
        self.shards.iter().flat_map(|shard| {
            shard.iter().map(|entry| {
                let (value, written) = &entry.value;
                (entry.name.clone(), value.clone(), *written)
            })
        })
    }
}

/// Inserts an entry known to be absent, rehashing by [`hash_of`] if the
/// shard grows.
fn insert_unique(shard: &mut HashTable<Entry>, hasher: &Hasher, hash: u64, entry: Entry) {
    shard.insert_unique(hash, entry, |entry| {
        let (map, key) = entry.name.strs();
        hash_of(hasher, map, key)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;

    fn value(bytes: &[u8], version: Version) -> Option<Versioned> {
        Some((Value::new(bytes), version))
    }

    #[test]
    fn a_clone_keeps_its_entries_while_the_original_changes() {
        let mut state = State::default();
        for i in 0..5_000 {
            state.set("m", &format!("k{i}"), value(b"old", i));
        }
        let clone = state.clone();
        for i in 0..5_000 {
            if i % 2 == 0 {
                state.set("m", &format!("k{i}"), value(b"new", i));
            } else {
                assert!(state.set("m", &format!("k{i}"), None).1.is_some());
            }
        }
        state.set("other", "k0", value(b"x", 1));
        assert_eq!(clone.len(), 5_000);
        assert!(clone
            .entries()
            .all(|(name, bytes, _)| name.strs().0 == "m" && &*bytes == b"old"));
        assert_eq!(state.len(), 2_501);
        assert_eq!(state.get("m", "k2").map(|v| &*v.0), Some(&b"new"[..]));
        assert_eq!(state.get("m", "k1"), None);
        assert_eq!(clone.get("m", "k1").map(|v| v.1), Some(1));
        // The map is part of the key.
        assert_eq!(state.get("other", "k0").map(|v| &*v.0), Some(&b"x"[..]));
        assert_eq!(state.get("m", "k0").map(|v| &*v.0), Some(&b"new"[..]));
    }

    #[test]
    fn a_name_keeps_where_its_map_ends() {
        let mut state = State::default();
        state.set("ab", "c", value(b"1", 1));
        state.set("a", "bc", value(b"2", 2));
        state.set("", "abc", value(b"3", 3));
        assert_eq!(state.len(), 3);
        assert_eq!(state.get("ab", "c").map(|v| v.1), Some(1));
        assert_eq!(state.get("a", "bc").map(|v| v.1), Some(2));
        assert_eq!(state.get("abc", ""), None);
        // Names order by (map, key), not by their concatenation.
        let mut names: Vec<Name> = state.entries().map(|(name, _, _)| name).collect();
        names.sort_unstable_by(|a, b| a.parts().cmp(&b.parts()));
        let strs: Vec<_> = names.iter().map(Name::strs).collect();
        assert_eq!(strs, [("", "abc"), ("a", "bc"), ("ab", "c")]);
        // A name with multi-byte characters splits on its map's boundary.
        let name = Name::new("é", "ü");
        assert_eq!(name.strs(), ("é", "ü"));
        // Inline up to 23 bytes, shared beyond: the same behaviour either way.
        let long_map = "m".repeat(40);
        for key in ["k", "long key, longer than an inline name"] {
            state.set(&long_map, key, value(b"4", 4));
            assert_eq!(state.get(&long_map, key).map(|v| v.1), Some(4));
            assert_eq!(Name::new(&long_map, key).strs(), (&*long_map, key));
        }
        assert_eq!(state.get(&long_map, "long key"), None);
    }

    #[test]
    fn removing_an_absent_key_changes_nothing() {
        let mut state = State::default();
        state.set("m", "a", value(b"1", 1));
        assert_eq!(state.set("m", "b", None).1, None);
        assert_eq!(state.set("n", "a", None).1, None);
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn entries_spread_over_the_shards() {
        let mut state = State::default();
        for i in 0..(STATE_SHARDS * 16) {
            state.set("m", &i.to_string(), value(b"v", 1));
        }
        let fullest = state.shards.iter().map(|shard| shard.len()).max();
        // 16 per shard on average; a shard with 4x that means the bits are skewed.
        assert!(fullest.is_some_and(|fullest| fullest < 64), "{fullest:?}");
    }
}
