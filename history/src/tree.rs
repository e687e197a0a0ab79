//! [`MerkleTree`]: the append-only RFC 9162 tree, its roots and its proofs.
//!
//! Storage: every level from [`TILE_HEIGHT`] up is kept (1/256 of a hash
//! per leaf, about 0.25 bytes); the levels below it (the leaf hashes and
//! the nodes inside each tile of [`TILE_LEAVES`] leaves) are kept only for
//! a recent window ([`MerkleTree::forget_before`] frees the older part).
//! A proof or root that needs a node below the window asks for its tile
//! ([`HistoryError::TileMissing`]); the caller reads those leaves back
//! (from the ledger), has them checked against the stored node above the
//! tile ([`MerkleTree::admit_tile`]) and asks again with them in [`Tiles`].
//!
//! Node `(level, index)` is the root of the perfect subtree over leaves
//! `[index << level, (index + 1) << level)`; it exists once the tree has that
//! many leaves and never changes after, which is what makes the tree
//! append-only.

use rayon::prelude::*;

use crate::hash::{empty_root, leaf_hash, node_hash};
use crate::levels::HashColumn;
use crate::{Digest, HistoryError};

/// Height of a tile: the levels below it can be forgotten, the ones from it
/// up are always kept.
pub const TILE_HEIGHT: u32 = 8;

/// Leaves per tile.
pub const TILE_LEAVES: u64 = 1 << TILE_HEIGHT;

/// Below this many hashes a level is hashed on the calling thread: splitting
/// work across rayon costs more than a few hundred hashes.
const PARALLEL_HASHES_MIN: usize = 64;

/// Levels of a tree of fewer than 2^64 leaves: 0 (leaves) to 63.
const LEVELS_MAX: u32 = 64;

/// Leaf hashes of whole tiles below the tree's window, read back by the
/// caller and checked by [`MerkleTree::admit_tile`].
#[derive(Debug, Default, Clone)]
pub struct Tiles {
    held: Vec<(u64, Vec<Digest>)>,
}

impl Tiles {
    /// No tiles: enough for anything inside the window.
    pub fn none() -> Self {
        Self::default()
    }

    fn get(&self, tile: u64) -> Option<&[Digest]> {
        self.held
            .iter()
            .find(|(held, _)| *held == tile)
            .map(|(_, leaves)| leaves.as_slice())
    }

    /// Number of tiles held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// What a snapshot keeps of the tree of its size: the nodes above every
/// complete tile (level [`TILE_HEIGHT`]) and the leaves after the last one.
/// Enough to rebuild a tree with the same root that appends and proves like
/// the original ([`MerkleTree::from_frontier`]); older leaves come from tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    /// Node `(TILE_HEIGHT, i)` for every complete tile `i`.
    pub tiles: Vec<Digest>,
    /// The leaf hashes after the last complete tile (fewer than a tile).
    pub edge: Vec<Digest>,
}

impl Frontier {
    /// The tree size it describes.
    pub fn size(&self) -> u64 {
        self.tiles.len() as u64 * TILE_LEAVES + self.edge.len() as u64
    }
}

