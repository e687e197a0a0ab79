//! Filling the seqnos a resume entry skipped (issue P10): batches fetched
//! from peers after a node joined at a snapshot, checked, written as committed
//! chunks before the resume entry's chunk, and taken into the running ledger.
//!
//! - [`GapCheck`] checks fetched batches as `stele verify` does (the same
//!   functions): in order from the first skipped seqno, each batch's signed
//!   checkpoint opened with the service key and its root compared with the
//!   tree rebuilt from seqno 1; the batch that ends the gap must give the root
//!   the resume entry's checkpoint signs. Nothing a peer sends is written
//!   before it passes.
//! - [`write_filled_chunk`] writes a run of checked batches as one committed
//!   chunk: aside, synced, renamed into place, folder synced. A crash leaves
//!   the ledger before or after it; [`Ledger::open`] takes a chunk put back
//!   in front of the gap like any committed chunk.
//! - [`Ledger::adopt_filled`] takes the written chunk into the running
//!   ledger's chunks and index (a child module, for the private fields).
//!
//! Invariant kept: a filled chunk starts where the ledger's first gap starts
//! and ends at or before the resume point, so the gap only ever shrinks from
//! the front and the ledger is a valid one after every step.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use stele_history::{Checkpoint, Digest, MerkleTree, NoteVerifier, VerifyingKey, TILE_LEAVES};

use crate::chunk::ChunkName;
use crate::entry::EntryRef;
use crate::frame::{encode_frame, CHUNK_MAGIC};
use crate::ledger::{sync_dir, write_synced, BatchLocation, Resumption};
use crate::verify::{check_next_batch, check_signature_entry, open_checkpoint, Certifier};
use crate::{BatchEntry, Genesis, Ledger, LedgerError, SignatureEntry};

/// Suffix of a filled chunk while it is written (not a chunk name: listings
/// skip it; [`remove_unfinished_fills`] deletes leftovers).
pub const FILL_ASIDE_SUFFIX: &str = ".fill-aside";

/// Checks batches fetched for a ledger's first gap, in order.
#[derive(Debug)]
pub struct GapCheck {
    /// The service key, as the genesis entry records it.
    certifier: Certifier,
    /// The tree of seqnos 1 ..= `next_seqno - 1` (its old tiles forgotten).
    tree: MerkleTree,
    next_seqno: u64,
    last_view: u64,
    /// The seqno the gap ends at (the resume entry's) and the root its
    /// checkpoint signs.
    resumes_at: u64,
    resume_root: Digest,
}

impl GapCheck {
    /// A check of batches from `tree.size() + 1` (`tree` is the ledger's own
    /// up to where its first gap starts) up to `resumption`'s seqno, against
    /// the key of `genesis`.
    pub fn new(
        genesis: &Genesis,
        resumption: &Resumption,
        tree: MerkleTree,
    ) -> Result<Self, LedgerError> {
        let bad = |reason: String| LedgerError::BadFill(reason);
        let key = VerifyingKey::from_bytes(&genesis.public_key)
            .map_err(|_| bad("the genesis public key is not a valid Ed25519 key".to_owned()))?;
        let verifier = NoteVerifier::new(&genesis.origin, key)
            .map_err(|error| bad(format!("the genesis origin is not a note name: {error}")))?;
        let checkpoint = Checkpoint::open(&resumption.checkpoint, &verifier)
            .map_err(|error| bad(format!("the resume entry's checkpoint: {error}")))?;
        if tree.size() != resumption.held_before || tree.size() >= resumption.seqno {
            return Err(bad(format!(
                "a tree of {} transactions does not start the gap {}..={}",
                tree.size(),
                resumption.held_before + 1,
                resumption.seqno
            )));
        }
        // The view of the last transaction held (the view starts cover every
        // seqno up to the resume point).
        let last_view = resumption
            .view_starts
            .iter()
            .take_while(|(first, _)| *first <= resumption.held_before)
            .last()
            .map_or(0, |(_, view)| *view);
        Ok(GapCheck {
            certifier: Certifier::ServiceKey(verifier),
            tree,
            next_seqno: resumption.held_before + 1,
            last_view,
            resumes_at: resumption.seqno,
            resume_root: checkpoint.root,
        })
    }

    /// The next seqno the check expects.
    pub fn next_seqno(&self) -> u64 {
        self.next_seqno
    }

    /// True once the batches checked reach the resume point.
    pub fn is_done(&self) -> bool {
        self.next_seqno > self.resumes_at
    }

