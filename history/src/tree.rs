//! [`MerkleTree`]: the append-only RFC 9162 tree, its roots and its proofs.
//!
//! Storage: level 0 (the leaf hashes) and every level from
//! [`STORED_LEVEL_MIN`] up are kept; levels 1 to `STORED_LEVEL_MIN - 1` are
//! recomputed on demand from the leaves (at most 7 hashes per node). That is
//! 32 + 32/16 + 32/32 + ... = 36 bytes per leaf, and any node of any past tree
//! is at most a handful of hashes away, so proofs against any past size cost
//! microseconds.
//!
//! Node `(level, index)` is the root of the perfect subtree over leaves
//! `[index << level, (index + 1) << level)`; it exists once the tree has that
//! many leaves and never changes after, which is what makes the tree
//! append-only.

use rayon::prelude::*;

use crate::hash::{empty_root, leaf_hash, node_hash};
use crate::levels::HashColumn;
use crate::{Digest, HistoryError};

/// The lowest interior level kept in memory (see the module doc).
pub const STORED_LEVEL_MIN: u32 = 4;

/// Below this many hashes a level is hashed on the calling thread: splitting
/// work across rayon costs more than a few hundred hashes.
const PARALLEL_HASHES_MIN: usize = 64;

/// Levels of a tree of fewer than 2^64 leaves: 0 (leaves) to 63.
const LEVELS_MAX: u32 = 64;

/// An append-only Merkle tree with RFC 9162 hashing and shape.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// `levels[l]` holds the complete nodes of level `l`; levels 1 to
    /// `STORED_LEVEL_MIN - 1` stay empty.
    levels: Vec<HashColumn>,
}

impl Default for MerkleTree {
    fn default() -> Self {
        Self::new()
    }
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        MerkleTree {
            levels: vec![HashColumn::default()],
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels[0].len()
    }

    /// Appends one leaf (its bytes, hashed here) and returns its index.
    pub fn append(&mut self, leaf: &[u8]) -> u64 {
        self.append_leaf_hashes(&[leaf_hash(leaf)]);
        self.size() - 1
    }

    /// Appends a batch of leaves. Their leaf hashes and the subtrees they
    /// complete are hashed in parallel on the current rayon pool.
    pub fn append_batch<L: AsRef<[u8]> + Sync>(&mut self, leaves: &[L]) {
        let hashes = map_maybe_parallel(leaves.len(), |i| leaf_hash(leaves[i].as_ref()));
        self.append_leaf_hashes(&hashes);
    }

    /// Appends leaves whose RFC 9162 leaf hashes are already computed.
    pub fn append_leaf_hashes(&mut self, hashes: &[Digest]) {
        let old_size = self.size();
        let new_size = old_size + hashes.len() as u64;
        self.levels[0].extend_from_slice(hashes);
        // `below` holds the nodes of the level under `level` that this batch
        // created, starting at index `below_start`.
        let mut below: Vec<Digest> = hashes.to_vec();
        let mut below_start = old_size;
        for level in 1..LEVELS_MAX {
            let start = old_size >> level;
            let end = new_size >> level;
            if start == end {
                break; // No new node here means none above either.
            }
            let child = |index: u64| -> Digest {
                if index >= below_start {
                    below[usize::try_from(index - below_start).expect("index within batch")]
                } else {
                    // Only the left sibling of the batch's first node can be
                    // older than the batch.
                    self.node(level - 1, index)
                }
            };
            let count = usize::try_from(end - start).expect("new nodes fit in memory");
            let created = map_maybe_parallel(count, |i| {
                let index = start + i as u64;
                node_hash(&child(2 * index), &child(2 * index + 1))
            });
            if level >= STORED_LEVEL_MIN {
                if self.levels.len() <= level as usize {
                    self.levels
                        .resize_with(level as usize + 1, HashColumn::default);
                }
                self.levels[level as usize].extend_from_slice(&created);
            }
            below = created;
            below_start = start;
        }
        debug_assert_eq!(self.size(), new_size);
    }

    /// Removes every leaf at and after `size` (rollback of a speculative
    /// suffix). The tree is then exactly the tree of its first `size` leaves.
    pub fn truncate(&mut self, size: u64) -> Result<(), HistoryError> {
        self.check_size(size)?;
        for (level, column) in self.levels.iter_mut().enumerate() {
            column.truncate(size >> level);
        }
        Ok(())
    }

