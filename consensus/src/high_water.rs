//! [`HighWater`]: the largest tree this node has committed (and so may have
//! handed out receipts and commit replies for), recorded outside the ledger
//! chunks, so that a ledger cut back to a shorter valid prefix is refused
//! instead of extended into a second tree signed by the same key (a fork).
//!
//! The rule: before openraft's state machine confirms a group of committed
//! batches (which makes them visible: commit replies, receipts, reads), the
//! size and root of the last of them are written here and synced. So every
//! size this node ever reported committed is at most the recorded one, and a
//! node never starts on a ledger that does not reach the recorded size with
//! the recorded root. One write (one `pwrite` and one `fdatasync` of a
//! small file, no rename) per apply call of openraft, which covers every
//! batch committed since the last one, not one per batch.
//!
//! The file, `<ledger dir>/signed-high-water`, is two slots of
//! [`SLOT_BYTES`] bytes; a slot is blank (spaces, then a newline) or four
//! text lines padded with spaces to its size:
//!
//! ```text
//! stele-signed-high-water 1
//! <tree size, decimal>
//! <root, 64 lowercase hex>
//! <SHA-256 of the three lines above, newlines included, 64 lowercase hex>
//! ```
//!
//! A raise overwrites the slot that does not hold the current mark, in
//! place, and syncs it: a crash tears at most that slot, and the other still
//! holds the previous mark, which bounds everything reported before the torn
//! write (nothing is reported until the sync returns). The mark is the valid
//! slot with the larger size; a file with no valid slot but a damaged one is
//! refused. The file is created once, blank, through a synced rename. A node started as one of several
//! members only logs a ledger that ends below the mark (openraft lets a
//! follower apply entries it has not flushed; the others give them back), and
//! refuses only a different root. Gaps: a snapshot install (a
//! follower catching up) raises the commit point without an apply, and the
//! file is only raised at the next apply; a copy of the whole ledger folder
//! taken earlier carries its own, older, file.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use stele_history::hash::sha256;
use stele_history::Digest;

use crate::history::HistoryState;
use crate::ConsensusError;

/// File name of the high-water mark, in the ledger folder.
pub const HIGH_WATER_FILE: &str = "signed-high-water";

/// First line of the file: its format and version.
const HIGH_WATER_HEADER: &str = "stele-signed-high-water 1";

/// Bytes of one slot (the four lines take 193).
pub const SLOT_BYTES: usize = 256;

/// The two slots.
const SLOTS: usize = 2;

/// The recorded high-water mark and where it lives.
#[derive(Debug)]
pub struct HighWater {
    dir: PathBuf,
    size: u64,
    root: Digest,
    /// The file, once it exists (opened for the in-place writes).
    file: Option<File>,
    /// The slot the next raise overwrites: never the one holding the mark.
    slot_next: usize,
}

