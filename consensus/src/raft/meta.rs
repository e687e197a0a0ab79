//! [`RaftMeta`]: the Raft state that is not a ledger batch, in one small file.
//!
//! Written rarely (an election, a membership change, a truncation, a purge), so it
//! is simply replaced whole: write `raft-meta.tmp`, fsync it, rename it over
//! `raft-meta`, fsync the folder. A crash leaves the old or the new file, never a
//! mix.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use openraft::{Entry, LogId, Vote};
use serde::{Deserialize, Serialize};

use super::types::SteleRaft;
use crate::ConsensusError;

/// File name of the meta file, beside the ledger folder's chunks.
pub const META_FILE: &str = "raft-meta";

/// A Raft-only entry (blank or membership) and where it sits among the batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRecord {
    /// How many ledger batches precede it in the Raft log.
    pub batches_before: u64,
    /// The entry itself (never a normal entry).
    pub entry: Entry<SteleRaft>,
}

/// Everything the Raft log storage keeps outside the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftMeta {
    /// The last vote saved (`RaftLogStorage::save_vote`).
    pub vote: Option<Vote<u64>>,
    /// The last committed log id saved (`RaftLogStorage::save_committed`).
    pub committed: Option<LogId<u64>>,
    /// The greatest purged log id (compaction only: the ledger keeps its batches).
    pub last_purged: Option<LogId<u64>>,
    /// Blank and membership entries, in log order.
    pub controls: Vec<ControlRecord>,
    /// A ledger truncation recorded but maybe not yet carried out: keep the
    /// batches up to this seqno.
    pub pending_truncate: Option<u64>,
}

impl RaftMeta {
    /// Reads the meta file in `dir`, or the empty state if there is none.
    pub fn load(dir: &Path) -> Result<Self, ConsensusError> {
        let path = dir.join(META_FILE);
        match File::open(&path) {
            Ok(file) => ciborium::from_reader(std::io::BufReader::new(file))
                .map_err(|error| meta_error(&path, error)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(RaftMeta::default()),
            Err(error) => Err(meta_error(&path, error)),
        }
    }

    /// Replaces the meta file in `dir` with `self`, durably.
    pub fn save(&self, dir: &Path) -> Result<(), ConsensusError> {
        let path = dir.join(META_FILE);
        let temporary = dir.join(format!("{META_FILE}.tmp"));
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes).map_err(|error| meta_error(&path, error))?;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&temporary)
            .map_err(|error| meta_error(&temporary, error))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|error| meta_error(&temporary, error))?;
        std::fs::rename(&temporary, &path).map_err(|error| meta_error(&path, error))?;
        File::open(dir)
            .and_then(|folder| folder.sync_all())
            .map_err(|error| meta_error(dir, error))
    }
}

fn meta_error(path: &Path, error: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::RaftStorage {
        path: PathBuf::from(path),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), RaftMeta::default());
        let meta = RaftMeta {
            vote: Some(Vote::new(3, 2)),
            committed: Some(LogId::new(CommittedLeaderId::new(3, 0), 7)),
            last_purged: None,
            controls: vec![ControlRecord {
                batches_before: 4,
                entry: Entry {
                    log_id: LogId::new(CommittedLeaderId::new(3, 0), 5),
                    payload: EntryPayload::Blank,
                },
            }],
            pending_truncate: Some(9),
        };
        meta.save(dir.path()).unwrap();
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), meta);
        assert!(!dir.path().join("raft-meta.tmp").exists());
    }
}
