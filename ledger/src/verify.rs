//! The offline verifier behind `stele verify`: reads a ledger folder with nothing
//! but (optionally) the service's public key, and checks every frame, every
//! write-set digest, every leaf (from format 2 with its command), every Merkle
//! root, every checkpoint signature and (from format 2) every batch's view
//! against its checkpoint's `stele-view` line.
//!
//! Who certifies the checkpoints is a [`Trust`]: the service key (given, or
//! as the genesis entry records it), or in BFT mode the validators, whose
//! genesis entry records no service key
//! ([`stele_history::identity::NO_SERVICE_KEY`]) and whose signature entries
//! hold certificate notes signed by validators holding more than two thirds
//! of the voting power. A BFT ledger verifies only against validators the
//! operator gives: the ledger does not record them.
//!
//! The files alone cannot show that the newest batches were cut off: every
//! prefix of a ledger is a valid ledger. [`verify_ledger_against`] takes a
//! checkpoint the auditor kept (an *anchor*) and requires the ledger to reach
//! its size with its root.
//!
//! Unlike [`crate::Ledger::open`], it repairs nothing: a torn tail is a failure
//! (with a note that the node cuts it off when it next starts).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use stele_history::checkpoint::validators_of_origin;
use stele_history::identity::NO_SERVICE_KEY;
use stele_history::{
    validator_key_name, Checkpoint, Digest, HistoryError, MerkleTree, NoteVerifier,
    ValidatorQuorum, VerifyingKey,
};

use crate::chunk::{self, ChunkName};
use crate::frame::{self, Frame, Frames};
use crate::{BatchEntry, Entry, LedgerError, SignatureEntry};

/// What the operator trusts to certify the ledger's checkpoints.
#[derive(Debug, Clone, Copy, Default)]
pub enum Trust<'a> {
    /// Nothing given: the service key the genesis entry records (a ledger
    /// certified by validators fails: it records none).
    #[default]
    Genesis,
    /// The service's public key: the genesis entry must record it.
    ServiceKey(&'a VerifyingKey),
    /// The validators of a service in BFT mode (as `GET /node/validators`
    /// serves them): the genesis entry must record no service key, and every
    /// checkpoint must be signed by validators holding more than two thirds
    /// of their voting power.
    Validators(&'a ValidatorQuorum),
}

impl<'a> From<Option<&'a VerifyingKey>> for Trust<'a> {
    fn from(key: Option<&'a VerifyingKey>) -> Self {
        key.map_or(Trust::Genesis, Trust::ServiceKey)
    }
}

/// What a ledger that records no service key fails with unless validators
/// are given.
pub const NEEDS_VALIDATORS: &str = "this ledger is certified by validators (BFT mode): \
     pass --validators V.json (GET /node/validators)";

/// Whose key the checkpoints were verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The key given by the operator.
    Given,
    /// The key recorded in the genesis entry: proves the ledger is consistent with
    /// itself, not that it is the service you think it is.
    Genesis,
    /// The validators given by the operator (BFT mode): each checkpoint was
    /// certified by more than two thirds of their voting power.
    Validators,
}

/// What opens a ledger's checkpoints, once its genesis entry is read.
#[derive(Debug, Clone)]
pub(crate) enum Certifier {
    /// One signature by the service key, named after the origin.
    ServiceKey(NoteVerifier),
    /// Signatures of validators holding more than two thirds of the power,
    /// named `<origin>/v<id>` (checked to be the ledger's origin).
    Validators(ValidatorQuorum),
}