impl HighWater {
    /// Reads the mark in `ledger_dir` and checks that `history` (the tree
    /// replayed from that ledger) reaches it with the same root. No file: a
    /// first start, or a ledger written before the mark existed; it starts at
    /// the history's size.
    ///
    /// `replicated`: other members hold the log. openraft lets a follower
    /// apply entries its own log has not flushed yet, so after a crash its
    /// ledger may legitimately end below its mark; the majority gives those
    /// entries back, and a node missing committed entries cannot be elected
    /// (so cannot sign a second tree). A shorter ledger is then only logged; a
    /// different root at a size it holds is refused either way.
    pub fn open(
        ledger_dir: &Path,
        history: &HistoryState,
        replicated: bool,
    ) -> Result<Self, ConsensusError> {
        let path = ledger_dir.join(HIGH_WATER_FILE);
        let Some(Mark {
            size,
            root,
            slot,
            file,
        }) = read(&path)?
        else {
            return Ok(HighWater {
                dir: ledger_dir.to_owned(),
                size: 0,
                root: history.root_at(0).unwrap_or(Digest::ZERO),
                file: None,
                slot_next: 0,
            });
        };
        let held = history.size();
        let what_to_do = "Restore the missing ledger files (from a backup, or from another \
             replica's ledger folder) and start again. Only if this ledger is \
             deliberately an older copy and no receipt beyond it may ever be honoured, \
             move the file away to start anyway: the service key will then sign a second, \
             different tree at the sizes above";
        if held < size && replicated {
            tracing::warn!(
                file = %path.display(),
                recorded = size,
                held,
                "the ledger ends below the committed tree this node recorded; \
                 catching up from the other members"
            );
        } else if held < size {
            return Err(refusal(format!(
                "{} records that this node committed the tree of size {size} (root {}), \
                 but the ledger in {} holds only {held} transactions: its newest batches \
                 or chunks were cut off. {what_to_do}",
                path.display(),
                root.to_hex(),
                ledger_dir.display()
            )));
        }
        let replayed = history.root_at(size);
        if replayed.is_some() && replayed != Some(root) {
            return Err(refusal(format!(
                "{} records that this node committed the tree of size {size} with root {}, \
                 but the ledger in {} has root {} at that size: it was rewritten or replaced. \
                 {what_to_do}",
                path.display(),
                root.to_hex(),
                ledger_dir.display(),
                replayed.map_or_else(|| "(none)".to_owned(), |root| root.to_hex())
            )));
        }
        Ok(HighWater {
            dir: ledger_dir.to_owned(),
            size,
            root,
            file: Some(file),
            slot_next: (slot + 1) % SLOTS,
        })
    }

    /// The recorded size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Records the tree of `size` with `root` durably, if it is above the
    /// recorded one (the mark never goes down: a commit is never undone).
    pub fn raise(&mut self, size: u64, root: Digest) -> Result<(), ConsensusError> {
        if size <= self.size {
            debug_assert!(size < self.size || root == self.root, "one root per size");
            return Ok(());
        }
        let file = match self.file.take() {
            Some(file) => file,
            None => create(&self.dir)?,
        };
        let file = self.file.insert(file);
        let path = self.dir.join(HIGH_WATER_FILE);
        let offset = (self.slot_next * SLOT_BYTES) as u64;
        file.write_all_at(&slot_bytes(Some((size, &root))), offset)
            .and_then(|()| file.sync_data())
            .map_err(|error| file_error(&path, error))?;
        self.slot_next = (self.slot_next + 1) % SLOTS;
        self.size = size;
        self.root = root;
        Ok(())
    }
}

