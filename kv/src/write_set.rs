//! [`WriteSet`] and [`ReadSet`]: what one transaction wrote and read.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::encoding::{put_bytes, put_u32, ByteSink, Reader};
use crate::{KvError, KEY_BYTES_MAX, MAP_NAME_BYTES_MAX, VALUE_BYTES_MAX};

/// Canonical tag of a delete in the write-set encoding.
pub const ENTRY_DELETE: u8 = 0x00;
/// Canonical tag of a write in the write-set encoding.
pub const ENTRY_WRITE: u8 = 0x01;

/// One entry: (map, key, new value or `None` for a delete).
type Entry = (String, String, Option<Vec<u8>>);

/// The writes of one transaction: for each (map, key), the new value, or `None` for
/// a delete. The last write to a key wins. Kept as one vector sorted by map, then key
/// (byte-wise), which is the order of the canonical encoding and of serialization:
/// write sets are small and a batch holds thousands of them until they are applied,
/// so a compact vector beats tree nodes of half a kilobyte each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    entries: Vec<Entry>,
}

impl WriteSet {
    /// An empty write set (what an aborted or read-only transaction produces).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` as the new value of `key` in `map`.
    pub fn put(&mut self, map: &str, key: &str, value: Vec<u8>) {
        self.set(map, key, Some(value));
    }

    /// Records the deletion of `key` in `map`.
    pub fn delete(&mut self, map: &str, key: &str) {
        self.set(map, key, None);
    }

    fn position(&self, map: &str, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(m, k, _)| (m.as_str(), k.as_str()).cmp(&(map, key)))
    }

    fn set(&mut self, map: &str, key: &str, value: Option<Vec<u8>>) {
        match self.position(map, key) {
            Ok(index) => self.entries[index].2 = value,
            Err(index) => self
                .entries
                .insert(index, (map.to_owned(), key.to_owned(), value)),
        }
    }

    /// What this write set says about `key` in `map`: `None` if it does not touch
    /// it, `Some(None)` if it deletes it, `Some(Some(value))` if it writes it.
    pub fn get(&self, map: &str, key: &str) -> Option<Option<&[u8]>> {
        let index = self.position(map, key).ok()?;
        Some(self.entries[index].2.as_deref())
    }

    /// Number of (map, key) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if it touches no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in canonical order: (map, key, `Some(value)` or `None` for a
    /// delete).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|(map, key, value)| (map.as_str(), key.as_str(), value.as_deref()))
    }

    /// Applies `later` on top of this one: its entries replace ours key by key.
    pub fn merge(&mut self, later: &WriteSet) {
        for (map, key, value) in later.iter() {
            self.set(map, key, value.map(<[u8]>::to_vec));
        }
    }

    /// Checks every entry against the store's size limits.
    pub fn check_limits(&self) -> Result<(), KvError> {
        for (map, key, value) in self.iter() {
            check_size("map", map.len(), MAP_NAME_BYTES_MAX)?;
            check_size("key", key.len(), KEY_BYTES_MAX)?;
            check_size("value", value.map_or(0, <[u8]>::len), VALUE_BYTES_MAX)?;
        }
        Ok(())
    }

    /// Writes the canonical encoding (see `docs/execution.md`):
    /// `u32 count`, then per entry in (map, key) order: `str map`, `str key`, and
    /// `0x00` for a delete or `0x01` followed by `bytes value` for a write.
    pub fn encode(&self, sink: &mut impl ByteSink) {
        let count = u32::try_from(self.len()).expect("a write set is bounded far below 2^32");
        put_u32(sink, count);
        for (map, key, value) in self.iter() {
            put_bytes(sink, map.as_bytes());
            put_bytes(sink, key.as_bytes());
            match value {
                None => sink.put(&[ENTRY_DELETE]),
                Some(value) => {
                    sink.put(&[ENTRY_WRITE]);
                    put_bytes(sink, value);
                }
            }
        }
    }

    /// The canonical encoding as bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.encode(&mut bytes);
        bytes
    }

    /// Parses the canonical encoding back, strictly (strictly increasing (map, key),
    /// entries within the limits, known tags, no trailing bytes), so
    /// `from_canonical_bytes(b)?.canonical_bytes() == b`. Nodes replay the ledger
    /// with it.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, KvError> {
        let mut reader = Reader::new(bytes);
        let count = reader.u32()?;
        let mut write_set = WriteSet::new();
        for _ in 0..count {
            let map = reader.string(MAP_NAME_BYTES_MAX)?;
            let key = reader.string(KEY_BYTES_MAX)?;
            let value = match reader.take(1)? {
                [ENTRY_DELETE] => None,
                [ENTRY_WRITE] => Some(reader.bytes(VALUE_BYTES_MAX)?.to_vec()),
                _ => {
                    return Err(KvError::Malformed {
                        reason: "unknown write-set entry tag",
                    })
                }
            };
            if let Some((last_map, last_key, _)) = write_set.entries.last() {
                if (last_map.as_str(), last_key.as_str()) >= (map, key) {
                    return Err(KvError::Malformed {
                        reason: "write set entries not strictly increasing by (map, key)",
                    });
                }
            }
            write_set
                .entries
                .push((map.to_owned(), key.to_owned(), value));
        }
        if reader.remaining() != 0 {
            return Err(KvError::Malformed {
                reason: "trailing bytes after the last write-set entry",
            });
        }
        Ok(write_set)
    }

    /// SHA-256 of the canonical encoding. Replicas and the ledger recompute it from a
    /// stored write set, so it depends on nothing but the entries.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        self.encode(&mut hasher);
        hasher.finalize().into()
    }
}

