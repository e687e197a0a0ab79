//! KV snapshots: the committed state every `snapshot_interval_tx`
//! transactions, or every quarter of the state's key count if that is more
//! ([`state_due`]), so that a restart applies only the ledger suffix after the
//! newest one, and snapshots cost at most a few keys written per transaction.
//!
//! File `snapshot_<seqno>`, version 2 (written since issue P10):
//! `"stele-snapshot 2\n" || u32 BE length || signed checkpoint note of the
//! batch ending at <seqno> || u64 BE tile count || that many 32-byte level-8
//! tree nodes || u32 BE edge count || that many 32-byte leaf hashes || stele-kv
//! snapshot bytes (which end with their SHA-256)`. The tile nodes and edge
//! leaves are the tree's [`Frontier`] at <seqno>: a restart rebuilds the tree
//! from them (checked against the note's root) instead of from the ledger
//! before <seqno>. Version 1 (no magic line, no frontier) still loads; its
//! restart rebuilds the tree from the whole ledger.
//!
//! On load the note must verify under the service key, name tree size = the
//! snapshot's version, and be the very signature the ledger holds after that
//! batch; otherwise the snapshot is skipped (logged) and the ledger replayed in
//! full. The ledger stays the truth: a snapshot only saves work.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use stele_history::{Digest, Frontier};
use stele_kv::Snapshot;

use crate::identity::ServiceIdentity;
use crate::paced::{remove_file_paced, remove_leftovers, PacedFile, DELETING_SUFFIX};

/// File name prefix of snapshots.
pub const SNAPSHOT_PREFIX: &str = "snapshot_";

/// Snapshots kept; older ones are deleted after a new one is written.
pub const SNAPSHOTS_KEPT: usize = 2;

/// Whether a KV snapshot is due: `done` transactions are committed, the
/// newest snapshot is at `covered`, `every` is `snapshot_interval_tx` (0:
/// never) and the state holds `keys` keys. The interval is at least `every`
/// and at least `keys / KV_SNAPSHOT_KEYS_PER_TX`: a snapshot writes the
/// whole state, so this bounds what snapshots cost per committed transaction
/// (at most that many keys written), and a restart replays at most that
/// interval after the newest one. At constant state (a few keys) snapshots
/// come every `every` transactions however long the ledger; when each
/// transaction adds a key, the interval grows with the ledger (a restart then
/// replays up to about a quarter of it: the keys are counted at each commit).
pub fn state_due(done: u64, covered: u64, every: u64, keys: u64) -> bool {
    every > 0 && done.saturating_sub(covered) >= every.max(keys / KV_SNAPSHOT_KEYS_PER_TX)
}

/// The most keys a KV snapshot writes per transaction committed since the
/// last one ([`state_due`]).
pub const KV_SNAPSHOT_KEYS_PER_TX: u64 = 4;

/// Longest checkpoint note accepted in a snapshot file.
const NOTE_BYTES_MAX: usize = 64 * 1024;

/// The first line of a version 2 snapshot file.
const MAGIC_V2: &[u8] = b"stele-snapshot 2\n";

/// A snapshot read back and checked against the service key.
#[derive(Debug)]
pub struct LoadedSnapshot {
    /// The state.
    pub snapshot: Snapshot,
    /// The signed checkpoint of the batch it ends with.
    pub note: String,
    /// The tree's frontier at its version (`None` in a version 1 file).
    pub frontier: Option<Frontier>,
}

/// Mode of the snapshot folder: snapshots hold the whole state, for the owner only.
pub const SNAPSHOT_DIR_MODE: u32 = 0o700;

/// Mode of a snapshot file (owner read/write only).
pub const SNAPSHOT_FILE_MODE: u32 = 0o600;

/// Writes `snapshot` with its `note` atomically (temporary file, fsync, rename).
/// A failed write removes its temporary file: on a full disk it would otherwise
/// hold the space the ledger needs to resume.
pub fn write(
    dir: &Path,
    snapshot: &Snapshot,
    note: &str,
    frontier: &Frontier,
) -> std::io::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SNAPSHOT_DIR_MODE)
        .create(dir)?;
    // What a stopped process left (only the snapshotter writes here).
    remove_leftovers(dir, &[".tmp", DELETING_SUFFIX]);
    let path = dir.join(format!("{SNAPSHOT_PREFIX}{}", snapshot.version()));
    let temporary = path.with_extension("tmp");
    let written = write_temporary(&temporary, snapshot, note, frontier);
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    prune(dir);
    Ok(path)
}

/// Writes and syncs the snapshot file at `temporary`.
fn write_temporary(
    temporary: &Path,
    snapshot: &Snapshot,
    note: &str,
    frontier: &Frontier,
) -> std::io::Result<()> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(SNAPSHOT_FILE_MODE)
        .open(temporary)?;
    let mut file = std::io::BufWriter::new(PacedFile::new(created));
    let length = u32::try_from(note.len()).unwrap_or(u32::MAX);
    file.write_all(MAGIC_V2)?;
    file.write_all(&length.to_be_bytes())?;
    file.write_all(note.as_bytes())?;
    file.write_all(&(frontier.tiles.len() as u64).to_be_bytes())?;
    for node in &frontier.tiles {
        file.write_all(node.as_bytes())?;
    }
    let edge = u32::try_from(frontier.edge.len()).unwrap_or(u32::MAX);
    file.write_all(&edge.to_be_bytes())?;
    for leaf in &frontier.edge {
        file.write_all(leaf.as_bytes())?;
    }
    snapshot.write_to(&mut file)?;
    file.into_inner()
        .map_err(|error| error.into_error())?
        .finish()
        .map(drop)
}

