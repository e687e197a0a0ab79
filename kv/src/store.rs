//! [`Store`]: the state at the head version plus an undo log back to the committed
//! version; [`ReadView`] and [`Overlay`]; [`Frozen`], a state set aside for a
//! snapshot.

use std::collections::{HashMap, VecDeque};

use crate::entry::{Name, Value};
use crate::snapshot::{Snapshot, SortedState};
use crate::state::State;
use crate::{KvError, Version, WriteSet, SPECULATIVE_VERSIONS_MAX};

/// The hasher of every map in the store: foldhash (hashbrown's default), several
/// times faster than SipHash on short keys and seeded per process, so clients
/// cannot aim keys at one bucket. Nothing observable depends on the seed (see
/// [`State`]).
pub(crate) type Hasher = foldhash::fast::RandomState;

/// A value and the version (seqno) that wrote it.
pub(crate) type Versioned = (Value, Version);

/// Anything a transaction can read from: the store, or the store plus the writes of
/// earlier transactions of the batch. `Sync` so that parallel workers share it.
pub trait ReadView: Sync {
    /// The current value of `key` in `map`, if any.
    fn read(&self, map: &str, key: &str) -> Option<&[u8]>;
}

/// The previous value (and its writer) of each key one version wrote, to undo it
/// exactly.
type UndoRecord = Vec<(Name, Option<Versioned>)>;

/// The versioned store: the state at the head `version`, and for every version in
/// `committed_version + 1 ..= version` an undo record.
///
/// To ensure correctness, callers apply versions in seqno order, one per
/// transaction, aborted ones included (with an empty write set).
#[derive(Debug, Clone, Default)]
pub struct Store {
    state: State,
    version: Version,
    committed_version: Version,
    /// `undo[i]` undoes version `committed_version + 1 + i`.
    undo: VecDeque<UndoRecord>,
}

impl Store {
    /// The empty store at version 0, committed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The head version: the last one applied.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The last globally committed version: rollback cannot go below it.
    pub fn committed_version(&self) -> Version {
        self.committed_version
    }

    /// The value of `key` in `map` at the head version.
    pub fn get(&self, map: &str, key: &str) -> Option<&[u8]> {
        self.get_versioned(map, key).map(|(value, _)| value)
    }

    /// The value of `key` in `map` at the head version, and the version that wrote
    /// it.
    pub fn get_versioned(&self, map: &str, key: &str) -> Option<(&[u8], Version)> {
        let (value, version) = self.state.get(map, key)?;
        Some((value, *version))
    }

    /// The value of `key` in `map` as of the committed version (not the head),
    /// and the version that wrote it: what a client may be shown while later
    /// versions are still speculative. Cheap when no speculative version touched
    /// the key; otherwise it walks the undo records after the committed version.
    pub fn get_committed(&self, map: &str, key: &str) -> Option<(&[u8], Version)> {
        if let Some((value, written)) = self.get_versioned(map, key) {
            if written <= self.committed_version {
                return Some((value, written));
            }
        }
        // The oldest speculative write to the key saved the committed value.
        self.undo.iter().find_map(|record| {
            record
                .iter()
                .find(|(name, _)| name.is(map, key))
                .map(|(_, previous)| {
                    previous
                        .as_ref()
                        .map(|(value, written)| (&value[..], *written))
                })
        })?
    }

    /// Number of keys held at the head version, over all maps.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True if no key is held.
    pub fn is_empty(&self) -> bool {
        self.state.len() == 0
    }

    /// Applies `write_set` as version `version`, which must be `self.version() + 1`.
    /// Atomic: on error nothing changed.
    pub fn apply(&mut self, version: Version, write_set: &WriteSet) -> Result<(), KvError> {
        let expected = self.version + 1;
        if version != expected {
            return Err(KvError::VersionNotNext { version, expected });
        }
        if self.undo.len() as u64 >= SPECULATIVE_VERSIONS_MAX {
            return Err(KvError::SpeculativeVersionsExceeded {
                max: SPECULATIVE_VERSIONS_MAX,
            });
        }
        write_set.check_limits()?;
        let mut record = Vec::with_capacity(write_set.len());
        for (map, key, value) in write_set.iter() {
            let written = value.map(|value| (Value::new(value), version));
            // The record shares the entry's name: no copy of map and key.
            record.push(self.state.set(map, key, written));
        }
        self.undo.push_back(record);
        self.version = version;
        debug_assert_eq!(
            self.undo.len() as u64,
            self.version - self.committed_version
        );
        Ok(())
    }