pub(crate) fn check_size(field: &'static str, bytes: usize, max: usize) -> Result<(), KvError> {
    if bytes > max {
        return Err(KvError::EntryTooLarge { field, bytes, max });
    }
    Ok(())
}

/// One entry as serialized: a sequence of these, in canonical order.
#[derive(Serialize)]
struct EntryRef<'a> {
    map: &'a str,
    key: &'a str,
    #[serde(with = "serde_bytes")]
    value: Option<&'a [u8]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryOwned {
    map: String,
    key: String,
    #[serde(with = "serde_bytes")]
    value: Option<Vec<u8>>,
}

impl Serialize for WriteSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.iter()
                .map(|(map, key, value)| EntryRef { map, key, value }),
        )
    }
}

impl<'de> Deserialize<'de> for WriteSet {
    /// Accepts only the canonical form (strictly increasing (map, key), within the
    /// limits), so a stored write set has exactly one serialization and one digest.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<EntryOwned>::deserialize(deserializer)?;
        let mut write_set = WriteSet::new();
        for entry in entries {
            let position = (entry.map, entry.key, entry.value);
            if let Some(previous) = write_set.entries.last() {
                if (previous.0.as_str(), previous.1.as_str())
                    >= (position.0.as_str(), position.1.as_str())
                {
                    return Err(serde::de::Error::custom(
                        "write set entries must be strictly increasing by (map, key)",
                    ));
                }
            }
            write_set.entries.push(position);
        }
        write_set.check_limits().map_err(serde::de::Error::custom)?;
        Ok(write_set)
    }
}

/// The keys one transaction read, sorted by (map, key), without duplicates.
/// Informational: the dispatcher schedules on declared key sets, so reads need no
/// validation at commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadSet {
    keys: Vec<(String, String)>,
}