impl Certifier {
    /// Verifies a checkpoint note and parses it; its origin is the ledger's.
    pub(crate) fn open(&self, note: &str) -> Result<Checkpoint, HistoryError> {
        match self {
            Certifier::ServiceKey(verifier) => Checkpoint::open(note, verifier),
            Certifier::Validators(validators) => {
                Checkpoint::open_certified(note, validators).map(|(checkpoint, _)| checkpoint)
            }
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Chunk files read.
    pub chunks: usize,
    /// Entries (genesis, batches, signatures).
    pub entries: u64,
    /// Transactions.
    pub transactions: u64,
    /// Bytes read.
    pub bytes: u64,
    /// The checkpoint origin from the genesis entry.
    pub origin: String,
    /// The public key checkpoints were verified against; with
    /// [`KeySource::Validators`], the genesis entry's [`NO_SERVICE_KEY`].
    pub public_key: [u8; 32],
    /// Where that key came from.
    pub key_source: KeySource,
    /// The last checkpoint verified (none if the ledger holds no batch).
    pub last_checkpoint: Option<Checkpoint>,
    /// The anchor checkpoint the ledger was found to extend, if one was given.
    pub anchor: Option<Checkpoint>,
    /// The seqnos resume entries skip (`first ..= last` each, in order): the
    /// ledger does not hold them, and the transactions after each were checked
    /// against the signed checkpoint it resumes at.
    pub absent: Vec<(u64, u64)>,
}

/// The first thing that did not verify, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{}: {what}", file.display(), offset.map(|offset| format!(" at byte {offset}")).unwrap_or_default(), seqno.map(|seqno| format!(" (seqno {seqno})")).unwrap_or_default())]
pub struct VerifyFailure {
    /// The chunk file (or the folder, for a problem with the set of files).
    pub file: PathBuf,
    /// Offset of the bad frame or header, if the problem has one.
    pub offset: Option<u64>,
    /// The seqno concerned, if any.
    pub seqno: Option<u64>,
    /// What did not match.
    pub what: String,
}

/// Progress, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes verified so far.
    pub bytes_done: u64,
    /// Bytes in all chunks.
    pub bytes_total: u64,
    /// Transactions verified so far.
    pub transactions: u64,
}

/// Verifies the ledger in `dir`. With `key`, checkpoints must be signed by it;
/// without, by the key in the genesis entry ([`KeySource::Genesis`]).
pub fn verify_ledger(
    dir: &Path,
    key: Option<&VerifyingKey>,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifySummary, VerifyFailure> {
    verify_ledger_against(dir, key, None, progress)
}

/// [`verify_ledger`], and then, with `anchor` (a signed checkpoint note of this
/// service, checked with the same key), that the ledger holds at least its tree
/// size and that its root at that size is the anchor's: a cut or a rewritten
/// tail fails.
pub fn verify_ledger_against(
    dir: &Path,
    key: Option<&VerifyingKey>,
    anchor: Option<&str>,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifySummary, VerifyFailure> {
    verify_split_ledger(dir, None, key, anchor, progress)
}

/// [`verify_ledger_against`] a ledger whose archived chunks are in `archive`
/// (`None`: its own `archive/` folder, if any).
pub fn verify_split_ledger(
    dir: &Path,
    archive: Option<&Path>,
    key: Option<&VerifyingKey>,
    anchor: Option<&str>,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifySummary, VerifyFailure> {
    verify_ledger_with(dir, archive, Trust::from(key), anchor, progress)
}

/// [`verify_split_ledger`] with its checkpoints certified as `trust` says:
/// by a service key, or by validators (BFT mode). The anchor is opened the
/// same way.
pub fn verify_ledger_with(
    dir: &Path,
    archive: Option<&Path>,
    trust: Trust<'_>,
    anchor: Option<&str>,
    progress: &mut dyn FnMut(Progress),
) -> Result<VerifySummary, VerifyFailure> {
    let listed = match archive {
        Some(archive) => chunk::list_with_archive(dir, archive),
        None => chunk::list(dir),
    };
    let chunks = listed.map_err(|error| from_ledger_error(dir, error))?;
    if chunks.is_empty() {
        return Err(VerifyFailure {
            file: dir.to_owned(),
            offset: None,
            seqno: None,
            what: "no ledger chunks (ledger_*) in this folder".to_owned(),
        });
    }
    let mut bytes_total = 0;
    for (_, path) in &chunks {
        let metadata = std::fs::metadata(path).map_err(|error| io_failure(path, &error))?;
        bytes_total += metadata.len();
    }
    let mut state = State {
        trust,
        ..State::default()
    };
    let last_index = chunks.len() - 1;
    for (index, (name, path)) in chunks.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|error| io_failure(path, &error))?;
        state.chunk(name, path, &bytes, index == last_index)?;
        state.bytes += bytes.len() as u64;
        progress(Progress {
            bytes_done: state.bytes,
            bytes_total,
            transactions: state.next_seqno - 1,
        });
    }
    state.finish(dir, chunks.len(), anchor)
}

fn from_ledger_error(dir: &Path, error: LedgerError) -> VerifyFailure {
    match error {
        LedgerError::Corrupt {
            file,
            offset,
            reason,
        } => VerifyFailure {
            file,
            offset: Some(offset),
            seqno: None,
            what: reason,
        },
        other => VerifyFailure {
            file: dir.to_owned(),
            offset: None,
            seqno: None,
            what: other.to_string(),
        },
    }
}

fn io_failure(path: &Path, error: &std::io::Error) -> VerifyFailure {
    VerifyFailure {
        file: path.to_owned(),
        offset: None,
        seqno: None,
        what: format!("cannot read: {error}"),
    }
}

/// A decoded frame, with the leaf hashes of a batch computed (in parallel, before
/// the sequential checks).
struct Decoded {
    offset: u64,
    entry: Entry,
    leaf_hashes: Vec<Digest>,
    /// A signature entry's checkpoint, opened, if its certifier was known.
    checkpoint: Option<Result<Checkpoint, String>>,
}

/// A batch read, awaiting its signature entry.
#[derive(Debug, Clone, Copy)]
struct Pending {
    first: u64,
    last: u64,
    view: u64,
    leaf_format: u8,
    offset: u64,
}

#[derive(Default)]
struct State<'a> {
    trust: Trust<'a>,
    /// Set with the genesis entry.
    certifier: Option<Certifier>,
    genesis: Option<crate::Genesis>,
    tree: MerkleTree,
    next_seqno: u64,
    last_view: u64,
    /// The batch awaiting its signature.
    pending: Option<Pending>,
    pending_file: PathBuf,
    last_checkpoint: Option<Checkpoint>,
    entries: u64,
    bytes: u64,
    /// Entries read so far in the current chunk.
    entries_in_chunk: u64,
    /// The current chunk starts past the ledger's end: it must open with a
    /// resume entry skipping to it.
    gap_to: Option<u64>,
    /// A genesis entry repeated at a chunk's start: a resume entry must follow.
    resume_due: bool,
    /// Only genesis and resume entries read so far in the current chunk.
    opening: bool,
    /// A resume entry opened the current chunk (it names the chunk).
    resumed_in_chunk: bool,
    absent: Vec<(u64, u64)>,
}

impl State<'_> {
    fn chunk(
        &mut self,
        name: &ChunkName,
        path: &Path,
        bytes: &[u8],
        is_last: bool,
    ) -> Result<(), VerifyFailure> {
        if self.next_seqno == 0 {
            self.next_seqno = 1;
        }
        self.entries_in_chunk = 0;
        self.opening = true;
        self.resumed_in_chunk = false;
        let fail = |offset: Option<u64>, seqno: Option<u64>, what: String| VerifyFailure {
            file: path.to_owned(),
            offset,
            seqno,
            what,
        };
        frame::check_header(bytes).map_err(|reason| fail(Some(0), None, reason.to_owned()))?;
        if name.first < self.next_seqno {
            return Err(fail(
                Some(0),
                None,
                format!(
                    "chunk starts at seqno {} but the ledger already holds up to {}",
                    name.first,
                    self.next_seqno - 1
                ),
            ));
        }
        self.gap_to = (name.first > self.next_seqno).then_some(name.first);
        let mut frames: &[Frame<'_>] = &collect_frames(bytes, is_last && name.last.is_none())
            .map_err(|(offset, what)| fail(Some(offset), None, what))?;
        // The genesis entry names the key: take it first, so that every
        // checkpoint of the chunk can be opened in parallel with the rest.
        if self.certifier.is_none() {
            if let Some((first, rest)) = frames.split_first() {
                let decoded =
                    decode(first, None).map_err(|(offset, what)| fail(Some(offset), None, what))?;
                self.entries += 1;
                self.entry(name, path, decoded)?;
                self.entries_in_chunk += 1;
                frames = rest;
            }
        }
        let certifier = self.certifier.as_ref();
        let decoded: Vec<Decoded> = frames
            .par_iter()
            .map(|frame| decode(frame, certifier))
            .collect::<Result<_, _>>()
            .map_err(|(offset, what)| fail(Some(offset), None, what))?;
        for decoded in decoded {
            self.entries += 1;
            self.entry(name, path, decoded)?;
            self.entries_in_chunk += 1;
        }
        if let Some(gap_to) = self.gap_to.take() {
            return Err(fail(Some(0), None, self.gap_reason(gap_to)));
        }
        if let Some(last) = name.last {
            let held = self.next_seqno - 1;
            if self.pending.is_some() || held != last || held < name.first {
                return Err(fail(
                    None,
                    None,
                    format!("closed chunk is named up to seqno {last} but holds up to {held} with a signature"),
                ));
            }
        }
        Ok(())
    }

    fn entry(
        &mut self,
        name: &ChunkName,
        path: &Path,
        decoded: Decoded,
    ) -> Result<(), VerifyFailure> {
        let offset = decoded.offset;
        let fail = |seqno: Option<u64>, what: String| VerifyFailure {
            file: path.to_owned(),
            offset: Some(offset),
            seqno,
            what,
        };
        let first_frame = offset == frame::CHUNK_HEADER_BYTES;
        if !matches!(decoded.entry, Entry::Resume(_) | Entry::Genesis(_)) {
            self.opening = false;
        }
        if !matches!(decoded.entry, Entry::Resume(_)) {
            if let Some(gap_to) = self
                .gap_to
                .filter(|_| !matches!(decoded.entry, Entry::Genesis(_)))
            {
                return Err(fail(None, self.gap_reason(gap_to)));
            }
            if self.resume_due {
                return Err(fail(
                    None,
                    "a repeated genesis entry not followed by a resume entry".to_owned(),
                ));
            }
        }
        match decoded.entry {
            Entry::Genesis(genesis) if first_frame && self.genesis.is_none() => self
                .genesis_certifier(genesis)
                .map_err(|what| fail(None, what)),
            Entry::Genesis(genesis) if first_frame && self.genesis.as_ref() == Some(&genesis) => {
                self.resume_due = true;
                Ok(())
            }
            Entry::Genesis(_) => Err(fail(
                None,
                "a genesis entry that is not the first entry".to_owned(),
            )),
            _ if self.genesis.is_none() => Err(fail(
                None,
                "the first entry is not the genesis entry".to_owned(),
            )),
            Entry::Batch(batch) => {
                let first = batch.first_seqno;
                self.batch(&batch, decoded.leaf_hashes)
                    .map_err(|what| fail(Some(first), what))?;
                self.pending = Some(Pending {
                    first,
                    last: batch.last_seqno(),
                    view: batch.view,
                    leaf_format: batch.leaf_format,
                    offset,
                });
                self.pending_file = path.to_owned();
                Ok(())
            }
            Entry::Resume(resume) => {
                // Only genesis and resume entries before it in its chunk.
                if !self.opening {
                    return Err(fail(
                        Some(resume.seqno),
                        "a resume entry that does not open its chunk".to_owned(),
                    ));
                }
                if !self.resumed_in_chunk && resume.seqno + 1 != name.first {
                    return Err(fail(
                        Some(resume.seqno),
                        format!(
                            "a resume entry at seqno {} opens a chunk named from seqno {}",
                            resume.seqno, name.first
                        ),
                    ));
                }
                self.gap_to = None;
                self.resume_due = false;
                self.resumed_in_chunk = true;
                self.resume(&resume)
                    .map_err(|what| fail(Some(resume.seqno), what))
            }
            Entry::Signature(signature) => {
                let seqno = self.pending.map(|pending| pending.last);
                self.signature(&signature, decoded.checkpoint)
                    .map_err(|what| fail(seqno, what))
            }
        }
    }

    /// Takes the genesis entry: who certifies the checkpoints follows from
    /// the key it records and what the operator trusts.
    fn genesis_certifier(&mut self, genesis: crate::Genesis) -> Result<(), String> {
        let certifier = if genesis.public_key == NO_SERVICE_KEY {
            validators_certifier(self.trust, &genesis.origin)?
        } else {
            service_key_certifier(self.trust, &genesis)?
        };
        self.certifier = Some(certifier);
        self.genesis = Some(genesis);
        Ok(())
    }

    fn batch(&mut self, batch: &BatchEntry, leaf_hashes: Vec<Digest>) -> Result<(), String> {
        if self.pending.is_some() {
            return Err("a batch follows a batch without a signature between".to_owned());
        }
        check_next_batch(batch, self.next_seqno, self.last_view)?;
        self.last_view = batch.view;
        self.tree.append_leaf_hashes(&leaf_hashes);
        self.next_seqno = batch.last_seqno() + 1;
        Ok(())
    }

    fn gap_reason(&self, gap_to: u64) -> String {
        crate::chunk::gap_reason(gap_to, self.next_seqno)
    }

    /// Checks a resume entry and continues from the tree it records: its
    /// frontier's root and size must be what its checkpoint signs.
    fn resume(&mut self, resume: &crate::ResumeEntry) -> Result<(), String> {
        if self.pending.is_some() {
            return Err("a resume entry between a batch and its signature".to_owned());
        }
        let held = self.next_seqno - 1;
        if resume.after_seqno > held || held > resume.seqno {
            return Err(format!(
                "a resume entry skipping seqnos {}..={} where the ledger holds up to {held}",
                resume.after_seqno + 1,
                resume.seqno
            ));
        }
        if resume.view < self.last_view {
            return Err(format!(
                "view {} is below the previous view {}",
                resume.view, self.last_view
            ));
        }
        let frontier = resume.frontier()?;
        let tree = MerkleTree::from_frontier(&frontier)
            .map_err(|error| format!("the resume entry's frontier: {error}"))?;
        let certifier = self
            .certifier
            .as_ref()
            .expect("set with the genesis entry, checked first");
        let checkpoint = certifier
            .open(&resume.checkpoint)
            .map_err(|error| format!("the resume entry's checkpoint does not verify: {error}"))?;
        if checkpoint.tree_size != resume.seqno {
            return Err(format!(
                "the resume entry's checkpoint signs tree size {} but it resumes at seqno {}",
                checkpoint.tree_size, resume.seqno
            ));
        }
        if checkpoint.view.is_some_and(|view| view != resume.view) {
            return Err(format!(
                "the resume entry records view {} but its checkpoint signs another",
                resume.view
            ));
        }
        let root = tree.root();
        if checkpoint.root != root {
            return Err(format!(
                "the resume entry's checkpoint signs root {} but its frontier's root is {}",
                checkpoint.root.to_hex(),
                root.to_hex()
            ));
        }
        if held == resume.seqno {
            // Every skipped batch is here (fetched since): the tree built
            // from them must be the one the entry records.
            if self.tree.root() != root {
                return Err(format!(
                    "the resume entry's checkpoint signs root {} but the batches before it give {}",
                    root.to_hex(),
                    self.tree.root().to_hex()
                ));
            }
            self.last_checkpoint = Some(checkpoint);
            return Ok(());
        }
        self.absent.push((held + 1, resume.seqno));
        self.tree = tree;
        self.last_view = resume.view;
        self.next_seqno = resume.seqno + 1;
        self.last_checkpoint = Some(checkpoint);
        Ok(())
    }

    /// Checks a signature entry; `opened` is its checkpoint if it was already
    /// opened (signature checked) in parallel.
    fn signature(
        &mut self,
        signature: &SignatureEntry,
        opened: Option<Result<Checkpoint, String>>,
    ) -> Result<(), String> {
        let Pending {
            last,
            view,
            leaf_format,
            ..
        } = self
            .pending
            .take()
            .ok_or_else(|| "a signature entry that does not follow a batch".to_owned())?;
        let checkpoint = match opened {
            Some(opened) => opened?,
            None => {
                let certifier = self
                    .certifier
                    .as_ref()
                    .expect("set with the genesis entry, checked first");
                open_checkpoint(signature, certifier)?
            }
        };
        check_signature_entry(
            signature,
            &checkpoint,
            last,
            view,
            leaf_format,
            self.tree.root(),
        )?;
        self.last_checkpoint = Some(checkpoint);
        Ok(())
    }

    fn finish(
        self,
        dir: &Path,
        chunks: usize,
        anchor: Option<&str>,
    ) -> Result<VerifySummary, VerifyFailure> {
        if let Some(Pending {
            first,
            last,
            offset,
            ..
        }) = self.pending
        {
            return Err(VerifyFailure {
                file: self.pending_file,
                offset: Some(offset),
                seqno: Some(first),
                what: format!("transactions {first}..={last} have no signature entry (the ledger ends after their batch)"),
            });
        }
        let (Some(genesis), Some(certifier)) = (self.genesis, self.certifier) else {
            return Err(VerifyFailure {
                file: dir.to_owned(),
                offset: None,
                seqno: None,
                what: "no genesis entry".to_owned(),
            });
        };
        let resumed_at = self.absent.last().map(|(_, last)| *last);
        let anchor = anchor
            .map(|note| check_anchor(&self.tree, resumed_at, &certifier, note))
            .transpose()
            .map_err(|what| VerifyFailure {
                file: dir.to_owned(),
                offset: None,
                seqno: None,
                what,
            })?;
        Ok(VerifySummary {
            chunks,
            entries: self.entries,
            transactions: self.next_seqno.saturating_sub(1)
                - self
                    .absent
                    .iter()
                    .map(|(first, last)| last - first + 1)
                    .sum::<u64>(),
            bytes: self.bytes,
            public_key: match &certifier {
                Certifier::ServiceKey(verifier) => verifier.key().to_bytes(),
                Certifier::Validators(_) => genesis.public_key,
            },
            origin: genesis.origin,
            key_source: match self.trust {
                Trust::Genesis => KeySource::Genesis,
                Trust::ServiceKey(_) => KeySource::Given,
                Trust::Validators(_) => KeySource::Validators,
            },
            last_checkpoint: self.last_checkpoint,
            anchor,
            absent: self.absent,
        })
    }
}

/// The certifier of a ledger whose genesis entry records no service key
/// (BFT mode) and has origin `origin`: the validators `trust` gives, which
/// must be that origin's.
fn validators_certifier(trust: Trust<'_>, origin: &str) -> Result<Certifier, String> {
    let validators = match trust {
        Trust::Validators(validators) => validators,
        Trust::ServiceKey(_) => {
            return Err(format!(
                "{NEEDS_VALIDATORS} instead of --key: it records no service key"
            ))
        }
        Trust::Genesis => return Err(NEEDS_VALIDATORS.to_owned()),
    };
    if !validators_of_origin(validators, origin) {
        let (named, expected) = validators
            .members()
            .first()
            .map(|member| {
                let expected = validator_key_name(origin, member.id);
                (member.verifier.name().to_owned(), expected)
            })
            .unwrap_or_default();
        return Err(format!(
            "the validators given are not this ledger's: their keys are named like {named}, \
             but this ledger's origin {origin} names them like {expected}"
        ));
    }
    Ok(Certifier::Validators(validators.clone()))
}

/// The certifier of a ledger whose genesis entry records a service key:
/// that key, which must be the one `trust` gives, if it gives one.
fn service_key_certifier(trust: Trust<'_>, genesis: &crate::Genesis) -> Result<Certifier, String> {
    let recorded_hex = Digest(genesis.public_key).to_hex();
    let recorded = VerifyingKey::from_bytes(&genesis.public_key)
        .map_err(|_| "the genesis public key is not a valid Ed25519 key".to_owned())?;
    let key = match trust {
        Trust::Validators(_) => {
            return Err(format!(
                "this ledger is signed by a service key (its genesis entry records \
                 {recorded_hex}), not certified by validators: pass --key \
                 (GET /node/public-key) instead of --validators"
            ))
        }
        Trust::ServiceKey(given) if *given != recorded => {
            return Err(format!(
                "the genesis entry records public key {recorded_hex} but the given key is {}",
                Digest(given.to_bytes()).to_hex()
            ))
        }
        Trust::ServiceKey(given) => *given,
        Trust::Genesis => recorded,
    };
    let verifier = NoteVerifier::new(&genesis.origin, key)
        .map_err(|error| format!("the genesis origin is not a valid note name: {error}"))?;
    Ok(Certifier::ServiceKey(verifier))
}

/// Opens the anchor checkpoint and checks that `tree` (the whole ledger's)
/// reaches its size with its root.
fn check_anchor(
    tree: &MerkleTree,
    resumed_at: Option<u64>,
    certifier: &Certifier,
    note: &str,
) -> Result<Checkpoint, String> {
    let anchor = certifier
        .open(note)
        .map_err(|error| format!("the anchor checkpoint does not verify: {error}"))?;
    if let Some(resumed_at) = resumed_at.filter(|resumed_at| anchor.tree_size < *resumed_at) {
        return Err(format!(
            "the anchor checkpoint signs tree size {} but the ledger resumes at seqno {resumed_at} \
             without the batches before it: it cannot show that tree (give a later anchor)",
            anchor.tree_size
        ));
    }
    let held = tree.size();
    if held < anchor.tree_size {
        return Err(format!(
            "the ledger holds {held} transactions but the anchor checkpoint signs tree size {}: \
             its newest transactions were cut off",
            anchor.tree_size
        ));
    }
    let root = tree
        .root_at(anchor.tree_size)
        .map_err(|error| format!("cannot compute the root at the anchor's size: {error}"))?;
    if root != anchor.root {
        return Err(format!(
            "the ledger's root at tree size {} is {} but the anchor checkpoint signs {}: \
             the ledger is not the one the anchor was signed for",
            anchor.tree_size,
            root.to_hex(),
            anchor.root.to_hex()
        ));
    }
    Ok(anchor)
}

/// Every frame of a chunk, or the first bad one (offset, what). `is_open`: a bad
/// frame that looks like a torn tail says so.
fn collect_frames(bytes: &[u8], is_open: bool) -> Result<Vec<Frame<'_>>, (u64, String)> {
    Frames::new(bytes)
        .map(|frame| {
            frame.map_err(|error| {
                let mut what = error.fault.to_string();
                if is_open && error.is_torn_tail(bytes) {
                    what.push_str(" (a torn tail, as a crash leaves it: the node cuts it off when it next starts)");
                }
                (error.offset, what)
            })
        })
        .collect()
}

