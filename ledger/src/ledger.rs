//! [`Ledger`]: the chunk files of one node, opened with recovery.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::chunk::{self, ChunkName};
use crate::entry::EntryRef;
use crate::frame::{self, encode_frame, Frames, CHUNK_MAGIC};
use crate::{
    BatchEntry, Entry, Genesis, LedgerError, ResumeEntry, SignatureEntry, CHUNK_BYTES_DEFAULT,
    CHUNK_BYTES_MIN, CHUNK_FILE_MODE, ENTRY_BYTES_MAX, LEDGER_DIR_MODE,
};

/// Suffix of a chunk opened by a resume entry while it is written aside
/// (not a chunk name: listings skip it).
const RESUME_ASIDE_SUFFIX: &str = ".resume-aside";

/// How the ledger lays out its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    /// The open chunk is closed at the first sync after it reaches this size.
    pub chunk_bytes: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            chunk_bytes: CHUNK_BYTES_DEFAULT,
        }
    }
}

impl LedgerConfig {
    fn check(&self) -> Result<(), LedgerError> {
        if self.chunk_bytes < CHUNK_BYTES_MIN {
            return Err(LedgerError::Config(format!(
                "chunk_bytes is {}, below the minimum {CHUNK_BYTES_MIN}",
                self.chunk_bytes
            )));
        }
        Ok(())
    }
}

/// Where one batch and its signature are: the index entry for reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLocation {
    /// The batch's view.
    pub view: u64,
    /// Its first seqno.
    pub first_seqno: u64,
    /// Its last seqno.
    pub last_seqno: u64,
    /// The first seqno of the chunk holding it (the chunk's name).
    pub chunk_first: u64,
    /// Offset of the batch frame in the chunk.
    pub offset: u64,
    /// Offset just past the signature frame that follows it.
    pub end: u64,
}

/// Where the ledger resumes after batches it does not hold (a
/// [`crate::ResumeEntry`]): seqnos `held_before + 1 ..= seqno` are not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumption {
    /// The last seqno the ledger held when it was written (0: none).
    pub after_seqno: u64,
    /// The last seqno the ledger holds before it (`after_seqno` or more:
    /// batches fetched since fill the skipped seqnos from the front).
    pub held_before: u64,
    /// The seqno it resumes at (the next batch starts at `seqno + 1`).
    pub seqno: u64,
    /// The view of the batch that ended at `seqno`.
    pub view: u64,
    /// The chunk it opens (named from `seqno + 1`).
    pub chunk_first: u64,
    /// Offset just past its frame.
    pub end: u64,
    /// The signed checkpoint at `seqno` it records.
    pub checkpoint: String,
    /// Where each view started among the seqnos up to `seqno`.
    pub view_starts: Vec<(u64, u64)>,
}

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The open chunk.
    pub file: PathBuf,
    /// Where the cut was made (the new length of the file).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Why they were not a complete entry.
    pub reason: String,
}

/// What `open` found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The torn tail cut off the open chunk, if there was one.
    pub torn: Option<TornTail>,
}

#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) name: ChunkName,
    /// In the live folder, or in its archive (`archive.rs`).
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
}

/// The ledger of one node. Single writer; see [`crate::GroupCommit`] for the
/// thread that shares it between many appenders.
#[derive(Debug)]
pub struct Ledger {
    pub(crate) dir: PathBuf,
    config: LedgerConfig,
    genesis: Genesis,
    /// Offset just past the genesis frame in the first chunk.
    genesis_end: u64,
    pub(crate) chunks: Vec<Chunk>,
    /// Handle on the last chunk when it is open.
    open_file: Option<File>,
    pub(crate) index: Vec<BatchLocation>,
    /// Where the ledger resumes after batches it does not hold, in order.
    pub(crate) resumptions: Vec<Resumption>,
    durable_seqno: u64,
    pub(crate) committed_seqno: u64,
    unsynced: bool,
    dir_unsynced: bool,
    poisoned: bool,
    /// How many chunks there were, and the last one's length, when a sync last
    /// covered everything: where [`Ledger::recover_tail`] cuts back to.
    durable_chunks: usize,
    durable_bytes: u64,
}

