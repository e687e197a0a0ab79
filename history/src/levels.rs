//! [`Column`]: an append-only, truncatable sequence stored in fixed chunks;
//! the tree's levels ([`HashColumn`]) are columns.
//!
//! Why chunks: a single `Vec` holding hundreds of millions of hashes doubles
//! its capacity when it grows, copying gigabytes and keeping up to twice the
//! memory it needs, all in one push: at 2^19 transactions, the push that grew
//! the history's 32 MB of transaction digests stalled a batch for 60-90 ms
//! (`bench/snapshot-stall.sh`). Fixed chunks are never moved, and the slack is
//! at most one chunk per column.

use crate::Digest;

/// Bytes per chunk (1 MiB): 32 Ki digests.
const CHUNK_BYTES: usize = 1 << 20;

/// The tree's levels: columns of digests.
pub(crate) type HashColumn = Column<Digest>;

/// An append-only, truncatable sequence of `T`, in chunks of about 1 MiB.
#[derive(Debug, Clone)]
pub struct Column<T> {
    chunks: Vec<Vec<T>>,
    len: u64,
}

impl<T> Default for Column<T> {
    fn default() -> Self {
        Column {
            chunks: Vec::new(),
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

    /// Number of items held.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The item at `index`, if `index < len()`.
    pub fn get(&self, index: u64) -> Option<T> {
        if index >= self.len {
            return None;
        }
        let index = usize::try_from(index).ok()?;
        Some(self.chunks[index / Self::CHUNK_LEN][index % Self::CHUNK_LEN])
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

    /// Keeps the first `len` items and frees the chunks past them.
    pub fn truncate(&mut self, len: u64) {
        if len >= self.len {
            return;
        }
        let len_usize = usize::try_from(len).expect("len < self.len, which fits in memory");
        let chunks_kept = len_usize.div_ceil(Self::CHUNK_LEN);
        self.chunks.truncate(chunks_kept);
        if let Some(last) = self.chunks.last_mut() {
            let in_last = len_usize - (chunks_kept - 1) * Self::CHUNK_LEN;
            last.truncate(in_last);
        }
        self.len = len;
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
        assert_eq!(chunk, 1 << 15);
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
}
