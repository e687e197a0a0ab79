//! [`Column`]: an append-only, truncatable sequence stored in fixed chunks,
//! whose oldest chunks can be forgotten; the tree's levels ([`HashColumn`])
//! are columns.
//!
//! Why chunks: a single `Vec` holding hundreds of millions of hashes doubles
//! its capacity when it grows, copying gigabytes and keeping up to twice the
//! memory it needs, all in one push: at 2^19 transactions, the push that grew
//! the history's 32 MB of transaction digests stalled a batch for 60-90 ms
//! (`bench/snapshot-stall.sh`). Fixed chunks are never moved, and the slack is
//! at most one chunk per column.

use crate::Digest;

/// Bytes per chunk (64 KiB): 2 Ki digests. Small enough that forgetting
/// whole chunks keeps little more than asked; large enough that the list of
/// chunks stays short (about 300 of them per GiB).
const CHUNK_BYTES: usize = 1 << 16;

/// The tree's levels: columns of digests.
pub(crate) type HashColumn = Column<Digest>;

/// An append-only, truncatable sequence of `T`, in chunks of about 64 KiB.
/// `chunks[0][0]` is item `base`: the items before it were forgotten
/// ([`Column::forget_before`]) or never held ([`Column::starting_at`]).
#[derive(Debug, Clone)]
pub struct Column<T> {
    chunks: Vec<Vec<T>>,
    base: u64,
    len: u64,
}

impl<T> Default for Column<T> {
    fn default() -> Self {
        Column {
            chunks: Vec::new(),
            base: 0,
            len: 0,
        }
    }
}

impl<T: Copy> Column<T> {
    /// Items per chunk: as many as fit in [`CHUNK_BYTES`], at least one.
    const CHUNK_LEN: usize = {
        let size = std::mem::size_of::<T>();
        if size == 0 || size >= CHUNK_BYTES {
            1
        } else {
            CHUNK_BYTES / size
        }
    };

    /// A column of `len` items none of which is held: the next one appended
    /// is item `len` (a tree restored from a snapshot's frontier).
    pub fn starting_at(len: u64) -> Self {
        Column {
            chunks: Vec::new(),
            base: len,
            len,
        }
    }

