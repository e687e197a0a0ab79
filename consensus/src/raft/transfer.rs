//! Raft snapshots as Stele builds, sends and keeps them, so a new or lagging
//! node catches up without re-executing anything (`docs/consensus.md`,
//! "Catching up from a snapshot").
//!
//! A *transfer* (what crosses the wire, and a file being received) is:
//!
//! ```text
//! b"STELXFR1"
//! u32 BE length || TransferHeader (CBOR): the last log id, membership, seqno,
//!                  batch count and the Raft-only entries up to the last log id
//! u64 BE length || stele-kv snapshot at `seqno` (STELSNP2, ends with its SHA-256)
//! the ledger up to `seqno`: per batch, its batch entry and its signature entry,
//!   each a ledger frame (u32 BE length | CRC32C | CBOR payload)
//! ```
//!
//! A *kept* snapshot, `raft-snapshot-<term>-<index>`, is the transfer's head
//! only (magic, header, state): the ledger part is the node's own ledger,
//! read from its chunk files when the snapshot is sent (`transfer_data.rs`).
//! Building one costs O(state), and no node keeps a second copy of its
//! ledger. Files kept by earlier versions (the whole transfer) are read the
//! same way, and cut to their head on start ([`tidy`]).
//!
//! Every length is checked against a limit before anything is allocated; the
//! receiving side checks the content (see `install.rs`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stele_kv::Snapshot;

use stele_ledger::frame::{checksum, FRAME_HEADER_BYTES};
use stele_ledger::{BatchEntry, Entry, SignatureEntry, ENTRY_BYTES_MAX};

use super::meta::ControlRecord;
use super::types::{SteleLogId, SteleSnapshotMeta, SteleStoredMembership};
use crate::paced::{remove_leftovers, PacedFile, DELETING_SUFFIX};
use crate::snapshot::{delete_older, list_newest_first};
use crate::ConsensusError;

/// The folder, inside the ledger folder, of this node's snapshot transfers.
pub const TRANSFER_DIR: &str = "raft-snapshots";

/// Largest snapshot transfer a node receives, in bytes (the KV state and the
/// whole ledger up to it).
pub const TRANSFER_BYTES_MAX: u64 = 256 << 30;

/// First bytes of a transfer file.
pub const TRANSFER_MAGIC: &[u8; 8] = b"STELXFR1";

/// Magic of a resume transfer: the head only, whose header carries the
/// resume entry (the tree's frontier and checkpoint at the snapshot) instead
/// of the ledger before it. A build that reads only `STELXFR1` refuses it.
pub const TRANSFER_MAGIC_RESUME: &[u8; 8] = b"STELXFR2";

/// File name prefix of the snapshots a node keeps to send.
pub const TRANSFER_PREFIX: &str = "raft-snapshot-";

/// File name suffix of a transfer being received.
const INCOMING_SUFFIX: &str = ".incoming";

/// Largest header accepted (it holds the Raft-only entries: a few per term).
pub const TRANSFER_HEADER_BYTES_MAX: usize = stele_ledger::ENTRY_BYTES_MAX;

/// Largest KV snapshot accepted in a transfer, in bytes (it is held in memory
/// while it is checked, as the store itself is).
pub const TRANSFER_STATE_BYTES_MAX: u64 = 8 << 30;

/// Snapshots kept to send: the newest only (building one replaces the last).
pub const TRANSFERS_KEPT: usize = 1;

/// What a transfer file holds besides the state and the batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferHeader {
    /// The last Raft log id the snapshot covers.
    pub last_log_id: SteleLogId,
    /// The membership in effect at that log id.
    pub last_membership: SteleStoredMembership,
    /// The seqno of the state: the last transaction of the last batch.
    pub seqno: u64,
    /// How many batches follow the state.
    pub batches: u64,
    /// The blank and membership entries up to `last_log_id`, in log order
    /// (none in a resume transfer).
    pub controls: Vec<ControlRecord>,
    /// In a resume transfer (`STELXFR2`, no batches): the ledger's resume
    /// entry at `seqno`, which the receiver's ledger and history start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<stele_ledger::ResumeEntry>,
}