/// Decodes one frame and, for a batch, computes its leaf hashes; for a
/// signature, opens its checkpoint (checks the Ed25519 signatures) when its
/// certifier is known. The work that needs no earlier entry, so it runs in
/// parallel.
fn decode(frame: &Frame<'_>, certifier: Option<&Certifier>) -> Result<Decoded, (u64, String)> {
    let entry = Entry::decode(frame.payload)
        .map_err(|reason| (frame.offset, format!("undecodable entry: {reason}")))?;
    let (leaf_hashes, checkpoint) = match (&entry, certifier) {
        (Entry::Batch(batch), _) => (batch.leaf_hashes(), None),
        (Entry::Signature(signature), Some(certifier)) => {
            (Vec::new(), Some(open_checkpoint(signature, certifier)))
        }
        _ => (Vec::new(), None),
    };
    Ok(Decoded {
        offset: frame.offset,
        entry,
        leaf_hashes,
        checkpoint,
    })
}

/// The checks of a batch read where the ledger continues at `next_seqno`
/// after view `last_view`: its shape, its first seqno and its view.
pub(crate) fn check_next_batch(
    batch: &BatchEntry,
    next_seqno: u64,
    last_view: u64,
) -> Result<(), String> {
    batch.check_shape().map_err(|error| error.to_string())?;
    if batch.first_seqno != next_seqno {
        return Err(format!(
            "batch starts at seqno {}, expected {next_seqno} (entries missing, repeated or reordered)",
            batch.first_seqno
        ));
    }
    if batch.view < last_view {
        return Err(format!(
            "view {} is below the previous view {last_view}",
            batch.view
        ));
    }
    Ok(())
}