fn refusal(reason: String) -> ConsensusError {
    ConsensusError::Replay { seqno: 0, reason }
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> ConsensusError {
    crate::durable_file::storage_error(path, error)
}

/// The three checksummed lines.
fn body(size: u64, root: &Digest) -> String {
    format!("{HIGH_WATER_HEADER}\n{size}\n{}\n", root.to_hex())
}

/// A slot's bytes: the four lines (or blank), padded with spaces, ending in
/// a newline.
fn slot_bytes(mark: Option<(u64, &Digest)>) -> Vec<u8> {
    let text = match mark {
        Some((size, root)) => {
            let body = body(size, root);
            format!("{body}{}\n", sha256(body.as_bytes()).to_hex())
        }
        None => String::new(),
    };
    debug_assert!(text.len() < SLOT_BYTES, "the four lines fit a slot");
    let mut bytes = text.into_bytes();
    bytes.resize(SLOT_BYTES - 1, b' ');
    bytes.push(b'\n');
    bytes
}

/// What one slot holds.
#[derive(Debug, PartialEq)]
enum Slot {
    Blank,
    Mark(u64, Digest),
    Damaged(&'static str),
}

fn parse_slot(bytes: &[u8]) -> Slot {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Slot::Damaged("not text");
    };
    let text = text.trim_end_matches([' ', '\n']);
    if text.is_empty() {
        return Slot::Blank;
    }
    let mut lines = text.split('\n');
    let (Some(header), Some(size), Some(root), Some(checksum), None) = (
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
    ) else {
        return Slot::Damaged("expected four lines");
    };
    if header != HIGH_WATER_HEADER {
        return Slot::Damaged("unknown header or version");
    }
    let Some(size) = stele_history::checkpoint::parse_canonical_u64(size) else {
        return Slot::Damaged("the size is not canonical decimal");
    };
    let Ok(root) = Digest::from_hex(root, "root") else {
        return Slot::Damaged("the root is not hex");
    };
    if sha256(body(size, &root).as_bytes()).to_hex() != checksum {
        return Slot::Damaged("checksum mismatch");
    }
    Slot::Mark(size, root)
}

/// The mark read from the file, the slot holding it, and the file.
struct Mark {
    size: u64,
    root: Digest,
    slot: usize,
    file: File,
}

/// Reads the file, or `None` if there is none.
fn read(path: &Path) -> Result<Option<Mark>, ConsensusError> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(file_error(path, error)),
    };
    let damaged = |what: &str| {
        file_error(
            path,
            format!("the high-water file is damaged ({what}); it is not safe to start without it"),
        )
    };
    let length = file
        .metadata()
        .map_err(|error| file_error(path, error))?
        .len();
    if length != (SLOTS * SLOT_BYTES) as u64 {
        return Err(damaged("it is not two slots long"));
    }
    let mut bytes = vec![0; SLOTS * SLOT_BYTES];
    file.read_exact(&mut bytes)
        .map_err(|error| file_error(path, error))?;
    let slots: Vec<Slot> = bytes.chunks(SLOT_BYTES).map(parse_slot).collect();
    let newest = slots
        .iter()
        .enumerate()
        .filter_map(|(slot, parsed)| match parsed {
            Slot::Mark(size, root) => Some((slot, *size, *root)),
            _ => None,
        })
        .max_by_key(|(_, size, _)| *size);
    let Some((slot, size, root)) = newest else {
        if let Some(Slot::Damaged(what)) = slots.iter().find(|slot| **slot != Slot::Blank) {
            return Err(damaged(what));
        }
        return Ok(None);
    };
    for (index, parsed) in slots.iter().enumerate() {
        if let Slot::Damaged(what) = parsed {
            // A write torn by a crash: the other slot bounds what was reported.
            tracing::warn!(file = %path.display(), slot = index, reason = what,
                "one slot of the high-water file is damaged (a write torn by a crash?); \
                 the other holds the mark");
        }
    }
    Ok(Some(Mark {
        size,
        root,
        slot,
        file,
    }))
}