impl TransferHeader {
    /// The id of the snapshot (its file's name; openraft 0.10 has none).
    pub fn snapshot_id(&self) -> String {
        format!(
            "{}-{}",
            self.last_log_id.leader_id.term, self.last_log_id.index
        )
    }

    /// openraft's metadata of the snapshot.
    pub fn meta(&self) -> SteleSnapshotMeta {
        SteleSnapshotMeta {
            last_log_id: Some(self.last_log_id),
            last_membership: self.last_membership.clone(),
        }
    }
}

fn transfer_error(path: &Path, reason: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::RaftStorage {
        path: path.to_owned(),
        reason: format!("snapshot transfer: {reason}"),
    }
}

/// Writes a kept snapshot (a transfer's head: header and state), then
/// [`TransferWriter::finish`] makes it durable under its name.
pub struct TransferWriter {
    /// Paced: the node's ledger syncs share the disk, and the file's data
    /// left to pile up would hold theirs behind it.
    file: BufWriter<PacedFile>,
    temporary: PathBuf,
    path: PathBuf,
}

impl TransferWriter {
    /// Starts `raft-snapshot-<term>-<index>` in `dir` (as a temporary file).
    pub fn create(
        dir: &Path,
        header: &TransferHeader,
        state: &Snapshot,
    ) -> Result<Self, ConsensusError> {
        std::fs::create_dir_all(dir).map_err(|error| transfer_error(dir, error))?;
        let path = kept_path(dir, header);
        let temporary = path.with_extension("tmp");
        let fail = |error: std::io::Error| transfer_error(&temporary, error);
        // Readable too: `finish` hands it back to be sent.
        let created = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(fail)?;
        let mut file = BufWriter::new(PacedFile::new(created));
        let mut header_bytes = Vec::new();
        ciborium::into_writer(header, &mut header_bytes)
            .map_err(|error| transfer_error(&temporary, error))?;
        let header_length =
            u32::try_from(header_bytes.len()).map_err(|error| transfer_error(&temporary, error))?;
        let magic = match header.resume {
            Some(_) => TRANSFER_MAGIC_RESUME,
            None => TRANSFER_MAGIC,
        };
        file.write_all(magic)
            .and_then(|()| file.write_all(&header_length.to_be_bytes()))
            .and_then(|()| file.write_all(&header_bytes))
            .and_then(|()| file.write_all(&state.encoded_len().to_be_bytes()))
            .and_then(|()| state.write_to(&mut file))
            .map_err(fail)?;
        Ok(TransferWriter {
            file,
            temporary,
            path,
        })
    }

    /// Appends one batch and its signature after the head: a whole
    /// transfer, as a peer sends it (tests and fuzz seeds are such files; a
    /// node's own kept snapshots are heads only).
    pub fn push(
        &mut self,
        batch: &BatchEntry,
        signature: &SignatureEntry,
    ) -> Result<(), ConsensusError> {
        let mut frames = Vec::new();
        crate::batch::encode_frames(batch, signature, &mut frames);
        let fail = |error: std::io::Error| transfer_error(&self.temporary, error);
        self.file.write_all(&frames).map_err(fail)
    }

    /// Syncs the file, renames it to its name and deletes older snapshots.
    /// Returns its path and the file open at its start: opened before the
    /// rename, it stays whole even if a newer snapshot (a received one)
    /// replaces it before it is read.
    pub fn finish(self) -> Result<(PathBuf, File), ConsensusError> {
        let TransferWriter {
            file,
            temporary,
            path,
        } = self;
        let mut file = file
            .into_inner()
            .map_err(|error| transfer_error(&temporary, error.error()))?
            .finish()
            .map_err(|error| transfer_error(&temporary, error))?;
        file.rewind()
            .map_err(|error| transfer_error(&temporary, error))?;
        std::fs::rename(&temporary, &path).map_err(|error| transfer_error(&path, error))?;
        sync_dir(&path)?;
        prune(&path);
        Ok((path, file))
    }
}

fn sync_dir(path: &Path) -> Result<(), ConsensusError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| transfer_error(dir, error))
}

/// Reads a transfer file front to back.
pub struct TransferReader {
    reader: BufReader<File>,
    path: PathBuf,
    state_read: bool,
}

