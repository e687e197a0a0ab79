//! [`RaftMeta`]: the Raft state that is not a ledger batch, in one small file.
//!
//! Written rarely (an election, a membership change, a truncation, a purge), so it
//! is simply replaced whole: write `raft-meta.tmp` (created afresh, mode 0600),
//! fsync it, rename it over `raft-meta`, fsync the folder. A crash leaves the old
//! or the new file, never a mix.
//!
//! The file is a header, then the CBOR of [`RaftMeta`]: [`META_MAGIC`], the
//! format version (u32, little-endian), the body's length (u64, LE) and its
//! SHA-256. A node refuses to start on a file that does not check (a flipped
//! byte in a member's key must not be served). A file without the header is the
//! legacy format (bare CBOR, before the header): it is read, then rewritten with
//! the header.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::types::{SteleEntry, SteleLogId, SteleVote};
use crate::ConsensusError;

/// File name of the meta file, beside the ledger folder's chunks.
pub const META_FILE: &str = "raft-meta";

/// First bytes of a meta file with a header.
pub const META_MAGIC: [u8; 8] = *b"STLRMETA";

/// The newest format version (1: the header, the headerless legacy files
/// being version 0; 2: a log that starts at a snapshot, `log_base`). A file
/// is written as version 1 unless it has a `log_base`, so builds before
/// version 2 still read every file they can understand, and refuse the rest.
pub const META_VERSION: u32 = 2;

/// The version of a file without a `log_base`.
const META_VERSION_FROM_ZERO: u32 = 1;

/// Mode of the meta file and its tmp file: the node's own (it names the
/// members and their keys).
pub const META_FILE_MODE: u32 = crate::durable_file::DURABLE_FILE_MODE;

/// Bytes of the header: magic, version, body length, body SHA-256.
const META_HEADER_BYTES: usize = 8 + 4 + 8 + 32;

/// Largest meta file read, in bytes (it holds a vote, three log ids and the
/// Raft-only entries: kilobytes; a larger one is not a meta file).
pub const META_FILE_BYTES_MAX: u64 = 64 << 20;

/// The first byte of a legacy file: the CBOR map of [`RaftMeta`]'s 5 fields.
const LEGACY_FIRST_BYTE: u8 = 0xa0 | 5;

/// What an operator is told to do when the file does not check.
const META_DAMAGED_ADVICE: &str = "the node will not start on it; do not edit it: \
    restore the node's data folder from a backup, or (on a cluster member) remove \
    the node, wipe its data folder and add it again as a new member";

/// A Raft-only entry (blank or membership) and where it sits among the batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRecord {
    /// How many ledger batches precede it in the Raft log.
    pub batches_before: u64,
    /// The entry itself (never a normal entry).
    pub entry: SteleEntry,
}

/// Everything the Raft log storage keeps outside the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftMeta {
    /// The last vote saved (`RaftLogStorage::save_vote`).
    pub vote: Option<SteleVote>,
    /// The last committed log id saved (`RaftLogStorage::save_committed`).
    pub committed: Option<SteleLogId>,
    /// The greatest purged log id (compaction only: the ledger keeps its batches).
    pub last_purged: Option<SteleLogId>,
    /// Blank and membership entries, in log order.
    pub controls: Vec<ControlRecord>,
    /// A ledger truncation recorded but maybe not yet carried out: keep the
    /// batches up to this seqno.
    pub pending_truncate: Option<u64>,
    /// Where the log starts if it starts at an installed snapshot (the
    /// controls' `batches_before` then count batches after it). Absent in
    /// files written before P10's joins, and for a log from index 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_base: Option<super::log_store::LogBase>,
}