    /// Discards every version after `version`, restoring exactly the state at
    /// `version`. `version` must lie in `committed_version ..= version()`.
    pub fn rollback(&mut self, version: Version) -> Result<(), KvError> {
        self.check_retained(version)?;
        while self.version > version {
            let record = self
                .undo
                .pop_back()
                .expect("every speculative version has an undo record");
            undo_into(&mut self.state, record);
            self.version -= 1;
        }
        Ok(())
    }

    /// Marks `version` globally committed and compacts: the undo records at or before
    /// it are dropped, so it can no longer be rolled back. `version` must lie in
    /// `committed_version ..= version()` (a commit never moves backwards).
    pub fn commit(&mut self, version: Version) -> Result<(), KvError> {
        self.check_retained(version)?;
        let dropped = (version - self.committed_version) as usize;
        self.undo.drain(..dropped);
        self.committed_version = version;
        Ok(())
    }

    /// The state at `version`, which must lie in `committed_version ..= version()`.
    /// Consensus takes snapshots at committed versions; a speculative one is allowed
    /// here because it is still exactly reconstructible.
    pub fn snapshot(&self, version: Version) -> Result<Snapshot, KvError> {
        Ok(self.freeze(version)?.into_snapshot())
    }

    /// The state at `version` set aside, as for [`Store::snapshot`], but cheap: O(1)
    /// plus the undo records after `version`. Take it under the store's lock and
    /// call [`Frozen::into_snapshot`] (O(n log n)) after releasing it.
    pub fn freeze(&self, version: Version) -> Result<Frozen, KvError> {
        self.check_retained(version)?;
        let mut state = self.state.clone();
        let undone = (self.version - version) as usize;
        for record in self.undo.iter().rev().take(undone) {
            undo_into(&mut state, record.clone());
        }
        Ok(Frozen { version, state })
    }

    /// A store whose head and committed version are the snapshot's version.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        let (version, sorted) = snapshot.into_parts();
        let mut state = State::default();
        for (name, value, written) in sorted {
            state.insert_absent(name, (value, written));
        }
        Store {
            state,
            version,
            committed_version: version,
            undo: VecDeque::new(),
        }
    }

    fn check_retained(&self, version: Version) -> Result<(), KvError> {
        if version < self.committed_version || version > self.version {
            return Err(KvError::VersionOutOfRange {
                version,
                committed: self.committed_version,
                head: self.version,
            });
        }
        Ok(())
    }
}

/// The committed state of a [`Store`] as a [`ReadView`]: reads skip every
/// speculative version, so they see only what survives a crash (or, in a
/// cluster, a change of leader).
#[derive(Debug, Clone, Copy)]
pub struct Committed<'store>(&'store Store);

impl Store {
    /// The committed state as a view (see [`Committed`]).
    pub fn committed_view(&self) -> Committed<'_> {
        Committed(self)
    }
}

impl ReadView for Committed<'_> {
    fn read(&self, map: &str, key: &str) -> Option<&[u8]> {
        self.0.get_committed(map, key).map(|(value, _)| value)
    }
}

impl ReadView for Store {
    fn read(&self, map: &str, key: &str) -> Option<&[u8]> {
        self.get(map, key)
    }
}

/// Restores the previous values of one version, last write first.
fn undo_into(state: &mut State, record: UndoRecord) {
    for (name, previous) in record.into_iter().rev() {
        let (map, key) = name.strs();
        state.set(map, key, previous);
    }
}

/// The state at one version, set aside by [`Store::freeze`]: it shares its
/// shards with the store, so later writes to the store do not change it.
#[derive(Debug, Clone)]
pub struct Frozen {
    version: Version,
    state: State,
}

impl Frozen {
    /// The version whose state this is.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Every key of `map` with its value, in no particular order (a walk of the
    /// whole state: O(entries), without the store's lock).
    pub fn entries_of<'frozen>(
        &'frozen self,
        map: &'frozen str,
    ) -> impl Iterator<Item = (&'frozen str, &'frozen [u8])> + 'frozen {
        self.state
            .iter()
            .filter(move |(entry_map, _, _)| *entry_map == map)
            .map(|(_, key, value)| (key, value))
    }

    /// The snapshot of this state: sorts every entry (O(n log n): call it without
    /// the store's lock). The keys and values are shared, not copied.
    pub fn into_snapshot(self) -> Snapshot {
        let mut sorted: SortedState = self.state.entries().collect();
        // The canonical order; (map, key) pairs are unique in the state.
        sorted.sort_unstable_by(|a, b| a.0.parts().cmp(&b.0.parts()));
        Snapshot::from_state(self.version, sorted)
    }
}

