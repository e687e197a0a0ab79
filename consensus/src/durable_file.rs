//! [`replace`]: a small file replaced whole and durably, readable by its
//! owner only. The Raft meta file and the high-water file are written this way.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::ConsensusError;

/// Mode of the files written here.
pub const DURABLE_FILE_MODE: u32 = 0o600;

/// Replaces `dir/name` with `bytes`: a fresh `name.tmp` (created anew, so a
/// leftover cannot lend it its mode or owner), synced, renamed over the file,
/// the folder synced. A crash leaves the old file or the new one. Callers
/// serialise their writes of one file.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ConsensusError> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(storage_error(&temporary, error)),
    }
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(DURABLE_FILE_MODE)
        .open(&temporary)
        .map_err(|error| storage_error(&temporary, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| storage_error(&temporary, error))?;
    std::fs::rename(&temporary, &path).map_err(|error| storage_error(&path, error))?;
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| storage_error(dir, error))
}

/// The error of a storage file at `path`.
pub fn storage_error(path: &Path, error: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::RaftStorage {
        path: PathBuf::from(path),
        reason: error.to_string(),
    }
}