impl TransferReader {
    /// Opens `file` (positioned at its start) and reads its header.
    pub fn open(file: File, path: &Path) -> Result<(Self, TransferHeader), ConsensusError> {
        let mut reader = BufReader::new(file);
        let fail = |reason: String| transfer_error(path, reason);
        let (length, resume_magic) = read_preamble(&mut reader, path)?;
        let mut bytes = vec![0; length];
        reader
            .read_exact(&mut bytes)
            .map_err(|error| fail(format!("reading the header: {error}")))?;
        let header: TransferHeader = ciborium::from_reader(bytes.as_slice())
            .map_err(|error| fail(format!("header: {error}")))?;
        match (&header.resume, resume_magic) {
            (None, false) => {}
            (Some(resume), true) if header.batches == 0 && resume.seqno == header.seqno => {}
            _ => {
                return Err(fail(
                    "a resume transfer's header must carry a resume entry at its seqno and \
                     no batch, and only a resume transfer's may"
                        .to_owned(),
                ))
            }
        }
        Ok((
            TransferReader {
                reader,
                path: path.to_owned(),
                state_read: false,
            },
            header,
        ))
    }

    /// The KV snapshot (its SHA-256 trailer checked). Call once, before the batches.
    pub fn state(&mut self) -> Result<Snapshot, ConsensusError> {
        let fail = |reason: String| transfer_error(&self.path, reason);
        let end = self
            .reader
            .get_ref()
            .metadata()
            .map_err(|error| fail(format!("reading the state: {error}")))?
            .len();
        let length = read_state_length(&mut self.reader, end, &self.path)?;
        let mut bytes = vec![0; length as usize];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|error| fail(format!("reading the state: {error}")))?;
        self.state_read = true;
        Snapshot::from_bytes(&bytes).map_err(|error| fail(format!("state: {error}")))
    }

    /// The next batch and its signature, or `None` at the end of the file.
    pub fn next_batch(&mut self) -> Result<Option<(BatchEntry, SignatureEntry)>, ConsensusError> {
        if !self.state_read {
            return Err(transfer_error(&self.path, "batches read before the state"));
        }
        let Some(first) = self.frame(true)? else {
            return Ok(None);
        };
        let second = self
            .frame(false)?
            .ok_or_else(|| transfer_error(&self.path, "a batch without its signature"))?;
        match (first, second) {
            (Entry::Batch(batch), Entry::Signature(signature)) => Ok(Some((batch, signature))),
            (first, second) => Err(transfer_error(
                &self.path,
                format!(
                    "expected a batch and its signature, found {} and {}",
                    first.kind(),
                    second.kind()
                ),
            )),
        }
    }

    /// One frame; `None` at a clean end of file when `end_allowed`.
    fn frame(&mut self, end_allowed: bool) -> Result<Option<Entry>, ConsensusError> {
        let fail = |reason: String| transfer_error(&self.path, reason);
        let mut head = [0; FRAME_HEADER_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match self.reader.read(&mut head[filled..]) {
                Ok(0) if filled == 0 && end_allowed => return Ok(None),
                Ok(0) => return Err(fail("the file ends inside a frame".to_owned())),
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(fail(error.to_string())),
            }
        }
        let length: [u8; 4] = head[..4].try_into().expect("4 of 8 bytes");
        let expected = u32::from_be_bytes(head[4..].try_into().expect("4 of 8 bytes"));
        let size = u32::from_be_bytes(length) as usize;
        if size > ENTRY_BYTES_MAX {
            return Err(fail(format!(
                "a frame of {size} bytes (most {ENTRY_BYTES_MAX})"
            )));
        }
        let mut payload = vec![0; size];
        self.reader
            .read_exact(&mut payload)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    fail("the file ends inside a frame".to_owned())
                }
                _ => fail(format!("reading a frame: {error}")),
            })?;
        if checksum(length, &payload) != expected {
            return Err(fail("a frame's checksum fails".to_owned()));
        }
        Entry::decode(&payload).map(Some).map_err(fail)
    }
}

