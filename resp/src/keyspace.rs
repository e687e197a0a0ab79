//! Walking the key space of the committed state: `SCAN`, `KEYS`, `DBSIZE`.
//!
//! The state is hash tables, not a sorted tree, so a SCAN cursor cannot be a
//! position. It is a point on a fixed 64-bit hash of the key (FNV-1a): each
//! step answers the keys whose hash is at or after the cursor, smallest hash
//! first, up to COUNT (and every key sharing the last hash), and the next
//! cursor is just past the last hash. So, as Redis promises, a key present
//! for a whole iteration is returned, exactly once, whatever is written
//! meanwhile; and a cursor means the same on every node and after a restart.
//! A step walks the whole committed state (O(keys), without the state's lock).

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use stele_frontends::redis::{key_bytes, HASHES_MAP, STRINGS_MAP};
use stele_kv::Frozen;

use crate::request::{KeyKind, Scan};

/// The 64-bit FNV-1a hash of a key: the SCAN order. Fixed (not a seeded
/// hasher) so that cursors survive restarts and failovers.
fn scan_hash(key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Every Redis key of the committed state with its type.
fn keys(frozen: &Frozen) -> impl Iterator<Item = (Vec<u8>, KeyKind)> + '_ {
    let strings = frozen
        .entries_of(STRINGS_MAP)
        .map(|(name, _)| (name, KeyKind::String));
    let hashes = frozen
        .entries_of(HASHES_MAP)
        .map(|(name, _)| (name, KeyKind::Hash));
    // A name that does not decode was not written over RESP (e.g. by the
    // JSON language, which cannot write such names): skip it.
    strings
        .chain(hashes)
        .filter_map(|(name, kind)| key_bytes(name).map(|key| (key, kind)))
}

/// `DBSIZE`: the number of Redis keys.
pub(crate) fn count(frozen: &Frozen) -> usize {
    keys(frozen).count()
}

/// Why a walk stopped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalkStopped {
    /// KEYS matched more than its bound.
    TooManyKeys,
    /// The walk ran past its deadline ([`crate::limits::RESP_WALK_TIME_MAX_MS`]).
    TooLong,
}

/// A walk's deadline, read from the clock once every [`Deadline::EVERY`] keys.
pub(crate) struct Deadline {
    at: Instant,
    calls: u32,
}

impl Deadline {
    const EVERY: u32 = 1024;

    /// A deadline `limit` from now.
    pub(crate) fn after(limit: Duration) -> Self {
        Deadline {
            at: Instant::now() + limit,
            calls: 0,
        }
    }

    fn check(&mut self) -> Result<(), WalkStopped> {
        self.calls = self.calls.wrapping_add(1);
        if self.calls.is_multiple_of(Self::EVERY) && Instant::now() > self.at {
            return Err(WalkStopped::TooLong);
        }
        Ok(())
    }
}