    /// Checks the next fetched batch and its signature entry; on an error
    /// the check is unchanged, so the batch can be fetched again elsewhere.
    pub fn check(&mut self, batch: &BatchEntry, signature: &SignatureEntry) -> Result<(), String> {
        let opened = open_checkpoint(signature, &self.certifier);
        self.check_opened(batch, signature, batch.leaf_hashes(), opened)
    }

    /// Checks `batches` in order, their leaves hashed and their checkpoints
    /// opened in parallel first (the work that needs no earlier batch).
    /// Returns how many passed, and why the next one did not, if one did not:
    /// those before it are checked as if by [`GapCheck::check`].
    pub fn check_run(
        &mut self,
        batches: &[(BatchEntry, SignatureEntry)],
    ) -> (usize, Option<String>) {
        let certifier = &self.certifier;
        let prepared: Vec<_> = batches
            .par_iter()
            .map(|(batch, signature)| (batch.leaf_hashes(), open_checkpoint(signature, certifier)))
            .collect();
        for (passed, ((batch, signature), (leaves, opened))) in
            batches.iter().zip(prepared).enumerate()
        {
            if let Err(refused) = self.check_opened(batch, signature, leaves, opened) {
                return (passed, Some(refused));
            }
        }
        (batches.len(), None)
    }

    fn check_opened(
        &mut self,
        batch: &BatchEntry,
        signature: &SignatureEntry,
        leaves: Vec<Digest>,
        opened: Result<Checkpoint, String>,
    ) -> Result<(), String> {
        check_next_batch(batch, self.next_seqno, self.last_view)?;
        let last = batch.last_seqno();
        if last > self.resumes_at {
            return Err(format!(
                "batch {}..={last} runs past the resume point {}",
                batch.first_seqno, self.resumes_at
            ));
        }
        let checkpoint = opened?;
        let size = self.tree.size();
        self.tree.append_leaf_hashes(&leaves);
        let root = self.tree.root();
        let checked = check_signature_entry(
            signature,
            &checkpoint,
            last,
            batch.view,
            batch.leaf_format,
            root,
        )
        .and_then(|()| {
            if last == self.resumes_at && root != self.resume_root {
                return Err(format!(
                    "the batches give root {} at seqno {last} but the resume entry's checkpoint signs {}",
                    root.to_hex(),
                    self.resume_root.to_hex()
                ));
            }
            Ok(())
        });
        if let Err(refused) = checked {
            self.tree
                .truncate(size)
                .expect("the tree was just appended to from this size, inside its window");
            return Err(refused);
        }
        // Only the tile a later root needs stays below the kept levels.
        let size = self.tree.size();
        self.tree.forget_before(size / TILE_LEAVES * TILE_LEAVES);
        self.next_seqno = last + 1;
        self.last_view = batch.view;
        Ok(())
    }
}

/// A run of checked batches written as a committed chunk, to be adopted by
/// the ledger ([`Ledger::adopt_filled`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilledChunk {
    /// Its name: first and last seqno, committed.
    pub name: ChunkName,
    /// Where it is.
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// Its batches' locations.
    pub locations: Vec<BatchLocation>,
}

