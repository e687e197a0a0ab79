//! [`HashColumn`]: an append-only column of digests stored in fixed chunks.
//!
//! Why chunks: a single `Vec` holding hundreds of millions of hashes doubles
//! its capacity when it grows, copying gigabytes and keeping up to twice the
//! memory it needs. Fixed chunks are never moved, and the slack is at most one
//! chunk per column.

use crate::Digest;

/// Digests per chunk: 32 Ki digests = 1 MiB.
pub(crate) const CHUNK_DIGESTS: usize = 1 << 15;

/// An append-only, truncatable sequence of digests.
#[derive(Debug, Default, Clone)]
pub(crate) struct HashColumn {
    chunks: Vec<Vec<Digest>>,
    len: u64,
}

impl HashColumn {
    /// Number of digests held.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The digest at `index`. The caller guarantees `index < len()`; a
    /// violation is a bug in the tree's index arithmetic, hence the panic.
    pub(crate) fn get(&self, index: u64) -> Digest {
        assert!(
            index < self.len,
            "hash column index {index} >= {}",
            self.len
        );
        let index = usize::try_from(index).expect("index < len, and len fits in memory");
        self.chunks[index / CHUNK_DIGESTS][index % CHUNK_DIGESTS]
    }

    /// Appends `digests` in order.
    pub(crate) fn extend_from_slice(&mut self, mut digests: &[Digest]) {
        while !digests.is_empty() {
            let room = match self.chunks.last() {
                Some(chunk) if chunk.len() < CHUNK_DIGESTS => CHUNK_DIGESTS - chunk.len(),
                _ => {
                    self.chunks.push(Vec::with_capacity(CHUNK_DIGESTS));
                    CHUNK_DIGESTS
                }
            };
            let (now, rest) = digests.split_at(room.min(digests.len()));
            self.chunks
                .last_mut()
                .expect("a chunk with room was ensured above")
                .extend_from_slice(now);
            self.len += now.len() as u64;
            digests = rest;
        }
    }

    /// Keeps the first `len` digests and frees the chunks past them.
    pub(crate) fn truncate(&mut self, len: u64) {
        if len >= self.len {
            return;
        }
        let len_usize = usize::try_from(len).expect("len < self.len, which fits in memory");
        let chunks_kept = len_usize.div_ceil(CHUNK_DIGESTS);
        self.chunks.truncate(chunks_kept);
        if let Some(last) = self.chunks.last_mut() {
            let in_last = len_usize - (chunks_kept - 1) * CHUNK_DIGESTS;
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
        let all: Vec<Digest> = (0..(2 * CHUNK_DIGESTS as u64 + 7)).map(digest).collect();
        column.extend_from_slice(&all[..5]);
        column.extend_from_slice(&all[5..]);
        assert_eq!(column.len(), all.len() as u64);
        for i in [0, 4, 5, CHUNK_DIGESTS as u64, all.len() as u64 - 1] {
            assert_eq!(column.get(i), all[i as usize]);
        }
        column.truncate(CHUNK_DIGESTS as u64);
        assert_eq!(column.len(), CHUNK_DIGESTS as u64);
        assert_eq!(column.chunks.len(), 1);
        column.extend_from_slice(&[digest(99)]);
        assert_eq!(column.get(CHUNK_DIGESTS as u64), digest(99));
        column.truncate(0);
        assert_eq!(column.len(), 0);
        assert!(column.chunks.is_empty());
    }
}
