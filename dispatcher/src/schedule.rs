//! [`Schedule`]: waves of mutually conflict-free transactions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use fnv::FnvHasher;
use stele_frontends::KeySet;

/// Last wave declaring each key, by the key's 64-bit hash.
type WaveByKey = HashMap<u64, usize, BuildHasherDefault<FnvHasher>>;

/// FNV-1a of `map`, a 0xFF separator (a byte UTF-8 never contains, so ("ab","c") and
/// ("a","bc") differ), and `key`.
///
/// Scheduling on hashes is safe whatever collides: two distinct keys with one hash
/// are treated as one key, which only adds an ordering constraint (a false conflict),
/// never removes one. Waves, and so results, stay deterministic, since the hash is a
/// fixed function.
fn key_hash(map: &str, key: &str) -> u64 {
    let mut hasher = FnvHasher::default();
    hasher.write(map.as_bytes());
    hasher.write(&[0xFF]);
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// The batch positions of each wave, in wave order; within a wave, in batch order.
/// Two transactions in one wave never share a declared key.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    waves: Vec<Vec<usize>>,
    /// For each declared key (by hash), the last wave that declares it.
    last_wave: WaveByKey,
    /// Scratch: the hashes of the transaction being placed.
    hashes: Vec<u64>,
    /// Transactions placed so far (the next one's batch position).
    placed: usize,
}

impl Schedule {
    /// Places each transaction one wave after the latest earlier transaction that
    /// shares a key with it (wave 0 if none does). Linear in the number of keys.
    pub fn new(key_sets: &[KeySet]) -> Self {
        let mut schedule = Schedule::default();
        for key_set in key_sets {
            schedule.push(key_set);
        }
        schedule
    }

    /// Places the next transaction of the batch (built incrementally so that the
    /// dispatcher can stop as soon as a batch proves too contended); returns its wave.
    pub fn push(&mut self, key_set: &KeySet) -> usize {
        let position = self.placed;
        self.placed += 1;
        self.hashes.clear();
        self.hashes
            .extend(key_set.iter().map(|(map, key)| key_hash(map, key)));
        let last_wave = &mut self.last_wave;
        let wave = self
            .hashes
            .iter()
            .filter_map(|hash| last_wave.get(hash).map(|wave| wave + 1))
            .max()
            .unwrap_or(0);
        for &hash in &self.hashes {
            // `wave` is above every earlier wave of these keys, so this only raises
            // entries.
            last_wave.insert(hash, wave);
        }
        if wave == self.waves.len() {
            self.waves.push(Vec::new());
        }
        debug_assert!(
            wave < self.waves.len(),
            "a wave is at most one past the last"
        );
        self.waves[wave].push(position);
        wave
    }

    /// Number of transactions placed.
    pub fn len(&self) -> usize {
        self.placed
    }

    /// True if no transaction is placed.
    pub fn is_empty(&self) -> bool {
        self.waves.is_empty()
    }

    /// The waves.
    pub fn waves(&self) -> &[Vec<usize>] {
        &self.waves
    }

    /// True if a wave after `wave` declares `key` in `map`: only then must a write
    /// to it made in `wave` be shown to later waves. (A hash collision can only make
    /// this true when it need not be: a harmless copy.)
    pub fn is_declared_after(&self, map: &str, key: &str, wave: usize) -> bool {
        self.last_wave
            .get(&key_hash(map, key))
            .is_some_and(|&last| last > wave)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> KeySet {
        KeySet::new(
            names
                .iter()
                .map(|name| ("m".to_owned(), (*name).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_transaction_runs_after_its_latest_conflict() {
        let key_sets = [
            keys(&["a"]),
            keys(&["b"]),
            keys(&["a", "c"]),
            keys(&["c"]),
            keys(&["d"]),
            keys(&["b"]),
        ];
        let schedule = Schedule::new(&key_sets);
        assert_eq!(schedule.waves(), &[vec![0, 1, 4], vec![2, 5], vec![3]]);
        assert!(schedule.is_declared_after("m", "a", 0));
        assert!(schedule.is_declared_after("m", "c", 1));
        assert!(!schedule.is_declared_after("m", "a", 1));
        assert!(!schedule.is_declared_after("m", "d", 0));
    }

    #[test]
    fn full_contention_is_one_transaction_per_wave_and_none_is_one_wave() {
        let contended = vec![keys(&["x"]); 5];
        assert_eq!(Schedule::new(&contended).waves().len(), 5);
        let disjoint: Vec<_> = ["a", "b", "c"].iter().map(|k| keys(&[k])).collect();
        assert_eq!(Schedule::new(&disjoint).waves(), &[vec![0, 1, 2]]);
        assert!(Schedule::new(&[]).waves().is_empty());
        let mut incremental = Schedule::default();
        assert_eq!(incremental.push(&keys(&["x"])), 0);
        assert_eq!(incremental.push(&keys(&["y"])), 0);
        assert_eq!(incremental.push(&keys(&["x", "y"])), 1);
        assert_eq!(incremental.len(), 3);
    }

    #[test]
    fn the_separator_keeps_concatenations_apart() {
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
        assert_eq!(key_hash("m", "k"), key_hash("m", "k"));
    }
}