/// Bytes of the file not read yet.
/// Reads a transfer's magic and its header's length (checked against the
/// limit), leaving `reader` at the header.
fn read_preamble(reader: &mut impl Read, path: &Path) -> Result<(usize, bool), ConsensusError> {
    let fail = |reason: String| transfer_error(path, reason);
    let mut magic = [0; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|error| fail(format!("reading the magic: {error}")))?;
    let resume = &magic == TRANSFER_MAGIC_RESUME;
    if &magic != TRANSFER_MAGIC && !resume {
        return Err(fail("not a Stele snapshot transfer".to_owned()));
    }
    let mut length = [0; 4];
    reader
        .read_exact(&mut length)
        .map_err(|error| fail(format!("reading the header's length: {error}")))?;
    let length = u32::from_be_bytes(length) as usize;
    if length > TRANSFER_HEADER_BYTES_MAX {
        return Err(fail(format!(
            "header of {length} bytes (most {TRANSFER_HEADER_BYTES_MAX})"
        )));
    }
    Ok((length, resume))
}

/// Reads the state's length at `reader`'s position in a file of `end`
/// bytes, leaving `reader` at the state. The length is input: checked
/// against the limit and against what the file holds before anything is
/// allocated, or a few bytes claiming gigabytes would get them (found by
/// fuzzing, fuzz/regressions/raft_transfer).
fn read_state_length(
    reader: &mut (impl Read + Seek),
    end: u64,
    path: &Path,
) -> Result<u64, ConsensusError> {
    let fail = |reason: String| transfer_error(path, reason);
    let mut length = [0; 8];
    reader
        .read_exact(&mut length)
        .map_err(|error| fail(format!("reading the state's length: {error}")))?;
    let length = u64::from_be_bytes(length);
    if length > TRANSFER_STATE_BYTES_MAX {
        return Err(fail(format!(
            "state of {length} bytes (most {TRANSFER_STATE_BYTES_MAX})"
        )));
    }
    let left = end.saturating_sub(
        reader
            .stream_position()
            .map_err(|error| fail(format!("reading the state: {error}")))?,
    );
    if length > left {
        return Err(fail(format!(
            "reading the state: the file ends inside the state ({length} bytes, {left} left)"
        )));
    }
    Ok(length)
}

/// The snapshot files of `dir`, newest (greatest log index) first.
fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    list_newest_first(dir, |name| {
        let (_term, index) = name.strip_prefix(TRANSFER_PREFIX)?.split_once('-')?;
        index.parse().ok()
    })
}

/// Deletes all but the newest [`TRANSFERS_KEPT`] snapshots beside `path`.
fn prune(path: &Path) {
    delete_older(
        list(path.parent().unwrap_or(Path::new("."))),
        TRANSFERS_KEPT,
    );
}

/// Times [`newest`] lists the folder again when a file it listed was gone
/// (deleted because a newer one was just finished) before it could open it.
const NEWEST_LISTINGS_MAX: usize = 4;

/// The newest snapshot in `dir` whose header reads: the file open (at its
/// start) and its header. Opened here, once: the open file stays whole even
/// if a newer snapshot replaces it and it is deleted while it is being sent
/// ([`remove_file_paced`](crate::paced::remove_file_paced) leaves files this
/// process has open alone).
pub fn newest(dir: &Path) -> Option<(File, TransferHeader)> {
    for _ in 0..NEWEST_LISTINGS_MAX {
        let mut gone = false;
        for (_, path) in list(dir) {
            match open_at_start(&path) {
                Ok(found) => return Some(found),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    gone = true;
                    break;
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping an unreadable Raft snapshot");
                }
            }
        }
        if !gone {
            return None;
        }
    }
    tracing::warn!(dir = %dir.display(), "Raft snapshots kept vanishing while being opened");
    None
}

/// `path` open at its start, with its header.
fn open_at_start(path: &Path) -> std::io::Result<(File, TransferHeader)> {
    let mut file = File::open(path)?;
    let (_, header) = TransferReader::open(file.try_clone()?, path)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()))?;
    file.rewind()?;
    Ok((file, header))
}

/// A new file for a transfer being received, replacing an unfinished one
/// (openraft receives one transfer at a time, and begins and installs them in
/// order on its state machine task). A snapshot being built meanwhile is left
/// alone.
pub fn incoming(dir: &Path) -> Result<(File, PathBuf), ConsensusError> {
    std::fs::create_dir_all(dir).map_err(|error| transfer_error(dir, error))?;
    remove_leftovers(dir, &[INCOMING_SUFFIX]);
    let path = dir.join(format!("receiving{INCOMING_SUFFIX}"));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|error| transfer_error(&path, error))?;
    Ok((file, path))
}