/// The checks of the signature entry after a batch that ends at seqno
/// `last` in `view` with `leaf_format`: its `checkpoint` (already opened,
/// its signature checked) must sign that size, that view and `root`, the
/// root recomputed from the transactions.
pub(crate) fn check_signature_entry(
    signature: &SignatureEntry,
    checkpoint: &Checkpoint,
    last: u64,
    view: u64,
    leaf_format: u8,
    root: Digest,
) -> Result<(), String> {
    if signature.view != view {
        return Err(format!(
            "signature view {} differs from its batch's view {view}",
            signature.view
        ));
    }
    // From format 2 the signed view line covers the views the entries
    // repeat (format 1 bound them only through the commit evidence, which
    // only the service can recompute).
    match checkpoint.view {
        Some(signed) if signed != view => {
            return Err(format!(
                "the batch and its signature entry record view {view} but the checkpoint signs view {signed}"
            ))
        }
        None if leaf_format > crate::LEAF_FORMAT_1 => {
            return Err(format!(
                "a leaf format {leaf_format} batch needs a checkpoint with a view line"
            ))
        }
        _ => {}
    }
    if checkpoint.tree_size != last {
        return Err(format!(
            "checkpoint tree size {} but the batch ends at seqno {last}",
            checkpoint.tree_size
        ));
    }
    if checkpoint.root != root {
        return Err(format!(
            "signed root {} differs from the root {} recomputed from the transactions",
            checkpoint.root.to_hex(),
            root.to_hex()
        ));
    }
    Ok(())
}

pub(crate) fn open_checkpoint(
    signature: &SignatureEntry,
    certifier: &Certifier,
) -> Result<Checkpoint, String> {
    certifier
        .open(&signature.checkpoint)
        .map_err(|error| format!("checkpoint does not verify: {error}"))
}