/// Creates the file, blank, durably (a fresh temporary file, synced, renamed,
/// the folder synced), and opens it for the in-place writes.
fn create(dir: &Path) -> Result<File, ConsensusError> {
    let path = dir.join(HIGH_WATER_FILE);
    crate::durable_file::replace(dir, HIGH_WATER_FILE, &slot_bytes(None).repeat(SLOTS))?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|error| file_error(&path, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::TxDigests;
    use crate::identity::ServiceIdentity;
    use stele_history::SigningKey;

    /// One single-transaction batch per seed.
    fn history(seeds: std::ops::Range<u64>) -> HistoryState {
        let identity =
            ServiceIdentity::new("hw.example/log", SigningKey::from_bytes(&[5; 32]), [6; 32])
                .unwrap();
        let mut history = HistoryState::new();
        for seed in seeds {
            let digests = TxDigests {
                write_set_digest: sha256(&seed.to_be_bytes()),
                claims_digest: Digest::ZERO,
                command_digest: None,
            };
            let leaf = digests.leaf_hash(&Digest::ZERO);
            history.push_batch(1, &[leaf], &identity).unwrap();
        }
        history
    }

    #[test]
    fn a_shorter_or_different_ledger_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let full = history(0..5);
        let mut mark = HighWater::open(dir.path(), &full, false).unwrap();
        assert_eq!(mark.size(), 0);
        mark.raise(4, full.root_at(4).unwrap()).unwrap();
        // Reopening on the same ledger, or on one that reaches the mark, is fine.
        assert_eq!(HighWater::open(dir.path(), &full, false).unwrap().size(), 4);
        assert_eq!(
            HighWater::open(dir.path(), &history(0..4), false)
                .unwrap()
                .size(),
            4
        );
        let error = HighWater::open(dir.path(), &history(0..3), false).unwrap_err();
        assert!(error.to_string().contains("holds only 3"), "{error}");
        assert!(error.to_string().contains(HIGH_WATER_FILE), "{error}");
        // A cluster member catches a short tail up from the others.
        assert_eq!(
            HighWater::open(dir.path(), &history(0..3), true)
                .unwrap()
                .size(),
            4
        );
        assert!(HighWater::open(dir.path(), &history(10..15), true).is_err());
        // As long, but another tree.
        let error = HighWater::open(dir.path(), &history(10..15), false).unwrap_err();
        assert!(error.to_string().contains("rewritten"), "{error}");
    }

    #[test]
    fn a_damaged_file_is_refused_and_the_mark_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let full = history(0..3);
        let mut mark = HighWater::open(dir.path(), &full, false).unwrap();
        mark.raise(3, full.root_at(3).unwrap()).unwrap();
        mark.raise(2, full.root_at(2).unwrap()).unwrap();
        assert_eq!(HighWater::open(dir.path(), &full, false).unwrap().size(), 3);
        let path = dir.path().join(HIGH_WATER_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\n3\n", "\n2\n", 1)).unwrap();
        let error = HighWater::open(dir.path(), &full, false).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
    }

    /// What the two slots of the file at `path` hold.
    fn slots(path: &Path) -> (Slot, Slot) {
        let bytes = std::fs::read(path).unwrap();
        (
            parse_slot(&bytes[..SLOT_BYTES]),
            parse_slot(&bytes[SLOT_BYTES..]),
        )
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other_and_raises_alternate_slots() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let full = history(0..5);
        let mut mark = HighWater::open(dir.path(), &full, false).unwrap();
        mark.raise(2, full.root_at(2).unwrap()).unwrap();
        mark.raise(4, full.root_at(4).unwrap()).unwrap();
        let path = dir.path().join(HIGH_WATER_FILE);
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.len(), (SLOTS * SLOT_BYTES) as u64);
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            slots(&path),
            (
                Slot::Mark(2, full.root_at(2).unwrap()),
                Slot::Mark(4, full.root_at(4).unwrap())
            )
        );
        let bytes = std::fs::read(&path).unwrap();
        // The write of 4 torn by a crash: the mark is 2 again (nothing beyond it
        // was reported before that write synced).
        let mut torn = bytes.clone();
        torn[SLOT_BYTES + 40] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        let mut reopened = HighWater::open(dir.path(), &history(0..3), false).unwrap();
        assert_eq!(reopened.size(), 2);
        // The next raise overwrites the torn slot, never the one holding the mark.
        reopened.raise(3, full.root_at(3).unwrap()).unwrap();
        assert_eq!(
            slots(&path),
            (
                Slot::Mark(2, full.root_at(2).unwrap()),
                Slot::Mark(3, full.root_at(3).unwrap())
            )
        );
        let bytes = std::fs::read(&path).unwrap();
        // Both slots damaged, or a cut file: refused.
        let mut both = bytes.clone();
        both[40] ^= 1;
        both[SLOT_BYTES + 40] ^= 1;
        std::fs::write(&path, &both).unwrap();
        assert!(HighWater::open(dir.path(), &full, false).is_err());
        std::fs::write(&path, &bytes[..SLOT_BYTES]).unwrap();
        let error = HighWater::open(dir.path(), &full, false).unwrap_err();
        assert!(error.to_string().contains("two slots"), "{error}");
    }
}