/// An append-only Merkle tree with RFC 9162 hashing and shape.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// `levels[l]` holds the complete nodes of level `l`; below
    /// [`TILE_HEIGHT`], only from its `first_held()` on.
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

    /// The tree of `frontier.size()` leaves that `frontier` describes: levels
    /// from [`TILE_HEIGHT`] up rebuilt from its tile nodes, the lower levels
    /// held from its edge on. The caller checks its root against a signed
    /// checkpoint.
    pub fn from_frontier(frontier: &Frontier) -> Result<MerkleTree, HistoryError> {
        if frontier.edge.len() as u64 >= TILE_LEAVES {
            return Err(HistoryError::TileMismatch {
                tile: frontier.tiles.len() as u64,
                reason: "a frontier's edge must hold fewer leaves than a tile",
            });
        }
        let edge_start = frontier.tiles.len() as u64 * TILE_LEAVES;
        let mut levels: Vec<HashColumn> = (0..TILE_HEIGHT)
            .map(|level| HashColumn::starting_at(edge_start >> level))
            .collect();
        let mut below = frontier.tiles.clone();
        loop {
            let mut column = HashColumn::default();
            column.extend_from_slice(&below);
            levels.push(column);
            if below.len() < 2 {
                break;
            }
            below = parents(&below);
        }
        let mut tree = MerkleTree { levels };
        tree.append_leaf_hashes(&frontier.edge);
        debug_assert_eq!(tree.size(), frontier.size());
        Ok(tree)
    }

    /// The frontier of the tree of the first `size` leaves (its edge must be
    /// held: [`HistoryError::TileMissing`] otherwise).
    pub fn frontier(&self, size: u64) -> Result<Frontier, HistoryError> {
        self.check_size(size)?;
        let complete = size / TILE_LEAVES;
        let tiles = match self.levels.get(TILE_HEIGHT as usize) {
            Some(column) => (0..complete)
                .map(|tile| {
                    column
                        .get(tile)
                        .expect("levels from TILE_HEIGHT are all held")
                })
                .collect(),
            None => Vec::new(),
        };
        let edge = (complete * TILE_LEAVES..size)
            .map(|leaf| {
                self.levels[0]
                    .get(leaf)
                    .ok_or(HistoryError::TileMissing { tile: complete })
            })
            .collect::<Result<_, _>>()?;
        Ok(Frontier { tiles, edge })
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
                    // older than the batch, and the window always holds the
                    // tile of the tree's last leaf.
                    self.node(level - 1, index, &Tiles::none())
                        .expect("the window holds the right edge")
                }
            };
            let count = usize::try_from(end - start).expect("new nodes fit in memory");
            let created = map_maybe_parallel(count, |i| {
                let index = start + i as u64;
                node_hash(&child(2 * index), &child(2 * index + 1))
            });
            if self.levels.len() <= level as usize {
                self.levels
                    .resize_with(level as usize + 1, HashColumn::default);
            }
            self.levels[level as usize].extend_from_slice(&created);
            below = created;
            below_start = start;
        }
        debug_assert_eq!(self.size(), new_size);
    }

    /// Removes every leaf at and after `size` (rollback of a speculative
    /// suffix). The tree is then exactly the tree of its first `size` leaves.
    pub fn truncate(&mut self, size: u64) -> Result<(), HistoryError> {
        self.check_size(size)?;
        let window = self.window_start();
        if size < window {
            return Err(HistoryError::TruncateBelowWindow { size, window });
        }
        for (level, column) in self.levels.iter_mut().enumerate() {
            column.truncate(size >> level);
        }
        Ok(())
    }

    /// The root of the current tree.
    pub fn root(&self) -> Digest {
        self.root_at(self.size())
            .expect("the current size is never beyond the tree, and its edge is held")
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Digest, HistoryError> {
        self.root_at_with(size, &Tiles::none())
    }

    /// [`MerkleTree::root_at`], with `tiles` for what is below the window.
    pub fn root_at_with(&self, size: u64, tiles: &Tiles) -> Result<Digest, HistoryError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        self.subtree(0, size, tiles)
    }

    /// The leaf hash at `leaf_index`.
    pub fn leaf_hash(&self, leaf_index: u64) -> Result<Digest, HistoryError> {
        self.leaf_hash_with(leaf_index, &Tiles::none())
    }

    /// [`MerkleTree::leaf_hash`], with `tiles` for what is below the window.
    pub fn leaf_hash_with(&self, leaf_index: u64, tiles: &Tiles) -> Result<Digest, HistoryError> {
        if leaf_index >= self.size() {
            return Err(HistoryError::LeafIndexOutOfRange {
                leaf_index,
                tree_size: self.size(),
            });
        }
        self.node(0, leaf_index, tiles)
    }

    /// The RFC 9162 inclusion path of leaf `leaf_index` in the tree of the
    /// first `tree_size` leaves, from the leaf's sibling up to the root's child.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Digest>, HistoryError> {
        self.inclusion_proof_with(leaf_index, tree_size, &Tiles::none())
    }

    /// [`MerkleTree::inclusion_proof`], with `tiles` for what is below the window.
    pub fn inclusion_proof_with(
        &self,
        leaf_index: u64,
        tree_size: u64,
        tiles: &Tiles,
    ) -> Result<Vec<Digest>, HistoryError> {
        self.check_size(tree_size)?;
        if leaf_index >= tree_size {
            return Err(HistoryError::LeafIndexOutOfRange {
                leaf_index,
                tree_size,
            });
        }
        let mut path = Vec::with_capacity(64);
        self.path(leaf_index, 0, tree_size, tiles, &mut path)?;
        Ok(path)
    }

    /// The RFC 9162 consistency proof between the trees of sizes `from` and
    /// `to`. It is empty when `from == to` or `from == 0` (every tree extends
    /// the empty tree).
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Digest>, HistoryError> {
        self.consistency_proof_with(from, to, &Tiles::none())
    }

    /// [`MerkleTree::consistency_proof`], with `tiles` for what is below the
    /// window.
    pub fn consistency_proof_with(
        &self,
        from: u64,
        to: u64,
        tiles: &Tiles,
    ) -> Result<Vec<Digest>, HistoryError> {
        self.check_size(to)?;
        if from > to {
            return Err(HistoryError::ConsistencyRange { from, to });
        }
        let mut proof = Vec::with_capacity(64);
        if from > 0 && from < to {
            self.subproof(from, 0, to, true, tiles, &mut proof)?;
        }
        Ok(proof)
    }

    /// The first leaf from which every level is held: proofs and roots that
    /// touch only leaves from here on need no tile.
    pub fn window_start(&self) -> u64 {
        self.levels
            .iter()
            .take(TILE_HEIGHT as usize)
            .enumerate()
            .map(|(level, column)| column.first_held() << level)
            .max()
            .unwrap_or(0)
    }

    /// Frees the levels below [`TILE_HEIGHT`] under `leaf_index` (rounded
    /// down to whole memory chunks, and never past the tile of the last
    /// leaf, which appends need). Nodes there are then read from tiles.
    pub fn forget_before(&mut self, leaf_index: u64) {
        let last_tile_start = self.size() / TILE_LEAVES * TILE_LEAVES;
        let floor = leaf_index.min(last_tile_start) / TILE_LEAVES * TILE_LEAVES;
        for (level, column) in self
            .levels
            .iter_mut()
            .take(TILE_HEIGHT as usize)
            .enumerate()
        {
            column.forget_before(floor >> level);
        }
        debug_assert!(self.window_start() <= last_tile_start);
    }

    /// Checks that `leaves` are the leaf hashes of complete tile `tile` (their
    /// root is the stored node above it) and adds them to `tiles`.
    pub fn admit_tile(
        &self,
        tiles: &mut Tiles,
        tile: u64,
        leaves: Vec<Digest>,
    ) -> Result<(), HistoryError> {
        let stored = self
            .levels
            .get(TILE_HEIGHT as usize)
            .and_then(|column| column.get(tile));
        let Some(stored) = stored else {
            return Err(HistoryError::TileMismatch {
                tile,
                reason: "the tree has no complete tile there",
            });
        };
        if leaves.len() as u64 != TILE_LEAVES {
            return Err(HistoryError::TileMismatch {
                tile,
                reason: "not one leaf hash per leaf of the tile",
            });
        }
        if perfect_root(&leaves) != stored {
            return Err(HistoryError::TileMismatch {
                tile,
                reason: "its leaves do not hash to the tree's node above it",
            });
        }
        if tiles.get(tile).is_none() {
            tiles.held.push((tile, leaves));
        }
        Ok(())
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

    /// Node `(level, index)`, which must be complete: from the levels held,
    /// else (below the window) from its tile in `tiles`.
    fn node(&self, level: u32, index: u64, tiles: &Tiles) -> Result<Digest, HistoryError> {
        if let Some(held) = self.levels.get(level as usize).and_then(|c| c.get(index)) {
            return Ok(held);
        }
        // Levels from TILE_HEIGHT up are never forgotten: a miss there is a
        // bug in the index arithmetic.
        assert!(
            level < TILE_HEIGHT,
            "a complete node at level {level} is stored"
        );
        let first_leaf = index << level;
        let tile = first_leaf / TILE_LEAVES;
        let leaves = tiles.get(tile).ok_or(HistoryError::TileMissing { tile })?;
        let start = usize::try_from(first_leaf - tile * TILE_LEAVES).expect("within a tile");
        Ok(perfect_root(&leaves[start..start + (1 << level)]))
    }

    /// MTH(D[start:end]) for a range the RFC recursion produces: `start` is a
    /// multiple of the smallest power of two >= `end - start`.
    fn subtree(&self, start: u64, end: u64, tiles: &Tiles) -> Result<Digest, HistoryError> {
        let width = end - start;
        debug_assert!(width > 0 && start.is_multiple_of(width.next_power_of_two()));
        if width.is_power_of_two() {
            let level = width.trailing_zeros();
            return self.node(level, start >> level, tiles);
        }
        let split = split_point(width);
        Ok(node_hash(
            &self.subtree(start, start + split, tiles)?,
            &self.subtree(start + split, end, tiles)?,
        ))
    }

    /// PATH(m, D[start:end]) of RFC 9162 2.1.3.1, `m` relative to `start`.
    fn path(
        &self,
        m: u64,
        start: u64,
        end: u64,
        tiles: &Tiles,
        out: &mut Vec<Digest>,
    ) -> Result<(), HistoryError> {
        let width = end - start;
        if width <= 1 {
            return Ok(());
        }
        let split = split_point(width);
        if m < split {
            self.path(m, start, start + split, tiles, out)?;
            out.push(self.subtree(start + split, end, tiles)?);
        } else {
            self.path(m - split, start + split, end, tiles, out)?;
            out.push(self.subtree(start, start + split, tiles)?);
        }
        Ok(())
    }

    /// SUBPROOF(m, D[start:end], b) of RFC 9162 2.1.4.1, `m` relative to `start`.
    fn subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        tiles: &Tiles,
        out: &mut Vec<Digest>,
    ) -> Result<(), HistoryError> {
        let width = end - start;
        if m == width {
            if !whole {
                out.push(self.subtree(start, end, tiles)?);
            }
            return Ok(());
        }
        let split = split_point(width);
        if m <= split {
            self.subproof(m, start, start + split, whole, tiles, out)?;
            out.push(self.subtree(start + split, end, tiles)?);
        } else {
            self.subproof(m - split, start + split, end, false, tiles, out)?;
            out.push(self.subtree(start, start + split, tiles)?);
        }
        Ok(())
    }
}