/// `KEYS pattern`: every matching key, unless more than `max` match.
pub(crate) fn matching(
    frozen: &Frozen,
    pattern: &[u8],
    max: usize,
    deadline: &mut Deadline,
) -> Result<Vec<Vec<u8>>, WalkStopped> {
    let mut found = Vec::new();
    for (key, _) in keys(frozen) {
        deadline.check()?;
        if glob_match(pattern, &key) {
            if found.len() == max {
                return Err(WalkStopped::TooManyKeys);
            }
            found.push(key);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// One SCAN step: the next cursor (0 when done) and the keys.
pub(crate) fn scan(
    frozen: &Frozen,
    scan: &Scan,
    deadline: &mut Deadline,
) -> Result<(u64, Vec<Vec<u8>>), WalkStopped> {
    debug_assert!(scan.count >= 1);
    // The `count` smallest (hash, key) at or after the cursor, in a max-heap.
    // `ceiling`: the smallest hash left out; every key hashed in
    // [cursor, ceiling) stays in the heap, so the next cursor is the ceiling.
    let mut smallest: BinaryHeap<(u64, Vec<u8>, bool)> = BinaryHeap::new();
    let mut ceiling: Option<u64> = None;
    for (key, kind) in keys(frozen) {
        deadline.check()?;
        let hash = scan_hash(&key);
        if hash < scan.cursor || ceiling.is_some_and(|ceiling| hash >= ceiling) {
            continue;
        }
        let wanted = scan.kind.is_none_or(|wanted| wanted == kind)
            && scan
                .pattern
                .as_deref()
                .is_none_or(|pattern| glob_match(pattern, &key));
        smallest.push((hash, key, wanted));
        if smallest.len() > scan.count {
            // Leave out the whole group of the largest hash (a step takes all
            // keys of a hash or none), unless it is all there is.
            let top = smallest
                .peek()
                .map(|(hash, ..)| *hash)
                .expect("the heap is not empty");
            let mut group = Vec::new();
            while smallest.peek().is_some_and(|(hash, ..)| *hash == top) {
                group.extend(smallest.pop());
            }
            if smallest.is_empty() {
                smallest.extend(group);
            } else {
                ceiling = Some(top);
            }
        }
    }
    debug_assert!(ceiling.is_none_or(|ceiling| ceiling > scan.cursor));
    let mut step: Vec<(u64, Vec<u8>, bool)> = smallest.into_vec();
    step.sort_unstable();
    let keys = step
        .into_iter()
        .filter(|(_, _, wanted)| *wanted)
        .map(|(_, key, _)| key)
        .collect();
    Ok((ceiling.unwrap_or(0), keys))
}

/// Redis's glob (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, and
/// `\` escaping the next byte; byte-wise. Redis's own dialect, which path
/// globbing crates do not speak (they treat `/` apart, or work on UTF-8).
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`: O(len^2) worst
    // case, no recursion (patterns come from clients).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, end)) = class_match(pattern, p, text[t]) {
                        if matched {
                            p = end;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                literal => {
                    if literal == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

/// Matches `byte` against the class opening at `pattern[open] == b'['`:
/// whether it matched and the index after the class. An unclosed class runs
/// to the end of the pattern, as in Redis.
fn class_match(pattern: &[u8], open: usize, byte: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == byte;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (low, high) = (
                pattern[i].min(pattern[i + 2]),
                pattern[i].max(pattern[i + 2]),
            );
            matched |= (low..=high).contains(&byte);
            i += 3;
        } else {
            matched |= pattern[i] == byte;
            i += 1;
        }
    }
    let end = (i + 1).min(pattern.len());
    Some((matched != negate, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_frontends::redis::key_name;
    use stele_kv::{Store, WriteSet};

    fn unbounded() -> Deadline {
        Deadline::after(Duration::from_secs(3600))
    }

    fn frozen_with(keys: &[&[u8]]) -> Frozen {
        let mut store = Store::new();
        let mut write_set = WriteSet::new();
        for key in keys {
            write_set.put(STRINGS_MAP, &key_name(key), b"v".to_vec());
        }
        write_set.put(HASHES_MAP, &key_name(b"h"), b"encoded".to_vec());
        store.apply(1, &write_set).unwrap();
        store.commit(1).unwrap();
        store.freeze(1).unwrap()
    }

    #[test]
    fn globs_follow_redis() {
        for (pattern, text, expected) in [
            (&b"*"[..], &b""[..], true),
            (b"a*", b"abc", true),
            (b"a*c", b"abbbc", true),
            (b"a*c", b"abbb", false),
            (b"h?llo", b"hallo", true),
            (b"h[ae]llo", b"hello", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[b-a]llo", b"hbllo", true),
            (b"\\*", b"*", true),
            (b"\\*", b"a", false),
            (b"*\xff", b"k\xff", true),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern:?} {text:?}");
        }
    }

    #[test]
    fn a_full_scan_returns_every_key_once_whatever_the_count() {
        let names: Vec<Vec<u8>> = (0..200u32).map(|i| format!("k{i}").into_bytes()).collect();
        let mut keys: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        keys.push(b"\xff\x00binary");
        let frozen = frozen_with(&keys);
        for count in [1, 7, 10, 500] {
            let mut cursor = 0;
            let mut seen = Vec::new();
            let mut steps = 0;
            loop {
                let (next, found) = scan(
                    &frozen,
                    &Scan {
                        cursor,
                        pattern: None,
                        count,
                        kind: None,
                    },
                    &mut unbounded(),
                )
                .unwrap();
                assert!(found.len() <= count);
                seen.extend(found);
                steps += 1;
                assert!(steps < 1000, "the scan must end");
                if next == 0 {
                    break;
                }
                assert!(next > cursor, "cursors move forward");
                cursor = next;
            }
            seen.sort_unstable();
            let mut expected: Vec<Vec<u8>> = keys.iter().map(|key| key.to_vec()).collect();
            expected.push(b"h".to_vec());
            expected.sort_unstable();
            assert_eq!(seen, expected, "count {count}");
        }
        assert_eq!(count(&frozen), keys.len() + 1);
    }

    #[test]
    fn scan_filters_by_type_and_pattern_and_keys_is_bounded() {
        let frozen = frozen_with(&[b"a1", b"a2", b"b1"]);
        let (next, found) = scan(
            &frozen,
            &Scan {
                cursor: 0,
                pattern: None,
                count: 100,
                kind: Some(KeyKind::Hash),
            },
            &mut unbounded(),
        )
        .unwrap();
        assert_eq!((next, found), (0, vec![b"h".to_vec()]));
        let (_, mut found) = scan(
            &frozen,
            &Scan {
                cursor: 0,
                pattern: Some(b"a*".to_vec()),
                count: 100,
                kind: None,
            },
            &mut unbounded(),
        )
        .unwrap();
        found.sort_unstable();
        assert_eq!(found, vec![b"a1".to_vec(), b"a2".to_vec()]);
        assert_eq!(
            matching(&frozen, b"a*", 10, &mut unbounded()),
            Ok(vec![b"a1".to_vec(), b"a2".to_vec()])
        );
        assert_eq!(
            matching(&frozen, b"*", 2, &mut unbounded()),
            Err(WalkStopped::TooManyKeys)
        );
        // A walk past its deadline stops (checked every Deadline::EVERY keys).
        let names: Vec<Vec<u8>> = (0..3000u32).map(|i| format!("k{i}").into_bytes()).collect();
        let keys: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let many = frozen_with(&keys);
        let mut expired = Deadline::after(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            matching(&many, b"*", 10_000, &mut expired),
            Err(WalkStopped::TooLong)
        );
    }
}