impl ReadSet {
    /// An empty read set.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, map: &str, key: &str) -> Result<usize, usize> {
        self.keys
            .binary_search_by(|(m, k)| (m.as_str(), k.as_str()).cmp(&(map, key)))
    }

    /// Records a read of `key` in `map`.
    pub fn insert(&mut self, map: &str, key: &str) {
        if let Err(index) = self.position(map, key) {
            self.keys.insert(index, (map.to_owned(), key.to_owned()));
        }
    }

    /// True if `key` in `map` was read.
    pub fn contains(&self, map: &str, key: &str) -> bool {
        self.position(map, key).is_ok()
    }

    /// Number of distinct keys read.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if nothing was read.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys read, in (map, key) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys
            .iter()
            .map(|(map, key)| (map.as_str(), key.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_write_wins_and_delete_is_distinct() {
        let mut write_set = WriteSet::new();
        write_set.put("m", "k", b"1".to_vec());
        write_set.put("m", "k", b"2".to_vec());
        write_set.delete("m", "gone");
        assert_eq!(write_set.get("m", "k"), Some(Some(&b"2"[..])));
        assert_eq!(write_set.get("m", "gone"), Some(None));
        assert_eq!(write_set.get("m", "other"), None);
        assert_eq!(write_set.len(), 2);

        let mut deleted = WriteSet::new();
        deleted.delete("m", "k");
        let mut empty_value = WriteSet::new();
        empty_value.put("m", "k", Vec::new());
        assert_ne!(deleted.digest(), empty_value.digest());
    }

    #[test]
    fn insertion_order_does_not_change_the_digest() {
        let mut forward = WriteSet::new();
        forward.put("a", "x", b"1".to_vec());
        forward.put("b", "y", b"2".to_vec());
        let mut backward = WriteSet::new();
        backward.put("b", "y", b"2".to_vec());
        backward.put("a", "x", b"1".to_vec());
        assert_eq!(forward.canonical_bytes(), backward.canonical_bytes());
        assert_eq!(forward.digest(), backward.digest());
    }

    #[test]
    fn serde_round_trip_keeps_the_digest_and_rejects_unsorted_input() {
        let mut write_set = WriteSet::new();
        write_set.put("m", "a", vec![0, 255]);
        write_set.delete("m", "b");
        let json = serde_json::to_string(&write_set).unwrap();
        let back: WriteSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, write_set);
        assert_eq!(back.digest(), write_set.digest());

        let mut cbor = Vec::new();
        ciborium::into_writer(&write_set, &mut cbor).unwrap();
        let back: WriteSet = ciborium::from_reader(cbor.as_slice()).unwrap();
        assert_eq!(back.digest(), write_set.digest());

        let unsorted = r#"[{"map":"m","key":"b","value":null},{"map":"m","key":"a","value":null}]"#;
        assert!(serde_json::from_str::<WriteSet>(unsorted).is_err());
        let duplicate =
            r#"[{"map":"m","key":"a","value":null},{"map":"m","key":"a","value":null}]"#;
        assert!(serde_json::from_str::<WriteSet>(duplicate).is_err());
    }

    #[test]
    fn canonical_bytes_parse_back_strictly() {
        let mut write_set = WriteSet::new();
        write_set.put("m", "a", vec![0, 255]);
        write_set.delete("m", "b");
        write_set.put("n", "", Vec::new());
        let bytes = write_set.canonical_bytes();
        assert_eq!(WriteSet::from_canonical_bytes(&bytes).unwrap(), write_set);
        for cut in 0..bytes.len() {
            assert!(
                WriteSet::from_canonical_bytes(&bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(WriteSet::from_canonical_bytes(&trailing).is_err());
        // Swap the order of two entries: the count stays, the order breaks.
        let mut unsorted = WriteSet::new();
        unsorted.put("m", "b", b"1".to_vec());
        let mut first = WriteSet::new();
        first.put("m", "a", b"1".to_vec());
        let one = &unsorted.canonical_bytes()[4..];
        let two = &first.canonical_bytes()[4..];
        let swapped = [&2u32.to_be_bytes()[..], one, two].concat();
        assert!(WriteSet::from_canonical_bytes(&swapped).is_err());
    }

    #[test]
    fn merge_lets_the_later_write_set_win() {
        let mut earlier = WriteSet::new();
        earlier.put("m", "k", b"old".to_vec());
        earlier.put("m", "kept", b"same".to_vec());
        let mut later = WriteSet::new();
        later.delete("m", "k");
        earlier.merge(&later);
        assert_eq!(earlier.get("m", "k"), Some(None));
        assert_eq!(earlier.get("m", "kept"), Some(Some(&b"same"[..])));
    }
}