/// The snapshot files of `dir`, newest first.
fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    list_newest_first(dir, |name| name.strip_prefix(SNAPSHOT_PREFIX)?.parse().ok())
}

/// The files of `dir` that `key` numbers, greatest number first (KV snapshots
/// by seqno, Raft snapshot transfers by log index).
pub(crate) fn list_newest_first(
    dir: &Path,
    key: impl Fn(&str) -> Option<u64>,
) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some((key(&name)?, entry.path()))
        })
        .collect();
    files.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    files
}

/// Deletes all but the first `kept` of `files` (newest first).
pub(crate) fn delete_older(files: Vec<(u64, PathBuf)>, kept: usize) {
    for (_, path) in files.into_iter().skip(kept) {
        if let Err(error) = remove_file_paced(&path) {
            tracing::warn!(path = %path.display(), %error, "cannot delete an old snapshot");
        }
    }
}

/// Deletes all but the newest [`SNAPSHOTS_KEPT`] snapshots.
fn prune(dir: &Path) {
    delete_older(list(dir), SNAPSHOTS_KEPT);
}

/// Reads and checks one snapshot file (version 2, or 1 without a frontier).
pub fn load(path: &Path, identity: &ServiceIdentity) -> Result<LoadedSnapshot, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read: {error}"))?;
    let mut reader = Reader { bytes: &bytes };
    let v2 = reader.bytes.starts_with(MAGIC_V2);
    if v2 {
        reader.take(MAGIC_V2.len())?;
    }
    let length = reader.u32()? as usize;
    if length > NOTE_BYTES_MAX {
        return Err("bad checkpoint length".to_owned());
    }
    let note = std::str::from_utf8(reader.take(length)?)
        .map_err(|_| "the checkpoint is not UTF-8".to_owned())?
        .to_owned();
    let checkpoint = identity
        .open_checkpoint(&note)
        .map_err(|error| format!("checkpoint: {error}"))?;
    let frontier = if v2 {
        let tiles = reader.u64()?;
        if tiles > checkpoint.tree_size / stele_history::TILE_LEAVES {
            return Err(format!(
                "{tiles} tree tiles for tree size {}",
                checkpoint.tree_size
            ));
        }
        let tiles = reader.digests(usize::try_from(tiles).map_err(|_| "too many tiles")?)?;
        let edge = reader.u32()? as usize;
        let edge = reader.digests(edge)?;
        let frontier = Frontier { tiles, edge };
        if frontier.size() != checkpoint.tree_size {
            return Err(format!(
                "the tree frontier is for size {} but the checkpoint for {}",
                frontier.size(),
                checkpoint.tree_size
            ));
        }
        Some(frontier)
    } else {
        None
    };
    let snapshot = Snapshot::from_bytes(reader.bytes).map_err(|error| format!("state: {error}"))?;
    if checkpoint.tree_size != snapshot.version() {
        return Err(format!(
            "the checkpoint is for tree size {} but the state for seqno {}",
            checkpoint.tree_size,
            snapshot.version()
        ));
    }
    Ok(LoadedSnapshot {
        snapshot,
        note,
        frontier,
    })
}

/// Reads a snapshot file's header fields front to back.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < count {
            return Err("shorter than its header says".to_owned());
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn digests(&mut self, count: usize) -> Result<Vec<Digest>, String> {
        let bytes = self.take(count.checked_mul(32).ok_or("too many hashes")?)?;
        Ok(bytes
            .chunks_exact(32)
            .map(|chunk| Digest(chunk.try_into().expect("32 bytes")))
            .collect())
    }
}

/// The snapshots of `dir` that load and check, newest first, each loaded
/// only when the iterator reaches it; the others are skipped (and logged).
pub fn valid_newest_first<'a>(
    dir: &Path,
    identity: &'a ServiceIdentity,
) -> impl Iterator<Item = LoadedSnapshot> + 'a {
    list(dir)
        .into_iter()
        .filter_map(move |(_, path)| load_or_log(&path, identity))
}

fn load_or_log(path: &Path, identity: &ServiceIdentity) -> Option<LoadedSnapshot> {
    match load(path, identity) {
        Ok(loaded) => Some(loaded),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "skipping an invalid snapshot");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::state_due;

    #[test]
    fn kv_snapshots_follow_the_state_not_the_ledger() {
        // A few keys: every `every` transactions, however long the ledger.
        assert!(!state_due(10_099_999, 10_000_000, 100_000, 200));
        assert!(state_due(10_100_000, 10_000_000, 100_000, 200));
        // A key per transaction: a quarter of the keys.
        assert!(!state_due(
            10_000_000 + 2_499_999,
            10_000_000,
            100_000,
            10_000_000
        ));
        assert!(state_due(
            10_000_000 + 2_500_000,
            10_000_000,
            100_000,
            10_000_000
        ));
        assert!(!state_due(u64::MAX, 0, 0, 0), "0 means never");
        // Snapshots at constant state, checked at every commit: the suffix a
        // restart replays stays under the interval.
        let (mut covered, mut taken) = (0, 0);
        for done in 1..=1_000_000u64 {
            if state_due(done, covered, 1_000, 50) {
                (covered, taken) = (done, taken + 1);
            }
        }
        assert_eq!((taken, 1_000_000 - covered), (1_000, 0));
    }
}