    /// Number of items appended (forgotten ones included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The first index still held.
    pub fn first_held(&self) -> u64 {
        self.base
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The item at `index`, if it is held (`first_held() <= index < len()`).
    pub fn get(&self, index: u64) -> Option<T> {
        if index >= self.len {
            return None;
        }
        let offset = usize::try_from(index.checked_sub(self.base)?).ok()?;
        Some(self.chunks[offset / Self::CHUNK_LEN][offset % Self::CHUNK_LEN])
    }

    /// The first index in `[first_held(), len())` whose item fails `pred`
    /// (`len()` if none), for a `pred` true on a prefix: a binary search.
    pub fn partition_point(&self, pred: impl Fn(&T) -> bool) -> u64 {
        let (mut low, mut high) = (self.base, self.len);
        while low < high {
            let middle = low + (high - low) / 2;
            if pred(&self.get(middle).expect("first_held <= middle < len")) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// Frees the whole chunks below `index` (never the one holding it, nor
    /// the last chunk): memory bounded by what is still held.
    pub fn forget_before(&mut self, index: u64) {
        let offset = index.min(self.len).saturating_sub(self.base);
        let whole =
            usize::try_from(offset / Self::CHUNK_LEN as u64).expect("fewer chunks than memory");
        let dropped = whole.min(self.chunks.len().saturating_sub(1));
        if dropped == 0 {
            return;
        }
        self.chunks.drain(..dropped);
        self.base += (dropped * Self::CHUNK_LEN) as u64;
    }

    /// Appends `items` in order.
    pub fn extend_from_slice(&mut self, mut items: &[T]) {
        while !items.is_empty() {
            let room = match self.chunks.last() {
                Some(chunk) if chunk.len() < Self::CHUNK_LEN => Self::CHUNK_LEN - chunk.len(),
                _ => {
                    self.chunks.push(Vec::with_capacity(Self::CHUNK_LEN));
                    Self::CHUNK_LEN
                }
            };
            let (now, rest) = items.split_at(room.min(items.len()));
            self.chunks
                .last_mut()
                .expect("a chunk with room was ensured above")
                .extend_from_slice(now);
            self.len += now.len() as u64;
            items = rest;
        }
    }

    /// Keeps the first `len` items and frees the chunks past them. `len`
    /// must not be below [`Column::first_held`] (the caller checks it).
    pub fn truncate(&mut self, len: u64) {
        if len >= self.len {
            return;
        }
        debug_assert!(len >= self.base, "truncating into forgotten chunks");
        let offset =
            usize::try_from(len.saturating_sub(self.base)).expect("held items fit in memory");
        let chunks_kept = offset.div_ceil(Self::CHUNK_LEN);
        self.chunks.truncate(chunks_kept);
        if let Some(last) = self.chunks.last_mut() {
            last.truncate(offset - (chunks_kept - 1) * Self::CHUNK_LEN);
        }
        self.len = len.max(self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(i: u64) -> Digest {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_le_bytes());
        Digest(bytes)
    }

    #[test]
    fn extends_across_chunks_and_truncates_back() {
        let mut column = HashColumn::default();
        let chunk = HashColumn::CHUNK_LEN;
        assert_eq!(chunk, 1 << 11);
        let all: Vec<Digest> = (0..(2 * chunk as u64 + 7)).map(digest).collect();
        column.extend_from_slice(&all[..5]);
        column.extend_from_slice(&all[5..]);
        assert_eq!(column.len(), all.len() as u64);
        for i in [0, 4, 5, chunk as u64, all.len() as u64 - 1] {
            assert_eq!(column.get(i), Some(all[i as usize]));
        }
        column.truncate(chunk as u64);
        assert_eq!(column.len(), chunk as u64);
        assert_eq!(column.chunks.len(), 1);
        column.extend_from_slice(&[digest(99)]);
        assert_eq!(column.get(chunk as u64), Some(digest(99)));
        assert_eq!(column.get(chunk as u64 + 1), None);
        column.truncate(0);
        assert_eq!(column.len(), 0);
        assert!(column.chunks.is_empty());
    }

    #[test]
    fn forgets_whole_chunks_only_and_keeps_the_rest() {
        let mut column = HashColumn::default();
        let chunk = HashColumn::CHUNK_LEN as u64;
        let all: Vec<Digest> = (0..(3 * chunk + 5)).map(digest).collect();
        column.extend_from_slice(&all);
        column.forget_before(chunk - 1);
        assert_eq!(column.first_held(), 0, "the chunk holding the index stays");
        column.forget_before(2 * chunk + 1);
        assert_eq!(column.first_held(), 2 * chunk);
        assert_eq!(column.chunks.len(), 2);
        assert_eq!(column.get(2 * chunk - 1), None, "forgotten");
        assert_eq!(column.get(2 * chunk), Some(all[2 * chunk as usize]));
        assert_eq!(column.len(), all.len() as u64);
        let value = |d: &Digest| u64::from_le_bytes(d.0[..8].try_into().unwrap());
        assert_eq!(column.partition_point(|d| value(d) < 3 * chunk), 3 * chunk);
        assert_eq!(
            column.partition_point(|d| value(d) < 5),
            2 * chunk,
            "from the held start"
        );
        // Forgetting everything keeps the last chunk.
        column.forget_before(u64::MAX);
        assert_eq!(column.first_held(), 3 * chunk);
        assert_eq!(column.get(3 * chunk + 4), Some(all[all.len() - 1]));
        // Truncating to the held start, then appending, lands at the right index.
        column.truncate(3 * chunk);
        assert_eq!(column.len(), 3 * chunk);
        column.extend_from_slice(&[digest(7)]);
        assert_eq!(column.get(3 * chunk), Some(digest(7)));
        assert_eq!(column.first_held(), 3 * chunk);
    }
}
