//! The committed reads of an [`Engine`]: KV values, transaction states,
//! receipts, checkpoints and consistency proofs. Each is served from the
//! committed state only, under the store's or the history's read lock, held
//! briefly (the executor and the follower check wait for it to write).

use stele_history::{Digest, HistoryState, Receipt, Tiles, TransactionId, TILE_LEAVES};

use crate::history::HistoryReadError;
use crate::identity::ServiceIdentity;
use crate::submission::TxState;
use crate::Engine;

/// Tiles of old leaves one read may need: an inclusion proof needs the
/// leaf's and the one at its checkpoint's edge, a consistency proof those at
/// its two edges.
const TILES_PER_READ_MAX: usize = 4;

/// Tiles whose leaves are kept after being read back (8 KiB each).
const TILES_CACHED_MAX: usize = 64;

/// The leaves of the tiles read back most recently, newest last. They are
/// checked against the tree again at each use ([`HistoryState::admit_tile`]),
/// so the cache saves the ledger reads and the hashing, never a check.
#[derive(Debug, Default)]
pub(crate) struct TileCache {
    tiles: std::sync::Mutex<std::collections::VecDeque<(u64, Vec<Digest>)>>,
}

impl TileCache {
    fn get(&self, tile: u64) -> Option<Vec<Digest>> {
        let tiles = crate::sync::lock(&self.tiles);
        tiles
            .iter()
            .find(|(held, _)| *held == tile)
            .map(|(_, leaves)| leaves.clone())
    }

    fn put(&self, tile: u64, leaves: Vec<Digest>) {
        let mut tiles = crate::sync::lock(&self.tiles);
        if tiles.iter().any(|(held, _)| *held == tile) {
            return;
        }
        if tiles.len() >= TILES_CACHED_MAX {
            tiles.pop_front();
        }
        tiles.push_back((tile, leaves));
    }
}

impl Engine {
    /// The committed value of `key` in `map` and the id of its writer.
    pub fn kv_get(&self, map: &str, key: &str) -> Option<(Vec<u8>, TransactionId)> {
        let (value, seqno) = {
            let store = self.replica.read_store();
            let (value, seqno) = store.get_committed(map, key)?;
            (value.to_vec(), seqno)
        };
        let id = self.replica.read_history().transaction_id(seqno)?;
        Some((value, id))
    }

    /// Runs `read` against the committed state, under the store's read lock
    /// (keep it short: the executor waits for the lock to apply batches). All
    /// the keys `read` looks at are from one committed version.
    pub fn read_committed<R>(&self, read: impl FnOnce(&stele_kv::Committed<'_>) -> R) -> R {
        let store = self.replica.read_store();
        read(&store.committed_view())
    }

    /// The committed state set aside (cheap: shared shards), to walk away from
    /// the store's lock.
    pub fn freeze_committed(&self) -> stele_kv::Frozen {
        let store = self.replica.read_store();
        store
            .freeze(store.committed_version())
            .expect("the committed version is always retained")
    }

    /// Where transaction `id` is.
    pub fn tx_state(&self, id: TransactionId) -> TxState {
        let history = self.replica.read_history();
        let committed = self.committed_seqno();
        if id.seqno <= history.starts_after() {
            // Before where a resumed history starts: committed, in the view
            // its view starts give (its batch is not known here).
            return match history.transaction_id(id.seqno) {
                Some(known) if known.view == id.view => TxState::Committed,
                Some(_) => TxState::Invalid,
                None => TxState::Unknown,
            };
        }
        match history.batch_of(id.seqno) {
            Some(batch) if batch.view != id.view => TxState::Invalid,
            Some(_) if id.seqno <= committed => TxState::Committed,
            Some(_) => TxState::Pending,
            // Past this node's log. Views never decrease along a Raft log, so
            // an id of a view older than the last committed transaction's
            // can never be committed: a view lost in a crash or a deposition.
            None if history
                .batch_of(committed)
                .is_some_and(|batch| id.view < batch.view) =>
            {
                TxState::Invalid
            }
            None => TxState::Unknown,
        }
    }

    /// Seqno of the last committed transaction.
    pub fn committed_seqno(&self) -> u64 {
        self.replica.committed_seqno()
    }

    /// The last committed transaction.
    pub fn last_committed(&self) -> Option<TransactionId> {
        self.replica
            .read_history()
            .transaction_id(self.committed_seqno())
    }

    /// The seqnos `[first, last]` before where this node's history starts
    /// whose batches its ledger does not hold yet (being fetched), if any.
    pub fn ledger_skipped(&self) -> Option<[u64; 2]> {
        let history = self.replica.read_history();
        (history.filled_through() < history.starts_after())
            .then(|| [history.filled_through() + 1, history.starts_after()])
    }

    /// The first leaf whose part of the tree is held in memory.
    pub fn leaves_in_memory_from(&self) -> u64 {
        self.replica.read_history().leaves_in_memory_from()
    }

    /// Seqno of the last executed transaction.
    pub fn executed_seqno(&self) -> u64 {
        self.replica.read_history().size()
    }

    /// The receipt of committed transaction `id`. Its leaf's components and
    /// its batch's signed checkpoint are read back from the ledger (the
    /// history keeps only the tree) with no lock held, then checked against
    /// the tree under the history's read lock; so are the tiles of old leaves
    /// the proof needs ([`Engine::with_tiles`]).
    pub fn receipt(&self, id: TransactionId) -> Result<Receipt, HistoryReadError> {
        let committed = self.committed_seqno();
        {
            let history = self.replica.read_history();
            history.check_committed(id, committed)?;
            history.check_held(id)?;
        }
        let unavailable = |reason: String| {
            HistoryReadError::Unavailable(format!(
                "transaction {id}'s record could not be read from the ledger: {reason}"
            ))
        };
        let batch = self
            .sequencer
            .logged_batch(id.seqno)
            .map_err(|error| unavailable(error.to_string()))?
            .ok_or_else(|| unavailable("no logged batch holds it".to_owned()))?;
        let digests = batch
            .batch
            .record_of(id.seqno)
            .ok_or_else(|| unavailable("the logged batch read does not hold it".to_owned()))?
            .digests(batch.batch.leaf_format);
        let note = &batch.signature.checkpoint;
        self.with_tiles(|history, tiles| {
            history.receipt(id, committed, &self.replica.identity, &digests, note, tiles)
        })
    }

    /// The latest committed signed checkpoint.
    pub fn checkpoint(&self) -> Option<String> {
        self.replica
            .read_history()
            .latest_checkpoint(self.committed_seqno())
            .map(str::to_owned)
    }

    /// The consistency proof between two committed tree sizes.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Digest>, HistoryReadError> {
        let committed = self.committed_seqno();
        self.with_tiles(|history, tiles| history.consistency(from, to, committed, tiles))
    }