    /// The root of the current tree.
    pub fn root(&self) -> Digest {
        self.root_at(self.size())
            .expect("the current size is never beyond the tree")
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Digest, HistoryError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.subtree(0, size))
    }

    /// The leaf hash at `leaf_index`.
    pub fn leaf_hash(&self, leaf_index: u64) -> Result<Digest, HistoryError> {
        if leaf_index >= self.size() {
            return Err(HistoryError::LeafIndexOutOfRange {
                leaf_index,
                tree_size: self.size(),
            });
        }
        Ok(self.levels[0]
            .get(leaf_index)
            .expect("leaf_index < size, checked above"))
    }

    /// The RFC 9162 inclusion path of leaf `leaf_index` in the tree of the
    /// first `tree_size` leaves, from the leaf's sibling up to the root's child.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Digest>, HistoryError> {
        self.check_size(tree_size)?;
        if leaf_index >= tree_size {
            return Err(HistoryError::LeafIndexOutOfRange {
                leaf_index,
                tree_size,
            });
        }
        let mut path = Vec::with_capacity(64);
        self.path(leaf_index, 0, tree_size, &mut path);
        Ok(path)
    }

    /// The RFC 9162 consistency proof between the trees of sizes `from` and
    /// `to`. It is empty when `from == to` or `from == 0` (every tree extends
    /// the empty tree).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Digest>, HistoryError> {
        self.check_size(to)?;
        if from > to {
            return Err(HistoryError::ConsistencyRange { from, to });
        }
        let mut proof = Vec::with_capacity(64);
        if from > 0 && from < to {
            self.subproof(from, 0, to, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, requested: u64) -> Result<(), HistoryError> {
        if requested > self.size() {
            return Err(HistoryError::TreeSizeBeyondTree {
                requested,
                tree_size: self.size(),
            });
        }
        Ok(())
    }

    /// Node `(level, index)`, which must be complete.
    fn node(&self, level: u32, index: u64) -> Digest {
        if level == 0 || level >= STORED_LEVEL_MIN {
            // A node out of range is a bug in the index arithmetic.
            self.levels[level as usize]
                .get(index)
                .expect("a complete node is stored")
        } else {
            node_hash(
                &self.node(level - 1, 2 * index),
                &self.node(level - 1, 2 * index + 1),
            )
        }
    }

    /// MTH(D[start:end]) for a range the RFC recursion produces: `start` is a
    /// multiple of the smallest power of two >= `end - start`.
    fn subtree(&self, start: u64, end: u64) -> Digest {
        let width = end - start;
        debug_assert!(width > 0 && start.is_multiple_of(width.next_power_of_two()));
        if width.is_power_of_two() {
            let level = width.trailing_zeros();
            return self.node(level, start >> level);
        }
        let split = split_point(width);
        node_hash(
            &self.subtree(start, start + split),
            &self.subtree(start + split, end),
        )
    }

    /// PATH(m, D[start:end]) of RFC 9162 2.1.3.1, `m` relative to `start`.
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Digest>) {
        let width = end - start;
        if width <= 1 {
            return;
        }
        let split = split_point(width);
        if m < split {
            self.path(m, start, start + split, out);
            out.push(self.subtree(start + split, end));
        } else {
            self.path(m - split, start + split, end, out);
            out.push(self.subtree(start, start + split));
        }
    }

    /// SUBPROOF(m, D[start:end], b) of RFC 9162 2.1.4.1, `m` relative to `start`.
    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Digest>) {
        let width = end - start;
        if m == width {
            if !whole {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let split = split_point(width);
        if m <= split {
            self.subproof(m, start, start + split, whole, out);
            out.push(self.subtree(start + split, end));
        } else {
            self.subproof(m - split, start + split, end, false, out);
            out.push(self.subtree(start, start + split));
        }
    }
}

/// The largest power of two smaller than `width` (RFC 9162's `k`), width >= 2.
pub(crate) fn split_point(width: u64) -> u64 {
    debug_assert!(width >= 2);
    1 << (63 - (width - 1).leading_zeros())
}

/// `(0..count).map(f)`, on the rayon pool when there is enough work.
fn map_maybe_parallel<F>(count: usize, f: F) -> Vec<Digest>
where
    F: Fn(usize) -> Digest + Sync + Send,
{
    if count < PARALLEL_HASHES_MIN {
        (0..count).map(f).collect()
    } else {
        (0..count)
            .into_par_iter()
            .with_min_len(PARALLEL_HASHES_MIN / 2)
            .map(f)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_the_largest_smaller_power_of_two() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
        assert_eq!(split_point((1 << 40) + 1), 1 << 40);
    }

    #[test]
    fn errors_instead_of_panics_on_bad_sizes() {
        let mut tree = MerkleTree::new();
        tree.append_batch(&[b"a", b"b", b"c"]);
        assert_eq!(
            tree.root_at(4),
            Err(HistoryError::TreeSizeBeyondTree {
                requested: 4,
                tree_size: 3
            })
        );
        assert_eq!(
            tree.inclusion_proof(3, 3),
            Err(HistoryError::LeafIndexOutOfRange {
                leaf_index: 3,
                tree_size: 3
            })
        );
        assert_eq!(
            tree.consistency_proof(3, 2),
            Err(HistoryError::ConsistencyRange { from: 3, to: 2 })
        );
        assert!(tree.consistency_proof(1, 4).is_err());
        assert!(tree.truncate(4).is_err());
        assert!(tree.leaf_hash(3).is_err());
    }

    #[test]
    fn truncate_then_append_equals_never_having_appended() {
        let leaves: Vec<Vec<u8>> = (0u32..1000).map(|i| i.to_le_bytes().to_vec()).collect();
        let mut tree = MerkleTree::new();
        tree.append_batch(&leaves[..700]);
        let root_700 = tree.root();
        tree.append_batch(&leaves[700..]);
        tree.truncate(700).unwrap();
        assert_eq!(tree.size(), 700);
        assert_eq!(tree.root(), root_700);
        tree.append_batch(&leaves[700..]);
        let mut straight = MerkleTree::new();
        straight.append_batch(&leaves);
        assert_eq!(tree.root(), straight.root());
        assert_eq!(
            tree.inclusion_proof(3, 1000).unwrap(),
            straight.inclusion_proof(3, 1000).unwrap()
        );
    }
}
