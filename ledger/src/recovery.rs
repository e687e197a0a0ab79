//! The recovery scan of [`crate::Ledger::open`]: checks every frame and the order of
//! entries chunk by chunk, rebuilds the index, and finds a torn tail of the open
//! chunk (which `open` then cuts off).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::chunk::ChunkName;
use crate::frame::{self, Frames, CHUNK_MAGIC};
use crate::ledger::{BatchLocation, Resumption, TornTail};
use crate::{Entry, Genesis, LedgerError};

/// The ordering checks of `open`, carried from chunk to chunk.
#[derive(Default)]
pub(crate) struct Scan {
    pub(crate) genesis: Option<Genesis>,
    pub(crate) genesis_end: u64,
    pub(crate) index: Vec<BatchLocation>,
    /// Where the ledger resumes after batches it does not hold, in order.
    pub(crate) resumptions: Vec<Resumption>,
    /// A batch read whose signature has not been seen yet.
    pending: Option<BatchLocation>,
    /// The seqno expected first when `index` is empty (1, or the first of
    /// the chunk a separate scan starts at).
    first_seqno: Option<u64>,
    /// The current chunk starts past the ledger's end: its first entry (after
    /// a genesis entry) must be a resume entry that skips to it.
    gap_to: Option<u64>,
    /// Nothing but a genesis entry read yet in the current chunk.
    chunk_opening: bool,
    /// A genesis entry repeated at a chunk's start: a resume entry must follow.
    resume_due: bool,
    /// A resume entry opened the current chunk (it names the chunk; others
    /// may follow it directly: installs with no batch between them).
    resumed_in_chunk: bool,
}

/// Scans closed chunks apart, in parallel, each from the seqno its name
/// gives ([`Scan::starting_at`]): what each keeps and its scan, to be joined in
/// order ([`Scan::join`]).
///
/// A committed chunk with a usable index file (`chunk_index.rs`) is not read:
/// its index is. A committed chunk scanned gets its index file written.
pub(crate) fn scan_apart(
    dir: &Path,
    names: &[(ChunkName, PathBuf)],
    genesis: &Genesis,
) -> Result<Vec<Option<(Kept, Scan)>>, LedgerError> {
    names
        .par_iter()
        .map(|(name, path)| {
            let mut own = Scan::starting_at(genesis.clone(), name.first);
            let length = std::fs::metadata(path)
                .map_err(|source| LedgerError::io(path, "read", source))?
                .len();
            if let Some(locations) = crate::chunk_index::read(dir, name, length) {
                own.index = locations;
                return Ok(Some((Kept { length, torn: None }, own)));
            }
            let kept = own.chunk(name, path, &read_chunk(path)?, false)?;
            // A chunk with a resume entry has no index file: the index
            // records batches only, and open must see the entry.
            if name.committed && own.resumptions.is_empty() {
                crate::chunk_index::write(dir, name, kept.length, &own.index);
            }
            Ok(Some((kept, own)))
        })
        .collect()
}

/// The bytes of the chunk file at `path`.
pub(crate) fn read_chunk(path: &Path) -> Result<Vec<u8>, LedgerError> {
    std::fs::read(path).map_err(|source| LedgerError::io(path, "read", source))
}

/// What to keep of one chunk.
pub(crate) struct Kept {
    pub(crate) length: u64,
    pub(crate) torn: Option<TornTail>,
}

impl Scan {
    /// A scan of the chunks from one that starts at `first_seqno`, after the
    /// genesis entry: closed chunks are self-contained, so they are scanned
    /// apart (in parallel) and their indexes joined in order ([`Scan::join`]).
    pub(crate) fn starting_at(genesis: Genesis, first_seqno: u64) -> Scan {
        Scan {
            genesis: Some(genesis),
            first_seqno: Some(first_seqno),
            ..Scan::default()
        }
    }