/// The name in `dir` of the kept snapshot `header` heads.
pub fn kept_path(dir: &Path, header: &TransferHeader) -> PathBuf {
    dir.join(format!("{TRANSFER_PREFIX}{}", header.snapshot_id()))
}

/// Deletes the unfinished transfers and snapshots a stopped process left, and
/// the snapshots it was deleting; cuts a kept snapshot that still holds
/// ledger batches (kept by an earlier version) to its head.
pub fn tidy(dir: &Path) {
    remove_leftovers(dir, &[INCOMING_SUFFIX, ".tmp", DELETING_SUFFIX]);
    for (_, path) in list(dir) {
        if let Err(error) = cut_to_head(&path) {
            tracing::warn!(path = %path.display(), %error, "cannot cut a kept Raft snapshot to its head");
        }
    }
}

/// The length of the head of the transfer or kept snapshot in `file`: its
/// magic, header and state, before any ledger batch. It reads through the
/// file's position, which it leaves anywhere (callers read at offsets).
pub fn head_length(file: &File, path: &Path) -> Result<u64, ConsensusError> {
    let fail = |reason: String| transfer_error(path, reason);
    let end = file
        .metadata()
        .map_err(|error| fail(error.to_string()))?
        .len();
    let mut reader = file;
    reader
        .rewind()
        .map_err(|error| fail(format!("reading the magic: {error}")))?;
    let (header_length, _) = read_preamble(&mut reader, path)?;
    reader
        .seek(std::io::SeekFrom::Current(header_length as i64))
        .map_err(|error| fail(format!("reading the header: {error}")))?;
    let state_length = read_state_length(&mut reader, end, path)?;
    let at = reader
        .stream_position()
        .map_err(|error| fail(format!("reading the state: {error}")))?;
    Ok(at + state_length)
}

/// Cuts the file at `path` to its head and syncs it (nothing if it is one).
fn cut_to_head(path: &Path) -> Result<(), ConsensusError> {
    let file = File::options()
        .write(true)
        .read(true)
        .open(path)
        .map_err(|error| transfer_error(path, error))?;
    let head = head_length(&file, path)?;
    let end = file
        .metadata()
        .map_err(|error| transfer_error(path, error))?
        .len();
    if end > head {
        file.set_len(head)
            .and_then(|()| file.sync_all())
            .map_err(|error| transfer_error(path, error))?;
    }
    Ok(())
}