/// Writes `batches` (contiguous, each checked by a [`GapCheck`]) as the
/// committed chunk they name in `dir` (the first chunk, from seqno 1, opens
/// with `genesis`): aside, synced, renamed, folder synced; then its index
/// file (a cache). Durable when it returns.
pub fn write_filled_chunk(
    dir: &Path,
    genesis: &Genesis,
    batches: &[(BatchEntry, SignatureEntry)],
) -> Result<FilledChunk, LedgerError> {
    let (Some((first, _)), Some((last, _))) = (batches.first(), batches.last()) else {
        return Err(LedgerError::BadFill("no batch to write".to_owned()));
    };
    let name = ChunkName {
        first: first.first_seqno,
        last: Some(last.last_seqno()),
        committed: true,
    };
    let mut bytes = CHUNK_MAGIC.to_vec();
    if name.first == 1 {
        encode_frame(&EntryRef::Genesis(genesis).encode(), &mut bytes);
    }
    let mut locations = Vec::with_capacity(batches.len());
    for (batch, signature) in batches {
        let offset = bytes.len() as u64;
        encode_frame(&EntryRef::Batch(batch).encode(), &mut bytes);
        encode_frame(&EntryRef::Signature(signature).encode(), &mut bytes);
        locations.push(BatchLocation {
            view: batch.view,
            first_seqno: batch.first_seqno,
            last_seqno: batch.last_seqno(),
            chunk_first: name.first,
            offset,
            end: bytes.len() as u64,
        });
    }
    debug_assert!(
        locations
            .windows(2)
            .all(|pair| pair[0].last_seqno + 1 == pair[1].first_seqno),
        "filled batches are contiguous"
    );
    // Two chunks named from one seqno would make the ledger unopenable.
    if let Some((taken, _)) = crate::chunk::list(dir)?
        .into_iter()
        .find(|(chunk, _)| chunk.first == name.first)
    {
        return Err(LedgerError::BadFill(format!(
            "chunk {} already starts at seqno {}",
            taken.file_name(),
            name.first
        )));
    }
    let path = dir.join(name.file_name());
    let aside = dir.join(format!("{}{FILL_ASIDE_SUFFIX}", name.file_name()));
    write_synced(&aside, &bytes)?;
    std::fs::rename(&aside, &path).map_err(|source| LedgerError::io(&aside, "rename", source))?;
    sync_dir(dir)?;
    let length = bytes.len() as u64;
    crate::chunk_index::write(dir, &name, length, &locations);
    Ok(FilledChunk {
        name,
        path,
        bytes: length,
        locations,
    })
}

/// Deletes filled chunks a crash left half written (before a fetch starts).
pub fn remove_unfinished_fills(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.ends_with(FILL_ASIDE_SUFFIX))
        {
            // A leftover that stays is retried at the next fetch's start.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Ledger {
    /// The first gap (the first resume entry with seqnos still missing
    /// before it), if any.
    pub fn first_gap(&self) -> Option<&Resumption> {
        self.resumptions
            .iter()
            .find(|resume| resume.held_before < resume.seqno)
    }

    /// The first gap, if a chunk can fill it: none starts where it starts.
    /// (A resume entry written right after another, with nothing between,
    /// sits in the chunk the first one opened, named from where the second
    /// one's gap starts: that gap cannot take a chunk of its own.)
    pub fn fillable_gap(&self) -> Option<&Resumption> {
        self.first_gap().filter(|gap| {
            !self
                .chunks
                .iter()
                .any(|chunk| chunk.name.first == gap.held_before + 1)
        })
    }

    /// Takes `filled` (written by [`write_filled_chunk`] in this ledger's
    /// folder) into the ledger: it must start where the first gap starts and
    /// end at or before its resume point. Returns the gap's resumption as it
    /// now is (`held_before` moved up).
    pub fn adopt_filled(&mut self, filled: FilledChunk) -> Result<Resumption, LedgerError> {
        self.check_writable()?;
        let gap = self
            .resumptions
            .iter()
            .position(|resume| resume.held_before < resume.seqno)
            .ok_or_else(|| LedgerError::BadFill("the ledger skips no seqnos".to_owned()))?;
        let resume = &self.resumptions[gap];
        let last = filled.name.last.unwrap_or(0);
        let taken = self
            .chunks
            .iter()
            .any(|chunk| chunk.name.first == filled.name.first);
        let fits = filled.name.committed
            && !taken
            && filled.name.first == resume.held_before + 1
            && last <= resume.seqno
            && filled.locations.first().map(|at| at.first_seqno) == Some(filled.name.first)
            && filled.locations.last().map(|at| at.last_seqno) == Some(last)
            && filled.path.parent() == Some(self.dir.as_path());
        if !fits {
            return Err(LedgerError::BadFill(format!(
                "a chunk of seqnos {}..={last} does not fill the gap {}..={}",
                filled.name.first,
                resume.held_before + 1,
                resume.seqno
            )));
        }
        let at = self
            .chunks
            .partition_point(|chunk| chunk.name.first < filled.name.first);
        self.chunks.insert(
            at,
            crate::ledger::Chunk {
                name: filled.name,
                path: filled.path,
                bytes: filled.bytes,
            },
        );
        // Written and synced before this call: it is part of the durable
        // ledger [`Ledger::recover_tail`] returns to.
        self.note_chunk_inserted();
        let at = self
            .index
            .partition_point(|location| location.first_seqno < filled.name.first);
        self.index.splice(at..at, filled.locations);
        // What fills a gap was committed (it precedes a snapshot).
        self.committed_seqno = self.committed_seqno.max(last);
        let resume = &mut self.resumptions[gap];
        resume.held_before = last;
        Ok(resume.clone())
    }
}