impl RaftMeta {
    /// Reads the meta file in `dir`, or the empty state if there is none. A
    /// legacy (headerless) file is rewritten with the header.
    pub fn load(dir: &Path) -> Result<Self, ConsensusError> {
        let path = dir.join(META_FILE);
        let bytes = match File::open(&path) {
            Ok(file) => read_bounded(file).map_err(|error| meta_error(&path, error))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RaftMeta::default())
            }
            Err(error) => return Err(meta_error(&path, error)),
        };
        if bytes.starts_with(&META_MAGIC) {
            return decode(&path, &bytes);
        }
        if bytes.first() != Some(&LEGACY_FIRST_BYTE) {
            return Err(damaged(&path, "it does not start as a meta file"));
        }
        let meta: RaftMeta = ciborium::from_reader(bytes.as_slice())
            .map_err(|error| damaged(&path, &format!("legacy format: {error}")))?;
        meta.save(dir)?;
        tracing::info!(path = %path.display(), version = META_VERSION, "rewrote a legacy meta file");
        Ok(meta)
    }

    /// Replaces the meta file in `dir` with `self`, durably.
    pub fn save(&self, dir: &Path) -> Result<(), ConsensusError> {
        let path = dir.join(META_FILE);
        let bytes = self.encode(&path)?;
        crate::durable_file::replace(dir, META_FILE, &bytes)
    }

    /// The header and the CBOR body.
    fn encode(&self, path: &Path) -> Result<Vec<u8>, ConsensusError> {
        let mut body = Vec::new();
        ciborium::into_writer(self, &mut body).map_err(|error| meta_error(path, error))?;
        let mut bytes = Vec::with_capacity(META_HEADER_BYTES + body.len());
        bytes.extend_from_slice(&META_MAGIC);
        let version = match self.log_base {
            Some(_) => META_VERSION,
            None => META_VERSION_FROM_ZERO,
        };
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&Sha256::digest(&body));
        bytes.extend_from_slice(&body);
        debug_assert_eq!(bytes.len(), META_HEADER_BYTES + body.len());
        Ok(bytes)
    }
}

/// Checks the header of `bytes` (which start with the magic) and decodes the body.
fn decode(path: &Path, bytes: &[u8]) -> Result<RaftMeta, ConsensusError> {
    let Some((header, body)) = bytes.split_at_checked(META_HEADER_BYTES) else {
        return Err(damaged(path, "it is shorter than its header"));
    };
    let field = |range: std::ops::Range<usize>| &header[range];
    let version = u32::from_le_bytes(field(8..12).try_into().expect("4 bytes"));
    if !(META_VERSION_FROM_ZERO..=META_VERSION).contains(&version) {
        return Err(damaged(
            path,
            &format!("format version {version}, this build reads {META_VERSION}"),
        ));
    }
    let length = u64::from_le_bytes(field(12..20).try_into().expect("8 bytes"));
    if length != body.len() as u64 {
        return Err(damaged(
            path,
            &format!("the header says {length} bytes follow, {} do", body.len()),
        ));
    }
    if Sha256::digest(body).as_slice() != field(20..META_HEADER_BYTES) {
        return Err(damaged(path, "the checksum (SHA-256) does not match"));
    }
    ciborium::from_reader(body).map_err(|error| damaged(path, &error.to_string()))
}

/// Reads a whole file of at most [`META_FILE_BYTES_MAX`] bytes.
fn read_bounded(file: File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(META_FILE_BYTES_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > META_FILE_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "over {META_FILE_BYTES_MAX} bytes: not a meta file"
        )));
    }
    Ok(bytes)
}

fn damaged(path: &Path, what: &str) -> ConsensusError {
    meta_error(
        path,
        format!("the Raft meta file is damaged ({what}): {META_DAMAGED_ADVICE}"),
    )
}