impl Ledger {
    /// Creates a new ledger in `dir` (created if absent) holding only `genesis`,
    /// synced before it returns.
    pub fn create(
        dir: &Path,
        config: LedgerConfig,
        genesis: &Genesis,
    ) -> Result<Self, LedgerError> {
        config.check()?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(LEDGER_DIR_MODE)
            .create(dir)
            .map_err(|source| LedgerError::io(dir, "create", source))?;
        if !chunk::list(dir)?.is_empty() {
            return Err(LedgerError::AlreadyExists(dir.to_owned()));
        }
        let (file, chunk) = create_genesis_chunk(dir, genesis)?;
        let genesis_end = chunk.bytes;
        sync_dir(dir)?;
        Ok(Ledger {
            dir: dir.to_owned(),
            config,
            genesis: genesis.clone(),
            genesis_end,
            chunks: vec![chunk],
            open_file: Some(file),
            index: Vec::new(),
            resumptions: Vec::new(),
            durable_seqno: 0,
            committed_seqno: 0,
            unsynced: false,
            dir_unsynced: false,
            poisoned: false,
            durable_chunks: 1,
            durable_bytes: genesis_end,
        })
    }

    /// Opens the ledger in `dir`: reads every chunk, checks every frame and the
    /// order of entries, rebuilds the index, and cuts a torn tail off the open
    /// chunk (reported in [`Recovery`]). Damage anywhere else is an error naming the
    /// file and offset.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<(Self, Recovery), LedgerError> {
        config.check()?;
        let names = chunk::list(dir)?;
        if names.is_empty() {
            return Err(LedgerError::NotFound(dir.to_owned()));
        }
        let mut scan = crate::recovery::Scan::default();
        let mut chunks = Vec::with_capacity(names.len());
        let mut recovery = Recovery::default();
        let count = names.len();
        // Chunks 1 .. count-1 (all but the first and the last) are closed and
        // self-contained: once the first chunk gave the genesis entry, they are
        // scanned in parallel, each from the seqno its name gives, and joined
        // in order. The first and the last (maybe open, maybe torn) are
        // scanned in sequence.
        let middle_names = names
            .get(1..count.saturating_sub(1))
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let mut middle = Vec::new();
        for (position, (name, path)) in names.into_iter().enumerate() {
            let is_tail = position + 1 == count && name.last.is_none();
            if position == 1 {
                if let Some(genesis) = &scan.genesis {
                    middle = crate::recovery::scan_apart(dir, &middle_names, genesis)?;
                }
            }
            let kept = match middle
                .get_mut(position.wrapping_sub(1))
                .and_then(Option::take)
            {
                Some((kept, own)) => {
                    scan.join(own, &path)?;
                    kept
                }
                None => scan.chunk(&name, &path, &crate::recovery::read_chunk(&path)?, is_tail)?,
            };
            if let Some(torn) = kept.torn {
                cut_file(&path, torn.offset)?;
                recovery.torn = Some(torn);
            }
            chunks.push(Chunk {
                name,
                path,
                bytes: kept.length,
            });
        }
        let genesis = scan.genesis.ok_or_else(|| LedgerError::Corrupt {
            file: chunks[0].path.clone(),
            offset: frame::CHUNK_HEADER_BYTES,
            reason: "the first chunk has no genesis entry".to_owned(),
        })?;
        let open_file = match chunks.last() {
            Some(last) if last.name.last.is_none() => Some(open_append(&last.path)?),
            _ => None,
        };
        let durable_seqno = last_seqno_of(&scan.index, &scan.resumptions);
        let committed_seqno = chunks
            .iter()
            .filter(|chunk| chunk.name.committed)
            .filter_map(|chunk| chunk.name.last)
            .max()
            .unwrap_or(0);
        let durable_chunks = chunks.len();
        let durable_bytes = chunks.last().map_or(0, |chunk| chunk.bytes);
        let ledger = Ledger {
            dir: dir.to_owned(),
            config,
            genesis,
            genesis_end: scan.genesis_end,
            chunks,
            open_file,
            index: scan.index,
            resumptions: scan.resumptions,
            durable_seqno,
            committed_seqno,
            unsynced: false,
            dir_unsynced: false,
            poisoned: false,
            durable_chunks,
            durable_bytes,
        };
        Ok((ledger, recovery))
    }

    /// The genesis entry.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Seqno of the last transaction appended (0 if none), or of the
    /// checkpoint a resume entry after it names.
    pub fn last_seqno(&self) -> u64 {
        last_seqno_of(&self.index, &self.resumptions)
    }

    /// Where the ledger resumes after batches it does not hold, in order
    /// (none for a ledger with every batch from seqno 1).
    pub fn resumptions(&self) -> &[Resumption] {
        &self.resumptions
    }

    /// Seqno of the last transaction covered by a completed sync.
    pub fn durable_seqno(&self) -> u64 {
        self.durable_seqno
    }

    /// Seqno of the last globally committed transaction (nothing at or before it
    /// can be truncated).
    pub fn committed_seqno(&self) -> u64 {
        self.committed_seqno
    }

    /// The index: every batch, in order.
    pub fn batches(&self) -> &[BatchLocation] {
        &self.index
    }

    /// Number of chunk files.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    pub(crate) fn check_writable(&self) -> Result<(), LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned);
        }
        Ok(())
    }

    /// Appends `batch` and the `signature` over the tree ending with it, in one
    /// write. Not durable until [`Ledger::sync`] returns.
    pub fn append(
        &mut self,
        batch: &BatchEntry,
        signature: &SignatureEntry,
    ) -> Result<BatchLocation, LedgerError> {
        self.check_writable()?;
        batch.check_shape()?;
        let expected = self.last_seqno() + 1;
        if batch.first_seqno != expected {
            return Err(LedgerError::NotNext {
                first_seqno: batch.first_seqno,
                expected,
            });
        }
        let batch_payload = EntryRef::Batch(batch).encode();
        let signature_payload = EntryRef::Signature(signature).encode();
        for payload in [&batch_payload, &signature_payload] {
            if payload.len() > ENTRY_BYTES_MAX {
                return Err(LedgerError::EntryTooLarge {
                    bytes: payload.len(),
                    max: ENTRY_BYTES_MAX,
                });
            }
        }
        let (chunk_first, offset, end) =
            self.write_frames(batch.first_seqno, &[&batch_payload, &signature_payload])?;
        let location = BatchLocation {
            view: batch.view,
            first_seqno: batch.first_seqno,
            last_seqno: batch.last_seqno(),
            chunk_first,
            offset,
            end,
        };
        self.index.push(location);
        Ok(location)
    }

    /// Appends `resume`: the ledger continues at `resume.seqno + 1` without
    /// the batches after its last one up to there. The entry opens a chunk
    /// named from `resume.seqno + 1` (after the genesis entry if the ledger
    /// holds nothing else); the open chunk is synced and closed first, or
    /// removed if nothing follows its header (or the genesis entry). The new
    /// chunk is written aside, synced and renamed into place, so a crash leaves
    /// either the ledger before the call or the one after. Durable when it
    /// returns.
    pub fn append_resume(&mut self, resume: &ResumeEntry) -> Result<Resumption, LedgerError> {
        self.check_writable()?;
        resume.frontier().map_err(LedgerError::BadResume)?;
        let last = self.last_seqno();
        if resume.after_seqno != last {
            return Err(LedgerError::NotNext {
                first_seqno: resume.after_seqno + 1,
                expected: last + 1,
            });
        }
        let payload = EntryRef::Resume(resume).encode();
        if payload.len() > ENTRY_BYTES_MAX {
            return Err(LedgerError::EntryTooLarge {
                bytes: payload.len(),
                max: ENTRY_BYTES_MAX,
            });
        }
        if self.unsynced || self.dir_unsynced {
            self.sync()?;
        }
        // The open chunk opened with a resume entry and holds no batch yet
        // (a second install before anything followed the first): this one
        // goes after it, in one append (the chunk keeps its name).
        let lone_resume = self.open_file.is_some()
            && self.resumptions.last().is_some_and(|resume| {
                resume.seqno == last
                    && self
                        .chunks
                        .last()
                        .is_some_and(|chunk| chunk.name.first == resume.chunk_first)
            });
        if lone_resume {
            let (chunk_first, _, end) = self.write_frames(last + 1, &[&payload])?;
            self.sync()?;
            return Ok(self.push_resumption(resume, last, chunk_first, end));
        }
        let bare = self.chunks.last().is_some_and(|chunk| {
            chunk.name.last.is_none()
                && (chunk.bytes == frame::CHUNK_HEADER_BYTES
                    || (self.index.is_empty()
                        && self.resumptions.is_empty()
                        && chunk.bytes == self.genesis_end))
        });
        if self.open_file.is_some() && !bare {
            self.close_open_chunk()?;
        }
        let holds_nothing = self.index.is_empty() && self.resumptions.is_empty();
        let mut bytes = CHUNK_MAGIC.to_vec();
        if holds_nothing {
            encode_frame(&EntryRef::Genesis(&self.genesis).encode(), &mut bytes);
        }
        let genesis_end = bytes.len() as u64;
        encode_frame(&payload, &mut bytes);
        let name = ChunkName::open(resume.seqno + 1);
        let path = self.dir.join(name.file_name());
        let aside = self
            .dir
            .join(format!("{}{RESUME_ASIDE_SUFFIX}", name.file_name()));
        self.write_resumed_chunk(&aside, &path, &bytes, bare)
            .map_err(|error| self.poison(error))?;
        if holds_nothing {
            self.genesis_end = genesis_end;
        }
        self.open_file = Some(open_append(&path).map_err(|error| self.poison(error))?);
        self.chunks.push(Chunk {
            name,
            path,
            bytes: bytes.len() as u64,
        });
        Ok(self.push_resumption(resume, last, name.first, bytes.len() as u64))
    }

    /// Records `resume`, written (and synced) at the end of the chunk named
    /// `chunk_first`, which now ends at `end`, after `held_before`.
    fn push_resumption(
        &mut self,
        resume: &ResumeEntry,
        held_before: u64,
        chunk_first: u64,
        end: u64,
    ) -> Resumption {
        let resumption = Resumption {
            after_seqno: resume.after_seqno,
            held_before,
            seqno: resume.seqno,
            view: resume.view,
            chunk_first,
            end,
            checkpoint: resume.checkpoint.clone(),
            view_starts: resume.view_starts.clone(),
        };
        self.resumptions.push(resumption.clone());
        self.durable_seqno = self.last_seqno();
        self.mark_durable();
        resumption
    }

    /// Undoes the last resume entry, which nothing follows: a resume
    /// transfer's install cut short before the log recorded its base. The
    /// chunks from the one it opens are removed; a ledger left with no chunk
    /// gets its genesis chunk back. Durable when it returns.
    pub fn drop_last_resumption(&mut self) -> Result<(), LedgerError> {
        self.check_writable()?;
        let Some(resume) = self.resumptions.last().cloned() else {
            return Ok(());
        };
        if self
            .index
            .last()
            .is_some_and(|location| location.first_seqno > resume.seqno)
        {
            return Err(LedgerError::SeqnoOutOfRange {
                seqno: resume.held_before,
                low: resume.seqno,
                high: self.last_seqno(),
            });
        }
        self.resumptions.pop();
        // A resume entry right after another in the chunk that one opened:
        // the chunk is cut back to the earlier one.
        let earlier_in_chunk = self
            .resumptions
            .last()
            .filter(|earlier| earlier.chunk_first == resume.chunk_first)
            .map(|earlier| earlier.end);
        let dropped = match earlier_in_chunk {
            Some(end) => self.cut_to(resume.chunk_first, end),
            None => self.drop_chunks_from(resume.chunk_first),
        };
        if let Err(error) = dropped {
            return Err(self.poison(error));
        }
        self.durable_seqno = self.last_seqno();
        self.mark_durable();
        Ok(())
    }

    fn drop_chunks_from(&mut self, chunk_first: u64) -> Result<(), LedgerError> {
        self.open_file = None;
        while let Some(chunk) = self.chunks.pop_if(|chunk| chunk.name.first >= chunk_first) {
            std::fs::remove_file(&chunk.path)
                .map_err(|source| LedgerError::io(&chunk.path, "remove", source))?;
        }
        if self.chunks.is_empty() {
            let (file, chunk) = create_genesis_chunk(&self.dir, &self.genesis)?;
            self.genesis_end = chunk.bytes;
            self.chunks.push(chunk);
            self.open_file = Some(file);
        }
        sync_dir(&self.dir)
    }

    /// Writes `bytes` to `aside` and syncs it, removes the bare open chunk
    /// if `bare`, then renames `aside` to `path`, syncing the folder.
    fn write_resumed_chunk(
        &mut self,
        aside: &Path,
        path: &Path,
        bytes: &[u8],
        bare: bool,
    ) -> Result<(), LedgerError> {
        write_synced(aside, bytes)?;
        if bare {
            let chunk = self.chunks.pop().expect("a bare open chunk is listed");
            self.open_file = None;
            std::fs::remove_file(&chunk.path)
                .map_err(|source| LedgerError::io(&chunk.path, "remove", source))?;
            sync_dir(&self.dir)?;
        }
        std::fs::rename(aside, path).map_err(|source| LedgerError::io(aside, "rename", source))?;
        sync_dir(&self.dir)
    }

    /// Writes `payloads` as frames at the end of the open chunk (created for
    /// transactions from `first` if none is open), in one write. Returns the
    /// chunk's name (its first seqno), the first frame's offset and the end.
    fn write_frames(
        &mut self,
        first: u64,
        payloads: &[&[u8]],
    ) -> Result<(u64, u64, u64), LedgerError> {
        let frames_bytes: usize = payloads.iter().map(|payload| payload.len() + 8).sum();
        let mut bytes = Vec::with_capacity(frames_bytes + CHUNK_MAGIC.len());
        if self.open_file.is_none() {
            self.start_chunk(first, &mut bytes)?;
        }
        let start = bytes.len() as u64;
        for payload in payloads {
            encode_frame(payload, &mut bytes);
        }
        self.write_tail(&bytes)?;
        let chunk = self
            .chunks
            .last_mut()
            .expect("an open chunk exists after start_chunk");
        let offset = chunk.bytes + start;
        chunk.bytes += bytes.len() as u64;
        Ok((chunk.name.first, offset, chunk.bytes))
    }

    /// Creates the open chunk for transactions from `first`; its header goes into
    /// `bytes`, written together with the first frames.
    fn start_chunk(&mut self, first: u64, bytes: &mut Vec<u8>) -> Result<(), LedgerError> {
        let name = ChunkName::open(first);
        let path = self.dir.join(name.file_name());
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(CHUNK_FILE_MODE)
            .open(&path)
            .map_err(|source| self.poison(LedgerError::io(&path, "create", source)))?;
        bytes.extend_from_slice(CHUNK_MAGIC);
        self.open_file = Some(file);
        self.chunks.push(Chunk {
            name,
            path,
            bytes: 0,
        });
        self.dir_unsynced = true;
        Ok(())
    }

    fn write_tail(&mut self, bytes: &[u8]) -> Result<(), LedgerError> {
        let file = self
            .open_file
            .as_mut()
            .expect("the caller made sure a chunk is open");
        if let Err(source) = file.write_all(bytes) {
            let path = &self.chunks.last().expect("an open chunk is listed").path;
            return Err(self.poison(LedgerError::io(path, "write", source)));
        }
        self.unsynced = true;
        Ok(())
    }

    fn poison(&mut self, error: LedgerError) -> LedgerError {
        self.poisoned = true;
        error
    }

    /// Makes everything appended so far durable (one fdatasync, plus the folder's
    /// fsync when a chunk was created), then closes the open chunk if it is full.
    /// Returns the durable seqno.
    pub fn sync(&mut self) -> Result<u64, LedgerError> {
        self.check_writable()?;
        if self.unsynced {
            let file = self
                .open_file
                .as_ref()
                .expect("unsynced bytes are in the open chunk");
            if let Err(source) = file.sync_data() {
                let path = self
                    .chunks
                    .last()
                    .expect("an open chunk is listed")
                    .path
                    .clone();
                return Err(self.poison(LedgerError::io(&path, "fdatasync", source)));
            }
            self.unsynced = false;
        }
        if self.dir_unsynced {
            sync_dir(&self.dir).map_err(|error| self.poison(error))?;
            self.dir_unsynced = false;
        }
        self.durable_seqno = self.last_seqno();
        self.mark_durable();
        self.close_full_chunk()?;
        Ok(self.durable_seqno)
    }

    /// Renames a full, synced open chunk to its closed name. Only after a sync: a
    /// closed chunk must never have a torn tail.
    fn close_full_chunk(&mut self) -> Result<(), LedgerError> {
        let full = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.bytes >= self.config.chunk_bytes);
        if full {
            self.close_open_chunk()?;
        }
        Ok(())
    }

    /// Renames the synced open chunk to its closed name, if it holds a batch
    /// or a resume entry.
    fn close_open_chunk(&mut self) -> Result<(), LedgerError> {
        let last_seqno = self.last_seqno();
        let Some(chunk) = self.chunks.last_mut() else {
            return Ok(());
        };
        let holds_a_batch = last_seqno >= chunk.name.first;
        if chunk.name.last.is_some() || !holds_a_batch {
            return Ok(());
        }
        debug_assert!(!self.unsynced, "a closed chunk never has a torn tail");
        let closed = ChunkName {
            last: Some(last_seqno),
            ..chunk.name
        };
        let path = self.dir.join(closed.file_name());
        if let Err(source) = std::fs::rename(&chunk.path, &path) {
            let error = LedgerError::io(&chunk.path, "rename", source);
            return Err(self.poison(error));
        }
        chunk.name = closed;
        chunk.path = path;
        self.open_file = None;
        sync_dir(&self.dir).map_err(|error| self.poison(error))
    }

    /// Discards every batch after `last_kept_seqno` (0 keeps only the genesis),
    /// which must end a batch and not be below the committed seqno. Durable when it
    /// returns: a restart never sees the discarded suffix. Every intermediate state
    /// is a valid ledger (a prefix), so a crash midway is recovered like any other.
    pub fn truncate(&mut self, last_kept_seqno: u64) -> Result<(), LedgerError> {
        self.check_writable()?;
        let last = self.last_seqno();
        if last_kept_seqno < self.committed_seqno || last_kept_seqno > last {
            return Err(LedgerError::SeqnoOutOfRange {
                seqno: last_kept_seqno,
                low: self.committed_seqno,
                high: last,
            });
        }
        if last_kept_seqno == last {
            return Ok(());
        }
        // A ledger that starts with a resume entry (its genesis entry is in
        // that chunk) cannot be cut below it.
        if let Some(first) = self.resumptions.first().filter(|resume| {
            last_kept_seqno < resume.seqno
                && self.chunks.first().map(|chunk| chunk.name.first) == Some(resume.chunk_first)
        }) {
            return Err(LedgerError::SeqnoOutOfRange {
                seqno: last_kept_seqno,
                low: first.seqno,
                high: last,
            });
        }
        let resumed = self
            .resumptions
            .iter()
            .find(|resume| resume.seqno == last_kept_seqno)
            .map(|resume| (resume.chunk_first, resume.end));
        let kept = match last_kept_seqno {
            0 => 0,
            seqno if resumed.is_some() => self
                .index
                .partition_point(|location| location.last_seqno <= seqno),
            seqno => {
                let position = self
                    .index
                    .binary_search_by_key(&seqno, |location| location.last_seqno)
                    .map_err(|_| LedgerError::NotABatchBoundary { seqno })?;
                position + 1
            }
        };
        let (chunk_first, end) = match (resumed, kept) {
            (Some(at), _) => at,
            (None, 0) => (1, self.genesis_end),
            (None, kept) => (self.index[kept - 1].chunk_first, self.index[kept - 1].end),
        };
        self.cut_to(chunk_first, end)
            .map_err(|error| self.poison(error))?;
        self.index.truncate(kept);
        self.resumptions
            .retain(|resume| resume.seqno <= last_kept_seqno);
        self.durable_seqno = self.durable_seqno.min(last_kept_seqno);
        // The cut is synced and only ever follows a sync: all of it is durable.
        self.mark_durable();
        Ok(())
    }

    /// Deletes the chunks after the one named `chunk_first`, then cuts that one to
    /// `end` bytes, reopening it if it was closed and is cut.
    fn cut_to(&mut self, chunk_first: u64, end: u64) -> Result<(), LedgerError> {
        while self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.name.first > chunk_first)
        {
            let chunk = self.chunks.pop().expect("checked non-empty");
            self.open_file = None;
            std::fs::remove_file(&chunk.path)
                .map_err(|source| LedgerError::io(&chunk.path, "remove", source))?;
        }
        sync_dir(&self.dir)?;
        let chunk = self
            .chunks
            .last_mut()
            .expect("the genesis chunk is never removed");
        if chunk.bytes == end {
            return Ok(());
        }
        if chunk.name.last.is_some() {
            let open = ChunkName::open(chunk.name.first);
            let path = self.dir.join(open.file_name());
            std::fs::rename(&chunk.path, &path)
                .map_err(|source| LedgerError::io(&chunk.path, "rename", source))?;
            chunk.name = open;
            chunk.path = path;
            sync_dir(&self.dir)?;
        }
        cut_file(&chunk.path, end)?;
        chunk.bytes = end;
        self.open_file = Some(open_append(&chunk.path)?);
        self.unsynced = false;
        Ok(())
    }

    /// Marks every transaction up to `seqno` globally committed: it can no longer
    /// be truncated, and closed chunks wholly at or below it get their
    /// `.committed` name. `seqno` must not exceed the durable seqno.
    pub fn commit(&mut self, seqno: u64) -> Result<(), LedgerError> {
        self.check_writable()?;
        if seqno < self.committed_seqno || seqno > self.durable_seqno {
            return Err(LedgerError::SeqnoOutOfRange {
                seqno,
                low: self.committed_seqno,
                high: self.durable_seqno,
            });
        }
        self.committed_seqno = seqno;
        let mut renamed = false;
        let mut newly_committed = Vec::new();
        for chunk in &mut self.chunks {
            let Some(last) = chunk.name.last else {
                continue;
            };
            if chunk.name.committed || last > seqno {
                continue;
            }
            let committed = ChunkName {
                committed: true,
                ..chunk.name
            };
            let path = self.dir.join(committed.file_name());
            std::fs::rename(&chunk.path, &path)
                .map_err(|source| LedgerError::io(&chunk.path, "rename", source))?;
            chunk.name = committed;
            chunk.path = path;
            renamed = true;
            newly_committed.push((committed, chunk.bytes));
        }
        if renamed {
            sync_dir(&self.dir)?;
        }
        // Its index file, so the next open need not scan it (`chunk_index.rs`);
        // not for a chunk with a resume entry, which open must read.
        newly_committed.retain(|(name, _)| {
            !self
                .resumptions
                .iter()
                .any(|resume| resume.chunk_first == name.first)
        });
        for (name, length) in newly_committed {
            let start = self
                .index
                .partition_point(|location| location.chunk_first < name.first);
            let end = self
                .index
                .partition_point(|location| location.chunk_first <= name.first);
            crate::chunk_index::write(&self.dir, &name, length, &self.index[start..end]);
        }
        Ok(())
    }

    /// Where the batch holding `seqno` is.
    pub fn locate(&self, seqno: u64) -> Result<BatchLocation, LedgerError> {
        let position = self
            .index
            .partition_point(|location| location.last_seqno < seqno);
        match self.index.get(position) {
            Some(location) if seqno >= location.first_seqno => Ok(*location),
            _ => Err(not_held(&self.resumptions, seqno)),
        }
    }

    /// Reads back the batch holding `seqno` and the signature after it.
    pub fn read_batch(&self, seqno: u64) -> Result<(BatchEntry, SignatureEntry), LedgerError> {
        let location = self.locate(seqno)?;
        let chunk = self
            .chunks
            .iter()
            .find(|chunk| chunk.name.first == location.chunk_first)
            .expect("the index only names chunks it holds");
        let file = File::open(&chunk.path)
            .map_err(|source| LedgerError::io(&chunk.path, "open", source))?;
        read_batch_at(&file, &chunk.path, &location)
    }
}