    /// Runs `read` under the history's read lock; each time it needs a tile of
    /// old leaves, reads that tile back from the ledger with the lock
    /// released, has the history check it, and runs `read` again.
    fn with_tiles<R>(
        &self,
        read: impl Fn(&HistoryState, &Tiles) -> Result<R, HistoryReadError>,
    ) -> Result<R, HistoryReadError> {
        let mut tiles = Tiles::none();
        loop {
            let answer = read(&self.replica.read_history(), &tiles);
            let Err(HistoryReadError::NeedsTile(tile)) = answer else {
                return answer;
            };
            if tiles.len() >= TILES_PER_READ_MAX {
                return Err(HistoryReadError::Unavailable(format!(
                    "the proof needs more than {TILES_PER_READ_MAX} tiles of old leaves"
                )));
            }
            let (leaves, cached) = match self.tiles_read.get(tile) {
                Some(leaves) => (leaves, true),
                None => (
                    self.tile_leaves(tile).map_err(|reason| {
                        HistoryReadError::Unavailable(format!(
                            "the leaves of tile {tile} could not be read from the ledger: {reason}"
                        ))
                    })?,
                    false,
                ),
            };
            self.replica
                .read_history()
                .admit_tile(&mut tiles, tile, leaves.clone())?;
            if !cached {
                self.tiles_read.put(tile, leaves);
            }
        }
    }

    /// The leaf hashes of tile `tile`, made from the ledger's records.
    fn tile_leaves(&self, tile: u64) -> Result<Vec<Digest>, String> {
        let first = tile * TILE_LEAVES + 1;
        let last = first + TILE_LEAVES - 1;
        let mut leaves = Vec::with_capacity(TILE_LEAVES as usize);
        let mut seqno = first;
        while seqno <= last {
            let batch = self
                .sequencer
                .logged_batch(seqno)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("no logged batch holds seqno {seqno}"))?;
            let entry = &batch.batch;
            let end = entry.last_seqno().min(last);
            for held in seqno..=end {
                let record = entry
                    .record_of(held)
                    .ok_or_else(|| format!("the batch read for seqno {held} does not hold it"))?;
                leaves.push(record.leaf_hash(entry.leaf_format));
            }
            seqno = end + 1;
        }
        Ok(leaves)
    }

    /// The service identity.
    pub fn identity(&self) -> &ServiceIdentity {
        &self.replica.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tile_cache_keeps_the_newest_tiles_only() {
        let cache = TileCache::default();
        let leaves = |tile: u64| vec![Digest([tile as u8; 32]); 2];
        for tile in 0..(TILES_CACHED_MAX as u64 + 3) {
            cache.put(tile, leaves(tile));
        }
        assert_eq!(cache.get(0), None, "the oldest were evicted");
        assert_eq!(cache.get(2), None);
        assert_eq!(cache.get(3), Some(leaves(3)));
        let newest = TILES_CACHED_MAX as u64 + 2;
        assert_eq!(cache.get(newest), Some(leaves(newest)));
        cache.put(newest, leaves(0));
        assert_eq!(
            cache.get(newest),
            Some(leaves(newest)),
            "a tile is kept once"
        );
    }
}