/// Pending writes over a base view: reads see the writes first. The dispatcher uses
/// it to show a wave of transactions the writes of the earlier waves of the batch.
/// Hashed, like the store: it may hold every key a contended batch writes.
#[derive(Debug)]
pub struct Overlay<'base, V: ReadView + ?Sized> {
    base: &'base V,
    writes: HashMap<String, HashMap<String, Option<Vec<u8>>, Hasher>, Hasher>,
}

impl<'base, V: ReadView + ?Sized> Overlay<'base, V> {
    /// No pending writes yet.
    pub fn new(base: &'base V) -> Self {
        Overlay {
            base,
            writes: HashMap::default(),
        }
    }

    fn set(&mut self, map: &str, key: &str, value: Option<&[u8]>) {
        let value = value.map(<[u8]>::to_vec);
        match self.writes.get_mut(map) {
            Some(entries) => match entries.get_mut(key) {
                Some(slot) => *slot = value,
                None => {
                    entries.insert(key.to_owned(), value);
                }
            },
            None => {
                let mut entries = HashMap::default();
                entries.insert(key.to_owned(), value);
                self.writes.insert(map.to_owned(), entries);
            }
        }
    }

    /// Adds `write_set` on top of the pending writes.
    pub fn apply(&mut self, write_set: &WriteSet) {
        self.apply_where(write_set, |_, _| true);
    }

    /// Adds only the entries of `write_set` for which `keep(map, key)` holds (the
    /// dispatcher keeps just the keys a later wave will read, to copy less).
    pub fn apply_where(&mut self, write_set: &WriteSet, keep: impl Fn(&str, &str) -> bool) {
        for (map, key, value) in write_set.iter() {
            if keep(map, key) {
                self.set(map, key, value);
            }
        }
    }
}