/// Reads the batch at `location` in `file` (the chunk at `path`, named in
/// errors) and the signature after it: the one decoding of a located batch,
/// for the ledger and for readers that keep their own index.
pub fn read_batch_at(
    file: &File,
    path: &Path,
    location: &BatchLocation,
) -> Result<(BatchEntry, SignatureEntry), LedgerError> {
    let corrupt = |offset: u64, reason: String| LedgerError::Corrupt {
        file: path.to_owned(),
        offset: location.offset + offset,
        reason,
    };
    let length = usize::try_from(location.end - location.offset)
        .map_err(|error| corrupt(0, error.to_string()))?;
    let mut bytes = vec![0; length];
    file.read_exact_at(&mut bytes, location.offset)
        .map_err(|source| LedgerError::io(path, "read", source))?;
    let mut entries = Vec::with_capacity(2);
    for frame in Frames::starting_at(&bytes, 0) {
        let frame = frame.map_err(|error| corrupt(error.offset, error.fault.to_string()))?;
        let entry = Entry::decode(frame.payload).map_err(|reason| corrupt(frame.offset, reason))?;
        entries.push(entry);
    }
    match <[Entry; 2]>::try_from(entries) {
        Ok([Entry::Batch(batch), Entry::Signature(signature)]) => Ok((batch, signature)),
        _ => Err(corrupt(0, "expected a batch and its signature".to_owned())),
    }
}

