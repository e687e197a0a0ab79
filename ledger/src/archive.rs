//! The archive: committed chunks moved out of the live ledger folder into
//! `archive/` inside it (a folder, or a link to any path an operator mounts,
//! e.g. an object-store mount), where they are still listed, read, served
//! and verified ([`crate::chunk::list`] lists both).
//!
//! A move is crash-safe at every step:
//!
//! 1. the chunk is copied to `archive/<name>.tmp` (not a chunk name: ignored
//!    by listings) and synced;
//! 2. renamed to `archive/<name>`, and the archive folder synced: the chunk
//!    now exists twice, identical (a listing takes the live copy);
//! 3. the live copy is removed and the live folder synced.
//!
//! Only committed chunks are archived (they never change: no truncation
//! reaches below the commit point), and never the newest `keep_live` of them.
//! A kill -9 anywhere leaves either a `.tmp` file (removed at the next pass)
//! or both copies (the next pass removes the live one after checking that the
//! two have the same length).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::chunk::ChunkName;
use crate::ledger::sync_dir;
use crate::{Ledger, LedgerError};

/// The archive folder, inside the ledger folder.
pub const ARCHIVE_DIR: &str = "archive";

/// Suffix of a chunk being copied into the archive.
const COPYING_SUFFIX: &str = ".tmp";

/// A committed chunk to move: its name, and its live file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveMove {
    /// The chunk's name.
    pub name: ChunkName,
    /// Its file in the live folder.
    pub live: PathBuf,
}

impl Ledger {
    /// The committed chunks still in the live folder, but the newest
    /// `keep_live` committed ones, oldest first.
    pub fn archivable(&self, keep_live: usize) -> Vec<ArchiveMove> {
        let committed: Vec<_> = self
            .chunks
            .iter()
            .filter(|chunk| chunk.name.committed)
            .collect();
        let movable = committed.len().saturating_sub(keep_live);
        committed[..movable]
            .iter()
            .filter(|chunk| chunk.path.parent() == Some(self.dir.as_path()))
            .map(|chunk| ArchiveMove {
                name: chunk.name,
                live: chunk.path.clone(),
            })
            .collect()
    }

    /// Records that the chunk `name` is now at `archived` (a finished
    /// [`copy_to_archive`]) and removes its live copy.
    pub fn archived(&mut self, name: &ChunkName, archived: &Path) -> Result<(), LedgerError> {
        let chunk = self
            .chunks
            .iter_mut()
            .find(|chunk| chunk.name == *name)
            .ok_or_else(|| LedgerError::Config(format!("no chunk {}", name.file_name())))?;
        if !name.committed {
            return Err(LedgerError::Config(format!(
                "chunk {} is not committed: it cannot be archived",
                name.file_name()
            )));
        }
        let live = std::mem::replace(&mut chunk.path, archived.to_owned());
        if live != archived {
            std::fs::remove_file(&live)
                .map_err(|source| LedgerError::io(&live, "remove", source))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Copies the chunk of `moving` into the archive of the ledger folder `dir`,
/// synced, under its own name; returns its path there. The live copy stays
/// (see [`Ledger::archived`]).
pub fn copy_to_archive(dir: &Path, moving: &ArchiveMove) -> Result<PathBuf, LedgerError> {
    let archive = dir.join(ARCHIVE_DIR);
    std::fs::create_dir_all(&archive)
        .map_err(|source| LedgerError::io(&archive, "create", source))?;
    let name = moving.name.file_name();
    let path = archive.join(&name);
    let live_length = std::fs::metadata(&moving.live)
        .map_err(|source| LedgerError::io(&moving.live, "read", source))?
        .len();
    // Both copies exist after a crash between the rename and the removal.
    if let Ok(existing) = std::fs::metadata(&path) {
        if existing.len() == live_length {
            // Its rename may not be durable yet: the live copy goes next.
            sync_dir(&archive)?;
            return Ok(path);
        }
    }
    let temporary = archive.join(format!("{name}{COPYING_SUFFIX}"));
    let copied = copy_synced(&moving.live, &temporary);
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, &path)
        .map_err(|source| LedgerError::io(&temporary, "rename", source))?;
    sync_dir(&archive)?;
    Ok(path)
}

/// Removes the unfinished copies a stopped process left in the archive.
pub fn remove_unfinished(dir: &Path) {
    let archive = dir.join(ARCHIVE_DIR);
    let Ok(entries) = std::fs::read_dir(&archive) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let unfinished = name
            .strip_suffix(COPYING_SUFFIX)
            .is_some_and(|chunk| ChunkName::parse(chunk).is_some());
        if unfinished {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Copies `from` to `to` (the kernel's copy, `copy_file_range` where it
/// can) and syncs the copy.
fn copy_synced(from: &Path, to: &Path) -> Result<(), LedgerError> {
    std::fs::copy(from, to).map_err(|source| LedgerError::io(from, "copy", source))?;
    File::open(to)
        .and_then(|copy| copy.sync_all())
        .map_err(|source| LedgerError::io(to, "fsync", source))
}