impl<V: ReadView + ?Sized> ReadView for Overlay<'_, V> {
    fn read(&self, map: &str, key: &str) -> Option<&[u8]> {
        match self.writes.get(map).and_then(|entries| entries.get(key)) {
            Some(pending) => pending.as_deref(),
            None => self.base.read(map, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(map: &str, key: &str, value: &str) -> WriteSet {
        let mut write_set = WriteSet::new();
        write_set.put(map, key, value.as_bytes().to_vec());
        write_set
    }

    #[test]
    fn versions_must_be_contiguous() {
        let mut store = Store::new();
        assert_eq!(
            store.apply(2, &WriteSet::new()),
            Err(KvError::VersionNotNext {
                version: 2,
                expected: 1
            })
        );
        store.apply(1, &put("m", "k", "v")).unwrap();
        assert_eq!(store.get("m", "k"), Some(&b"v"[..]));
        assert_eq!(store.version(), 1);
    }

    #[test]
    fn rollback_below_commit_is_an_error_and_changes_nothing() {
        let mut store = Store::new();
        store.apply(1, &put("m", "k", "1")).unwrap();
        store.apply(2, &put("m", "k", "2")).unwrap();
        store.commit(1).unwrap();
        let error = store.rollback(0).unwrap_err();
        assert_eq!(
            error,
            KvError::VersionOutOfRange {
                version: 0,
                committed: 1,
                head: 2
            }
        );
        assert_eq!(store.get("m", "k"), Some(&b"2"[..]));
        store.rollback(1).unwrap();
        assert_eq!(store.get("m", "k"), Some(&b"1"[..]));
        assert!(store.commit(0).is_err());
        assert!(store.rollback(5).is_err());
    }

    #[test]
    fn delete_then_rollback_restores_the_value_and_no_empty_map_remains() {
        let mut store = Store::new();
        store.apply(1, &put("m", "k", "1")).unwrap();
        let mut delete = WriteSet::new();
        delete.delete("m", "k");
        delete.delete("absent", "k");
        store.apply(2, &delete).unwrap();
        assert!(store.is_empty());
        store.rollback(1).unwrap();
        assert_eq!(store.get("m", "k"), Some(&b"1"[..]));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn committed_reads_ignore_speculative_versions() {
        let mut store = Store::new();
        store.apply(1, &put("m", "k", "1")).unwrap();
        store.apply(2, &put("m", "other", "x")).unwrap();
        store.commit(2).unwrap();
        store.apply(3, &put("m", "k", "3")).unwrap();
        let mut delete = WriteSet::new();
        delete.delete("m", "other");
        store.apply(4, &delete).unwrap();
        store.apply(5, &put("m", "new", "n")).unwrap();
        assert_eq!(store.get_committed("m", "k"), Some((&b"1"[..], 1)));
        assert_eq!(store.get_committed("m", "other"), Some((&b"x"[..], 2)));
        assert_eq!(store.get_committed("m", "new"), None);
        assert_eq!(store.get_versioned("m", "k"), Some((&b"3"[..], 3)));
        store.commit(4).unwrap();
        assert_eq!(store.get_committed("m", "k"), Some((&b"3"[..], 3)));
        assert_eq!(store.get_committed("m", "other"), None);
        assert_eq!(store.get_committed("m", "new"), None);
    }

    #[test]
    fn the_committed_view_and_a_frozen_map_show_only_committed_entries() {
        let mut store = Store::new();
        store.apply(1, &put("m", "a", "1")).unwrap();
        store.apply(2, &put("other", "b", "2")).unwrap();
        store.commit(2).unwrap();
        store.apply(3, &put("m", "a", "speculative")).unwrap();
        store.apply(4, &put("m", "c", "speculative")).unwrap();
        let view = store.committed_view();
        assert_eq!(view.read("m", "a"), Some(&b"1"[..]));
        assert_eq!(view.read("m", "c"), None);
        let frozen = store.freeze(store.committed_version()).unwrap();
        let mut entries: Vec<_> = frozen.entries_of("m").collect();
        entries.sort_unstable();
        assert_eq!(entries, vec![("a", &b"1"[..])]);
        assert_eq!(frozen.entries_of("absent").count(), 0);
    }

    #[test]
    fn overlay_reads_pending_writes_first() {
        let mut store = Store::new();
        store.apply(1, &put("m", "a", "base")).unwrap();
        store.apply(2, &put("m", "b", "base")).unwrap();
        let mut overlay = Overlay::new(&store);
        overlay.apply(&put("m", "a", "pending"));
        let mut delete = WriteSet::new();
        delete.delete("m", "b");
        overlay.apply(&delete);
        assert_eq!(overlay.read("m", "a"), Some(&b"pending"[..]));
        assert_eq!(overlay.read("m", "b"), None);
        assert_eq!(store.get("m", "b"), Some(&b"base"[..]));

        let mut both = put("m", "a", "kept");
        both.put("m", "b", b"skipped".to_vec());
        overlay.apply_where(&both, |_, key| key == "a");
        assert_eq!(overlay.read("m", "a"), Some(&b"kept"[..]));
        assert_eq!(overlay.read("m", "b"), None);
    }

    #[test]
    fn a_frozen_state_ignores_later_writes_and_rollbacks() {
        let mut store = Store::new();
        for version in 1..=300 {
            store
                .apply(version, &put("m", &format!("k{version}"), "old"))
                .unwrap();
        }
        store.commit(300).unwrap();
        store.apply(301, &put("m", "k1", "speculative")).unwrap();
        let frozen = store.freeze(300).unwrap();
        let expected = store.snapshot(300).unwrap();
        // Writes, deletes and a rollback after the freeze touch shared nodes.
        for version in 302..=600 {
            let mut write_set = put("m", &format!("k{}", version - 300), "new");
            write_set.delete("m", &format!("k{}", version - 299));
            write_set.put("other", "x", b"y".to_vec());
            store.apply(version, &write_set).unwrap();
        }
        store.rollback(450).unwrap();
        assert_eq!(frozen.version(), 300);
        let snapshot = frozen.into_snapshot();
        assert_eq!(snapshot, expected);
        assert_eq!(snapshot.len(), 300);
        assert!(snapshot
            .iter()
            .all(|(map, _, value, _)| map == "m" && value == b"old"));
        assert_ne!(store.snapshot(450).unwrap().digest(), snapshot.digest());
        assert!(store.freeze(299).is_err(), "below the committed version");
    }

    #[test]
    fn oversized_entries_are_refused_before_any_change() {
        let mut store = Store::new();
        let mut write_set = put("m", "ok", "v");
        write_set.put("m", &"k".repeat(crate::KEY_BYTES_MAX + 1), b"v".to_vec());
        assert!(matches!(
            store.apply(1, &write_set),
            Err(KvError::EntryTooLarge { field: "key", .. })
        ));
        assert!(store.is_empty());
        assert_eq!(store.version(), 0);
    }
}