// `Ledger::recover_tail` and `Ledger::mark_durable`: a child module, for the
// private fields, so that this file stays about appends and reads.
#[path = "tail.rs"]
mod tail;

impl Ledger {
    /// Counts a synced chunk inserted before the open one (a filled gap,
    /// `fill.rs`) as durable: [`Ledger::recover_tail`] keeps it.
    pub(crate) fn note_chunk_inserted(&mut self) {
        self.durable_chunks += 1;
    }
}

/// Creates the first chunk, `ledger_1`, holding only `genesis`, synced (the
/// folder is not).
fn create_genesis_chunk(dir: &Path, genesis: &Genesis) -> Result<(File, Chunk), LedgerError> {
    let name = ChunkName::open(1);
    let path = dir.join(name.file_name());
    let mut bytes = CHUNK_MAGIC.to_vec();
    encode_frame(&EntryRef::Genesis(genesis).encode(), &mut bytes);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(CHUNK_FILE_MODE)
        .open(&path)
        .map_err(|source| LedgerError::io(&path, "create", source))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_data())
        .map_err(|source| LedgerError::io(&path, "write", source))?;
    let chunk = Chunk {
        name,
        path,
        bytes: bytes.len() as u64,
    };
    Ok((file, chunk))
}

/// Writes `bytes` as the whole file `path` (a chunk written aside, renamed
/// into place by the caller) and syncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(CHUNK_FILE_MODE)
        .open(path)
        .map_err(|source| LedgerError::io(path, "create", source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|source| LedgerError::io(path, "write", source))
}