fn meta_error(path: &Path, error: impl std::fmt::Display) -> ConsensusError {
    crate::durable_file::storage_error(path, error)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::os::unix::fs::PermissionsExt as _;

    use openraft::{Entry, EntryPayload, Membership, Vote};

    use super::*;
    use crate::raft::types::log_id;
    use crate::raft::SteleNode;

    fn sample() -> RaftMeta {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let members = BTreeMap::from([(1, SteleNode::new("127.0.0.1:4000", &key))]);
        RaftMeta {
            vote: Some(Vote::new(3, 2)),
            committed: Some(log_id(3, 7)),
            last_purged: None,
            controls: vec![
                ControlRecord {
                    batches_before: 0,
                    entry: Entry {
                        log_id: log_id(0, 0),
                        payload: EntryPayload::Membership(
                            Membership::new(vec![BTreeSet::from([1])], members).unwrap(),
                        ),
                    },
                },
                ControlRecord {
                    batches_before: 4,
                    entry: Entry {
                        log_id: log_id(3, 5),
                        payload: EntryPayload::Blank,
                    },
                },
            ],
            pending_truncate: Some(9),
            log_base: None,
        }
    }

    #[test]
    fn a_log_base_is_saved_as_version_2_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = sample();
        meta.save(dir.path()).unwrap();
        let version = |dir: &Path| {
            let bytes = std::fs::read(dir.join(META_FILE)).unwrap();
            u32::from_le_bytes(bytes[8..12].try_into().unwrap())
        };
        assert_eq!(version(dir.path()), 1, "no base: readable by older builds");
        meta.log_base = Some(crate::raft::log_store::LogBase {
            last_log_id: log_id(3, 7),
            seqno: 40,
            root: [5; 32],
        });
        meta.save(dir.path()).unwrap();
        assert_eq!(version(dir.path()), 2);
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), meta);
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), RaftMeta::default());
        let meta = sample();
        meta.save(dir.path()).unwrap();
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), meta);
        assert!(!dir.path().join("raft-meta.tmp").exists());
        let bytes = std::fs::read(dir.path().join(META_FILE)).unwrap();
        assert!(bytes.starts_with(&META_MAGIC));
    }

    #[test]
    fn every_flipped_byte_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        let path = dir.path().join(META_FILE);
        let good = std::fs::read(&path).unwrap();
        for position in 0..good.len() {
            for flip in [0x01_u8, 0xff] {
                let mut bad = good.clone();
                bad[position] ^= flip;
                std::fs::write(&path, &bad).unwrap();
                let error = RaftMeta::load(dir.path())
                    .expect_err(&format!("byte {position} ^ {flip:#x} was accepted"))
                    .to_string();
                assert!(
                    error.contains(&path.display().to_string()) && error.contains("damaged"),
                    "byte {position} ^ {flip:#x}: {error}"
                );
            }
        }
        // Cut short, or with a byte more.
        for bad in [
            &good[..good.len() - 1],
            &good[..10],
            &[good.as_slice(), &[0]].concat(),
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(RaftMeta::load(dir.path()).is_err(), "{} bytes", bad.len());
        }
    }

    #[test]
    fn a_legacy_file_loads_and_is_rewritten_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_FILE);
        let meta = sample();
        let mut legacy = Vec::new();
        ciborium::into_writer(&meta, &mut legacy).unwrap();
        assert_eq!(legacy[0], LEGACY_FIRST_BYTE);
        std::fs::write(&path, &legacy).unwrap();
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), meta);
        assert!(std::fs::read(&path).unwrap().starts_with(&META_MAGIC));
        assert_eq!(mode(&path), META_FILE_MODE);
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), meta);
    }

    #[test]
    fn the_file_is_private_even_over_a_stale_tmp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_FILE);
        let temporary = dir.path().join(format!("{META_FILE}.tmp"));
        sample().save(dir.path()).unwrap();
        assert_eq!(mode(&path), META_FILE_MODE);
        std::fs::write(&temporary, b"left over").unwrap();
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644)).unwrap();
        sample().save(dir.path()).unwrap();
        assert_eq!(mode(&path), META_FILE_MODE);
        assert_eq!(RaftMeta::load(dir.path()).unwrap(), sample());
    }

    /// A meta file written by openraft 0.9.25 (`single-term-leader`), before
    /// the move to 0.10: the sample with a committed vote and a purge point.
    /// 0.10's standard leader id keeps 0.9's encoding (the vote names its
    /// candidate as an option, a committed leader id is the bare term).
    const META_V09: &[u8] = include_bytes!("testdata/raft-meta-v0.9");

    #[test]
    fn a_meta_file_written_by_openraft_0_9_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), META_V09).unwrap();
        let mut expected = sample();
        expected.vote = Some(Vote::new_committed(3, 2));
        expected.last_purged = Some(log_id(2, 3));
        let loaded = RaftMeta::load(dir.path()).unwrap();
        assert_eq!(loaded, expected);
        // And this build writes the same bytes for it.
        assert_eq!(loaded.encode(Path::new("x")).unwrap(), META_V09);
    }
}
