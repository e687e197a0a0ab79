//! What one entry of the state holds, compactly: its [`Name`] (`map || key`)
//! and its [`Value`], each inline in the hash table when short and shared
//! (`Arc`) beyond.
//!
//! Why: a lookup in a state of 100 k+ keys is bound by cache misses. With the
//! name and the value in heap allocations of their own, a lookup that finds
//! its entry missed once for the name and once more for the value
//! (`perf record` of the execution benchmark: 45-54% of its time in the key
//! comparison). Inline, it reads the cache line it probed and no other. A
//! clone, for a snapshot or an undo record, copies a few bytes or counts a
//! reference; it never copies a long name or value.
//!
//! Invariant: a [`Value`] of at most [`VALUE_INLINE_BYTES`] is always inline,
//! a longer one always shared; equality compares bytes either way.

use std::sync::Arc;

use smol_str::{SmolStr, SmolStrBuilder};

/// A (map, key) pair as one string, `map || key`, and where the map ends.
/// Short names (at most [`SmolStr::INLINE_CAP`], 23 bytes) sit inline in the
/// entry, longer ones in one shared allocation: a lookup that finds its entry
/// compares bytes already in the cache line it probed, where a heap key cost
/// a cache miss of its own (the execution benchmark is bound by those misses),
/// and a snapshot shares a long name with one reference count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    text: SmolStr,
    map_bytes: u32,
}

impl Name {
    pub(crate) fn new(map: &str, key: &str) -> Self {
        let mut text = SmolStrBuilder::with_capacity(map.len() + key.len());
        text.push_str(map);
        text.push_str(key);
        let map_bytes = u32::try_from(map.len()).expect("map names are bounded far below 4 GiB");
        Name {
            text: text.finish(),
            map_bytes,
        }
    }

    /// The map's and the key's bytes. Compared as a pair, they order names by
    /// (map, key) byte-wise, as `str`s order.
    pub(crate) fn parts(&self) -> (&[u8], &[u8]) {
        self.text.as_bytes().split_at(self.map_bytes as usize)
    }

    /// The map and the key (split where the map ended: a char boundary).
    pub(crate) fn strs(&self) -> (&str, &str) {
        self.text.split_at(self.map_bytes as usize)
    }

    /// True if this is the name of `key` in `map` (the key first: it differs
    /// more often).
    pub(crate) fn is(&self, map: &str, key: &str) -> bool {
        let (own_map, own_key) = self.parts();
        own_key == key.as_bytes() && own_map == map.as_bytes()
    }
}

/// Longest value kept inline: a [`Value`] is 24 bytes either way (1 tag, 1
/// length, 22 bytes; or a shared pointer and length).
pub(crate) const VALUE_INLINE_BYTES: usize = 22;

/// A value's bytes: inline up to [`VALUE_INLINE_BYTES`], shared beyond. (No
/// maintained crate keeps bytes inline with an `Arc` fallback: `smallvec`
/// copies on clone, `bytes::Bytes` is never inline, `smol_str` holds text.)
#[derive(Clone)]
pub(crate) enum Value {
    Inline {
        length: u8,
        bytes: [u8; VALUE_INLINE_BYTES],
    },
    Shared(Arc<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Value>() == 24);

impl Value {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        match u8::try_from(bytes.len()) {
            Ok(length) if bytes.len() <= VALUE_INLINE_BYTES => {
                let mut inline = [0; VALUE_INLINE_BYTES];
                inline[..bytes.len()].copy_from_slice(bytes);
                Value::Inline {
                    length,
                    bytes: inline,
                }
            }
            _ => Value::Shared(Arc::from(bytes)),
        }
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Value::Inline { length, bytes } => &bytes[..usize::from(*length)],
            Value::Shared(bytes) => bytes,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Value {}

impl std::fmt::Debug for Value {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_tuple("Value").field(&&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_inline_up_to_its_bound_and_shared_beyond() {
        for length in [0, 1, VALUE_INLINE_BYTES, VALUE_INLINE_BYTES + 1, 300] {
            let bytes: Vec<u8> = (0..length).map(|i| i as u8 ^ 0x5a).collect();
            let value = Value::new(&bytes);
            assert_eq!(&*value, &bytes[..]);
            assert_eq!(
                matches!(value, Value::Inline { .. }),
                length <= VALUE_INLINE_BYTES,
                "{length} bytes"
            );
            let clone = value.clone();
            assert_eq!(clone, value);
        }
        assert_ne!(Value::new(b"a"), Value::new(b"b"));
        assert_ne!(Value::new(b"a"), Value::new(b"a\0"));
    }
}