    /// Appends the index of `later`, a scan of the chunks right after these.
    /// Each chunk's scan checked that it starts at the seqno its name gives
    /// and ends at the one its name gives; this checks that they follow.
    pub(crate) fn join(&mut self, mut later: Scan, path: &Path) -> Result<(), LedgerError> {
        let held = self.next_seqno() - 1;
        let resumes_over_gap = later.resumptions.first_mut().filter(|resume| {
            Some(resume.chunk_first) == later.first_seqno
                && resume.after_seqno <= held
                && held <= resume.seqno
        });
        let gap_covered = match resumes_over_gap {
            Some(resume) => {
                resume.held_before = held;
                true
            }
            None => false,
        };
        if (later.first_seqno != Some(self.next_seqno()) && !gap_covered) || self.pending.is_some()
        {
            return Err(LedgerError::Corrupt {
                file: path.to_owned(),
                offset: 0,
                reason: format!(
                    "chunk starts at seqno {} but the ledger continues at {}",
                    later.first_seqno.unwrap_or(0),
                    self.next_seqno()
                ),
            });
        }
        self.index.extend(later.index);
        self.resumptions.extend(later.resumptions);
        Ok(())
    }

    fn next_seqno(&self) -> u64 {
        let after_batches = self.index.last().map(|location| location.last_seqno + 1);
        let after_resume = self.resumptions.last().map(|resume| resume.seqno + 1);
        [after_batches, after_resume]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.first_seqno.unwrap_or(1))
    }

    /// Checks one chunk. `is_tail`: it is the open chunk, the only place a torn
    /// tail may be.
    pub(crate) fn chunk(
        &mut self,
        name: &ChunkName,
        path: &Path,
        bytes: &[u8],
        is_tail: bool,
    ) -> Result<Kept, LedgerError> {
        let corrupt = |offset: u64, reason: String| LedgerError::Corrupt {
            file: path.to_owned(),
            offset,
            reason,
        };
        if let Err(reason) = frame::check_header(bytes) {
            let torn_header = is_tail && name.first != 1 && CHUNK_MAGIC.starts_with(bytes);
            if !torn_header {
                return Err(corrupt(0, reason.to_owned()));
            }
            // A crash right after the chunk was created: write a fresh header.
            let torn = self.torn(path, 0, bytes.len() as u64, reason.to_owned());
            std::fs::write(path, CHUNK_MAGIC)
                .map_err(|source| LedgerError::io(path, "write", source))?;
            return Ok(Kept {
                length: frame::CHUNK_HEADER_BYTES,
                torn: Some(TornTail {
                    offset: frame::CHUNK_HEADER_BYTES,
                    ..torn
                }),
            });
        }
        let first_in_chunk = self.next_seqno();
        if name.first < first_in_chunk {
            return Err(corrupt(
                0,
                format!(
                    "chunk starts at seqno {} but the ledger already holds up to {}",
                    name.first,
                    first_in_chunk - 1
                ),
            ));
        }
        self.gap_to = (name.first > first_in_chunk).then_some(name.first);
        self.chunk_opening = true;
        self.resumed_in_chunk = false;
        let mut kept_end = frame::CHUNK_HEADER_BYTES;
        let mut torn = None;
        for frame in Frames::new(bytes) {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) if is_tail && error.is_torn_tail(bytes) => {
                    torn = Some(error.fault.to_string());
                    break;
                }
                Err(error) => return Err(corrupt(error.offset, error.fault.to_string())),
            };
            let entry = Entry::decode(frame.payload)
                .map_err(|reason| corrupt(frame.offset, format!("undecodable entry: {reason}")))?;
            self.entry(name, entry, frame.offset, frame.end)
                .map_err(|reason| corrupt(frame.offset, reason))?;
            if self.pending.is_none() {
                kept_end = frame.end;
            }
        }
        if let Some(gap_to) = self.gap_to.take() {
            return Err(corrupt(0, self.gap_reason(gap_to)));
        }
        if let Some(pending) = self.pending.take() {
            if !is_tail {
                return Err(corrupt(
                    pending.offset,
                    "batch without its signature at the end of a closed chunk".to_owned(),
                ));
            }
            torn.get_or_insert_with(|| "batch without its signature".to_owned());
        }
        if let Some(last) = name.last {
            let held = self.next_seqno() - 1;
            if held != last || held < name.first {
                return Err(corrupt(
                    0,
                    format!("chunk is named up to seqno {last} but holds up to {held}"),
                ));
            }
        }
        let torn =
            torn.map(|reason| self.torn(path, kept_end, bytes.len() as u64 - kept_end, reason));
        Ok(Kept {
            length: kept_end,
            torn,
        })
    }

    fn torn(&self, path: &Path, offset: u64, bytes: u64, reason: String) -> TornTail {
        TornTail {
            file: path.to_owned(),
            offset,
            bytes,
            reason,
        }
    }

    fn gap_reason(&self, gap_to: u64) -> String {
        crate::chunk::gap_reason(gap_to, self.next_seqno())
    }

    /// Checks one entry's place in the sequence.
    fn entry(
        &mut self,
        name: &ChunkName,
        entry: Entry,
        offset: u64,
        end: u64,
    ) -> Result<(), String> {
        let first_frame = offset == frame::CHUNK_HEADER_BYTES;
        let opening = std::mem::replace(&mut self.chunk_opening, false);
        if !matches!(entry, Entry::Resume(_)) {
            if let Some(gap_to) = self.gap_to.filter(|_| !matches!(entry, Entry::Genesis(_))) {
                return Err(self.gap_reason(gap_to));
            }
            if self.resume_due {
                return Err("a repeated genesis entry not followed by a resume entry".to_owned());
            }
        }
        match entry {
            Entry::Genesis(genesis) if first_frame && self.genesis.is_none() => {
                self.genesis = Some(genesis);
                self.genesis_end = end;
                self.chunk_opening = true;
                Ok(())
            }
            // The first chunk of a ledger that resumed right after its
            // genesis, once the batches before it were fetched.
            Entry::Genesis(genesis) if first_frame && self.genesis.as_ref() == Some(&genesis) => {
                self.chunk_opening = true;
                self.resume_due = true;
                Ok(())
            }
            Entry::Genesis(_) => Err("a genesis entry that is not the first entry".to_owned()),
            _ if self.genesis.is_none() => {
                Err("the first entry is not the genesis entry".to_owned())
            }
            Entry::Resume(resume) => {
                if !opening || self.pending.is_some() {
                    return Err("a resume entry that does not open its chunk".to_owned());
                }
                resume.frontier()?;
                let held = self.next_seqno() - 1;
                if !self.resumed_in_chunk && resume.seqno + 1 != name.first {
                    return Err(format!(
                        "a resume entry at seqno {} opens a chunk named from seqno {}",
                        resume.seqno, name.first
                    ));
                }
                if resume.after_seqno > held || held > resume.seqno {
                    return Err(format!(
                        "a resume entry skipping seqnos {}..={} where the ledger holds up to {held}",
                        resume.after_seqno + 1,
                        resume.seqno
                    ));
                }
                self.gap_to = None;
                self.resume_due = false;
                self.chunk_opening = true;
                self.resumed_in_chunk = true;
                self.resumptions.push(Resumption {
                    after_seqno: resume.after_seqno,
                    held_before: held,
                    seqno: resume.seqno,
                    view: resume.view,
                    chunk_first: name.first,
                    end,
                    checkpoint: resume.checkpoint,
                    view_starts: resume.view_starts,
                });
                Ok(())
            }
            Entry::Batch(batch) => {
                if self.pending.is_some() {
                    return Err("a batch follows a batch without a signature between".to_owned());
                }
                batch.check_shape().map_err(|error| error.to_string())?;
                let expected = self.next_seqno();
                if batch.first_seqno != expected {
                    return Err(format!(
                        "batch starts at seqno {}, expected {expected}",
                        batch.first_seqno
                    ));
                }
                self.pending = Some(BatchLocation {
                    view: batch.view,
                    first_seqno: batch.first_seqno,
                    last_seqno: batch.last_seqno(),
                    chunk_first: name.first,
                    offset,
                    end,
                });
                Ok(())
            }
            Entry::Signature(_) => {
                let mut location = self
                    .pending
                    .take()
                    .ok_or_else(|| "a signature entry that does not follow a batch".to_owned())?;
                location.end = end;
                self.index.push(location);
                Ok(())
            }
        }
    }
}