/// Keeps a received transfer as this node's snapshot to send on: its head
/// only (its batches are now in this node's ledger).
pub fn keep_received(incoming: &Path, header: &TransferHeader) -> Result<PathBuf, ConsensusError> {
    let dir = incoming.parent().unwrap_or(Path::new("."));
    let path = kept_path(dir, header);
    cut_to_head(incoming)?;
    std::fs::rename(incoming, &path).map_err(|error| transfer_error(&path, error))?;
    sync_dir(&path)?;
    prune(&path);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use openraft::StoredMembership;
    use stele_kv::{Store, WriteSet};
    use stele_ledger::fixture::FixtureWriter;

    use super::*;

    type Batches = Vec<(BatchEntry, SignatureEntry)>;

    /// A transfer of `batches` fixture batches over a store holding one key.
    fn written(dir: &Path, batches: usize) -> (PathBuf, TransferHeader, Batches) {
        let (path, _file, header, entries) = written_open(dir, batches);
        (path, header, entries)
    }

    /// A store whose every version up to `seqno` writes `m/k`.
    fn store_at(seqno: u64) -> Store {
        let mut store = Store::new();
        let mut write_set = WriteSet::default();
        write_set.put("m", "k", b"v".to_vec());
        for version in 1..=seqno {
            store.apply(version, &write_set).unwrap();
        }
        store
    }

    /// [`written`], with the file `finish` hands back.
    fn written_open(dir: &Path, batches: usize) -> (PathBuf, File, TransferHeader, Batches) {
        let mut fixture = FixtureWriter::new(7);
        let entries: Vec<_> = (0..batches).map(|_| fixture.batch(3)).collect();
        let seqno = fixture.last_seqno();
        let store = store_at(seqno);
        let header = TransferHeader {
            last_log_id: crate::raft::types::log_id(2, batches as u64),
            last_membership: StoredMembership::default(),
            seqno,
            batches: batches as u64,
            controls: Vec::new(),
            resume: None,
        };
        let mut writer =
            TransferWriter::create(dir, &header, &store.snapshot(seqno).unwrap()).unwrap();
        for (batch, signature) in &entries {
            writer.push(batch, signature).unwrap();
        }
        let (path, file) = writer.finish().unwrap();
        (path, file, header, entries)
    }

    fn read_all(path: &Path) -> Result<(TransferHeader, u64, Batches), ConsensusError> {
        read_open(File::open(path).unwrap(), path)
    }

    /// Reads a transfer from `file`, open at its start.
    fn read_open(
        file: File,
        path: &Path,
    ) -> Result<(TransferHeader, u64, Batches), ConsensusError> {
        let (mut reader, header) = TransferReader::open(file, path)?;
        let version = reader.state()?.version();
        let mut batches = Vec::new();
        while let Some(batch) = reader.next_batch()? {
            batches.push(batch);
        }
        Ok((header, version, batches))
    }

    #[test]
    fn a_transfer_reads_back_as_written_and_is_found_as_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let (path, header, entries) = written(dir.path(), 4);
        let (read_header, version, batches) = read_all(&path).unwrap();
        assert_eq!(read_header, header);
        assert_eq!(version, header.seqno);
        assert_eq!(batches, entries);
        let (file, found) = newest(dir.path()).unwrap();
        assert_eq!(found, header);
        assert_eq!(
            read_open(file, &path).unwrap().2,
            entries,
            "open at its start"
        );
    }

    #[test]
    fn a_resume_transfer_is_a_head_with_its_resume_entry_and_lies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut fixture = FixtureWriter::new(7);
        for _ in 0..3 {
            fixture.batch(3);
        }
        let seqno = fixture.last_seqno();
        let store = store_at(seqno);
        let header = TransferHeader {
            last_log_id: crate::raft::types::log_id(2, 5),
            last_membership: StoredMembership::default(),
            seqno,
            batches: 0,
            controls: Vec::new(),
            resume: Some(fixture.resume(0)),
        };
        let state = store.snapshot(seqno).unwrap();
        let (path, file) = TransferWriter::create(dir.path(), &header, &state)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..8], TRANSFER_MAGIC_RESUME);
        let (read_header, version, batches) = read_open(file, &path).unwrap();
        assert_eq!((read_header, version), (header.clone(), seqno));
        assert!(batches.is_empty());
        // A resume entry at another seqno, or batches announced with it.
        for lie in [
            TransferHeader {
                seqno: seqno - 1,
                ..header.clone()
            },
            TransferHeader {
                batches: 1,
                ..header.clone()
            },
        ] {
            let lie_dir = tempfile::tempdir().unwrap();
            let (path, file) = TransferWriter::create(lie_dir.path(), &lie, &state)
                .unwrap()
                .finish()
                .unwrap();
            let error = TransferReader::open(file, &path).err().unwrap();
            assert!(error.to_string().contains("resume"), "{error}");
        }
        // A full transfer's magic on a header with a resume entry.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(TRANSFER_MAGIC);
        std::fs::write(&path, &bytes).unwrap();
        let error = read_all(&path).err().unwrap();
        assert!(error.to_string().contains("resume"), "{error}");
    }

    #[test]
    fn a_newer_transfer_replaces_the_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let (old, _, _) = written(dir.path(), 2);
        let (_, header, _) = written(dir.path(), 3);
        assert!(!old.exists(), "{} kept", old.display());
        assert_eq!(newest(dir.path()).unwrap().1, header);
    }

    /// The race a follower's transfer once had: the snapshot to send was
    /// listed, then opened by name; a build finishing in between deleted it.
    #[test]
    fn a_snapshot_being_sent_stays_whole_when_a_newer_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, built, header, entries) = written_open(dir.path(), 2);
        let (listed, _) = newest(dir.path()).unwrap();
        let (_, newer, _) = written(dir.path(), 3);
        assert!(!path.exists(), "replaced");
        assert_eq!(newest(dir.path()).unwrap().1, newer);
        for file in [built, listed] {
            let (read_header, _, batches) = read_open(file, &path).unwrap();
            assert_eq!((read_header, batches), (header.clone(), entries.clone()));
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "nothing left behind: {names:?}");
    }

    #[test]
    fn damaged_transfers_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = written(dir.path(), 3);
        let bytes = std::fs::read(&path).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("magic", [b"STELXFR0".as_slice(), &bytes[8..]].concat()),
            ("ends inside a frame", bytes[..bytes.len() - 5].to_vec()),
            ("checksum", {
                let mut flipped = bytes.clone();
                let last = flipped.len() - 1;
                flipped[last] ^= 1;
                flipped
            }),
            ("reading the header", bytes[..20].to_vec()),
        ];
        for (expected, damaged) in cases {
            let copy = dir.path().join("damaged");
            std::fs::write(&copy, damaged).unwrap();
            let error = read_all(&copy).unwrap_err().to_string();
            assert!(
                error.contains(expected) || (expected == "magic" && error.contains("not a Stele")),
                "{expected}: {error}"
            );
        }
    }

    /// A kept snapshot is a transfer's head: an earlier version's whole
    /// transfer is cut to it on start, and a received one is kept as it.
    #[test]
    fn kept_snapshots_hold_the_head_only() {
        let dir = tempfile::tempdir().unwrap();
        let (path, header, _) = written(dir.path(), 3);
        let whole = std::fs::read(&path).unwrap();
        let head = head_length(&File::open(&path).unwrap(), &path).unwrap();
        assert!(head < whole.len() as u64, "the batches follow the head");
        tidy(dir.path());
        let cut = std::fs::read(&path).unwrap();
        assert_eq!(cut, whole[..head as usize], "cut to the head");
        let (read_header, version, batches) = read_all(&path).unwrap();
        assert_eq!((read_header, version), (header.clone(), header.seqno));
        assert!(batches.is_empty());
        tidy(dir.path());
        assert_eq!(std::fs::read(&path).unwrap(), cut, "a head stays as it is");

        // A received transfer: kept as its head, under its name.
        let (_incoming_file, incoming_path) = incoming(dir.path()).unwrap();
        std::fs::write(&incoming_path, &whole).unwrap();
        let mut newer = header.clone();
        newer.last_log_id = crate::raft::types::log_id(3, 9);
        let kept = keep_received(&incoming_path, &newer).unwrap();
        assert_eq!(kept, kept_path(dir.path(), &newer));
        assert_eq!(std::fs::read(&kept).unwrap(), cut);
        assert!(!incoming_path.exists() && !path.exists(), "replaced");
    }

    #[test]
    fn a_head_past_the_file_or_its_limits_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = written(dir.path(), 1);
        let head = head_length(&File::open(&path).unwrap(), &path).unwrap() as usize;
        let bytes = std::fs::read(&path).unwrap();
        let header_length = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let huge_state = {
            let mut damaged = bytes.clone();
            damaged[12 + header_length..20 + header_length]
                .copy_from_slice(&u64::MAX.to_be_bytes());
            damaged
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("ends inside the state", bytes[..head - 1].to_vec()),
            ("state of", huge_state),
            (
                "not a Stele",
                [b"STELXFR9".as_slice(), &bytes[8..]].concat(),
            ),
            ("header's length", bytes[..10].to_vec()),
        ];
        for (expected, damaged) in cases {
            let copy = dir.path().join("damaged");
            std::fs::write(&copy, damaged).unwrap();
            let error = head_length(&File::open(&copy).unwrap(), &copy)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn unfinished_files_go_and_finished_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = written(dir.path(), 1);
        let (_file, incoming_path) = incoming(dir.path()).unwrap();
        let leftovers = ["raft-snapshot-9-9.tmp", "raft-snapshot-1-1.deleting"];
        for name in leftovers {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        tidy(dir.path());
        assert!(path.exists());
        assert!(!incoming_path.exists());
        for name in leftovers {
            assert!(!dir.path().join(name).exists(), "{name} left");
        }
    }
}