/// The root of a perfect subtree given its leaf hashes (a power of two of them).
fn perfect_root(leaves: &[Digest]) -> Digest {
    debug_assert!(leaves.len().is_power_of_two());
    if let [leaf] = leaves {
        return *leaf;
    }
    let mut level = parents(leaves);
    while level.len() > 1 {
        level = parents(&level);
    }
    level[0]
}

/// The complete nodes one level above `children` (an odd last child has none).
fn parents(children: &[Digest]) -> Vec<Digest> {
    children
        .chunks_exact(2)
        .map(|pair| node_hash(&pair[0], &pair[1]))
        .collect()
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

    /// Runs `query` on `tree`, reading each missing tile from `leaves` (as a
    /// node reads them from its ledger), and returns the answer and the
    /// number of tiles it needed.
    fn with_tiles<R>(
        tree: &MerkleTree,
        leaves: &[Digest],
        query: impl Fn(&Tiles) -> Result<R, HistoryError>,
    ) -> (R, usize) {
        let mut tiles = Tiles::none();
        loop {
            match query(&tiles) {
                Err(HistoryError::TileMissing { tile }) => {
                    let start = (tile * TILE_LEAVES) as usize;
                    let read = leaves[start..start + TILE_LEAVES as usize].to_vec();
                    tree.admit_tile(&mut tiles, tile, read).unwrap();
                }
                other => return (other.unwrap(), tiles.len()),
            }
        }
    }

    #[test]
    fn a_tree_that_forgot_its_old_leaves_answers_the_same_with_tiles() {
        let count = 3 * 32_768 + 1_000;
        let leaves: Vec<Digest> = (0u32..count).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut full = MerkleTree::new();
        full.append_leaf_hashes(&leaves);
        let mut forgetful = full.clone();
        forgetful.forget_before(2 * 32_768 + 300);
        let window = forgetful.window_start();
        assert_eq!(window, 2 * 32_768, "whole chunks of leaves are freed");
        assert!(matches!(
            forgetful.leaf_hash(5),
            Err(HistoryError::TileMissing { tile: 0 })
        ));
        let size = u64::from(count);
        for (leaf, tree_size) in [
            (5, size),
            (300, 301),
            (70_000, 70_001),
            (65_535, size),
            (size - 1, size),
        ] {
            let (proof, tiles) = with_tiles(&forgetful, &leaves, |tiles| {
                forgetful.inclusion_proof_with(leaf, tree_size, tiles)
            });
            assert_eq!(proof, full.inclusion_proof(leaf, tree_size).unwrap());
            assert!(tiles <= 2, "one tile for the leaf, one for an old edge");
            let (hash, _) = with_tiles(&forgetful, &leaves, |tiles| {
                forgetful.leaf_hash_with(leaf, tiles)
            });
            assert_eq!(hash, leaves[leaf as usize]);
        }
        for (from, to) in [(1, size), (257, 1_000), (1_000, 70_001), (70_001, size)] {
            let (proof, _) = with_tiles(&forgetful, &leaves, |tiles| {
                forgetful.consistency_proof_with(from, to, tiles)
            });
            assert_eq!(proof, full.consistency_proof(from, to).unwrap());
            let (root, _) = with_tiles(&forgetful, &leaves, |tiles| {
                forgetful.root_at_with(from, tiles)
            });
            assert_eq!(root, full.root_at(from).unwrap());
        }
        // Appending and rolling back still work at the edge; not below the window.
        forgetful.append_leaf_hashes(&leaves[..10]);
        full.append_leaf_hashes(&leaves[..10]);
        assert_eq!(forgetful.root(), full.root());
        forgetful.truncate(size).unwrap();
        assert_eq!(
            forgetful.truncate(window - 1),
            Err(HistoryError::TruncateBelowWindow {
                size: window - 1,
                window
            })
        );
    }

    #[test]
    fn a_tile_that_is_not_the_trees_is_refused() {
        let leaves: Vec<Digest> = (0u32..600).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut tree = MerkleTree::new();
        tree.append_leaf_hashes(&leaves);
        let mut tiles = Tiles::none();
        let mut forged = leaves[..256].to_vec();
        forged[17] = leaf_hash(b"another transaction");
        assert!(matches!(
            tree.admit_tile(&mut tiles, 0, forged),
            Err(HistoryError::TileMismatch { tile: 0, .. })
        ));
        assert!(matches!(
            tree.admit_tile(&mut tiles, 0, leaves[..255].to_vec()),
            Err(HistoryError::TileMismatch { tile: 0, .. })
        ));
        assert!(
            matches!(
                tree.admit_tile(&mut tiles, 2, leaves[512..].to_vec()),
                Err(HistoryError::TileMismatch { tile: 2, .. })
            ),
            "tile 2 is not complete"
        );
        tree.admit_tile(&mut tiles, 1, leaves[256..512].to_vec())
            .unwrap();
        assert_eq!(tiles.len(), 1);
    }

    #[test]
    fn a_tree_rebuilt_from_its_frontier_has_the_same_root_and_proofs() {
        let leaves: Vec<Digest> = (0u32..5_000).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        for size in [0, 1, 255, 256, 257, 4_000] {
            let mut full = MerkleTree::new();
            full.append_leaf_hashes(&leaves[..size]);
            let frontier = full.frontier(size as u64).unwrap();
            assert_eq!(frontier.size(), size as u64);
            let mut rebuilt = MerkleTree::from_frontier(&frontier).unwrap();
            assert_eq!(rebuilt.size(), size as u64);
            assert_eq!(rebuilt.root(), full.root(), "size {size}");
            // It goes on appending like the original.
            full.append_leaf_hashes(&leaves[size..]);
            rebuilt.append_leaf_hashes(&leaves[size..]);
            assert_eq!(rebuilt.root(), full.root(), "size {size}, appended");
            let (proof, _) = with_tiles(&rebuilt, &leaves, |tiles| {
                rebuilt.inclusion_proof_with(3, 4_500, tiles)
            });
            assert_eq!(proof, full.inclusion_proof(3, 4_500).unwrap());
            assert!(rebuilt.truncate(size as u64).is_ok());
            assert_eq!(rebuilt.root(), full.root_at(size as u64).unwrap());
        }
        let too_long = Frontier {
            tiles: Vec::new(),
            edge: leaves[..256].to_vec(),
        };
        assert!(MerkleTree::from_frontier(&too_long).is_err());
    }
}