/// The seqno a ledger holding `index` and `resumptions` ends at.
fn last_seqno_of(index: &[BatchLocation], resumptions: &[Resumption]) -> u64 {
    let after_batches = index.last().map_or(0, |location| location.last_seqno);
    let resumed = resumptions.last().map_or(0, |resume| resume.seqno);
    after_batches.max(resumed)
}

/// The error for a read of `seqno`, which no batch holds: skipped by a resume
/// entry, or outside the ledger.
fn not_held(resumptions: &[Resumption], seqno: u64) -> LedgerError {
    match resumptions
        .iter()
        .find(|resume| resume.held_before < seqno && seqno <= resume.seqno)
    {
        Some(resume) => LedgerError::NotHeld {
            seqno,
            after_seqno: resume.held_before,
            resumes_at: resume.seqno,
        },
        None => LedgerError::UnknownSeqno(seqno),
    }
}

pub(crate) fn open_append(path: &Path) -> Result<File, LedgerError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| LedgerError::io(path, "open", source))
}

/// Cuts `path` to `length` bytes and syncs it.
pub(crate) fn cut_file(path: &Path, length: u64) -> Result<(), LedgerError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| LedgerError::io(path, "open", source))?;
    file.set_len(length)
        .and_then(|()| file.sync_all())
        .map_err(|source| LedgerError::io(path, "truncate", source))
}

/// fsyncs a folder, so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|source| LedgerError::io(dir, "fsync folder", source))
}
