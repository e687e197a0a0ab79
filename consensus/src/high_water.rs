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
//! the recorded root. One write (two fsyncs: the file and its folder) per
//! apply call of openraft, which covers every batch committed since the last
//! one, not one per batch.
//!
//! The file, `<ledger dir>/signed-high-water`, is four text lines:
//!
//! ```text
//! stele-signed-high-water 1
//! <tree size, decimal>
//! <root, 64 lowercase hex>
//! <SHA-256 of the three lines above, newlines included, 64 lowercase hex>
//! ```
//!
//! It is replaced whole (temporary file, fsync, rename, fsync of the folder):
//! a crash leaves the old or the new one. A node started as one of several
//! members only logs a ledger that ends below the mark (openraft lets a
//! follower apply entries it has not flushed; the others give them back), and
//! refuses only a different root. Gaps: a snapshot install (a
//! follower catching up) raises the commit point without an apply, and the
//! file is only raised at the next apply; a copy of the whole ledger folder
//! taken earlier carries its own, older, file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use stele_history::hash::sha256;
use stele_history::Digest;

use crate::history::HistoryState;
use crate::ConsensusError;

/// File name of the high-water mark, in the ledger folder.
pub const HIGH_WATER_FILE: &str = "signed-high-water";

/// First line of the file: its format and version.
const HIGH_WATER_HEADER: &str = "stele-signed-high-water 1";

/// Longest file accepted (the real one is under 200 bytes).
const HIGH_WATER_BYTES_MAX: u64 = 1024;

/// The recorded high-water mark and where it lives.
#[derive(Debug)]
pub struct HighWater {
    dir: PathBuf,
    size: u64,
    root: Digest,
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
        let Some((size, root)) = read(&path)? else {
            return Ok(HighWater {
                dir: ledger_dir.to_owned(),
                size: 0,
                root: history.root_at(0).unwrap_or(Digest::ZERO),
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
        write(&self.dir, size, &root)?;
        self.size = size;
        self.root = root;
        Ok(())
    }
}

fn refusal(reason: String) -> ConsensusError {
    ConsensusError::Replay { seqno: 0, reason }
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::RaftStorage {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// The three checksummed lines.
fn body(size: u64, root: &Digest) -> String {
    format!("{HIGH_WATER_HEADER}\n{size}\n{}\n", root.to_hex())
}

/// Parses the file, or `None` if there is none.
fn read(path: &Path) -> Result<Option<(u64, Digest)>, ConsensusError> {
    let text = match std::fs::metadata(path) {
        Ok(metadata) if metadata.len() > HIGH_WATER_BYTES_MAX => {
            return Err(file_error(path, "the high-water file is too large"))
        }
        Ok(_) => std::fs::read_to_string(path).map_err(|error| file_error(path, error))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(file_error(path, error)),
    };
    let malformed = |what: &str| {
        file_error(
            path,
            format!("the high-water file is damaged ({what}); it is not safe to start without it"),
        )
    };
    let mut lines = text.split_terminator('\n');
    let (Some(header), Some(size), Some(root), Some(checksum), None) = (
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
        lines.next(),
    ) else {
        return Err(malformed("expected four lines"));
    };
    if header != HIGH_WATER_HEADER {
        return Err(malformed("unknown header or version"));
    }
    let size = stele_history::checkpoint::parse_canonical_u64(size)
        .ok_or_else(|| malformed("the size is not canonical decimal"))?;
    let root = Digest::from_hex(root, "root").map_err(|_| malformed("the root is not hex"))?;
    if sha256(body(size, &root).as_bytes()).to_hex() != checksum || !text.ends_with('\n') {
        return Err(malformed("checksum mismatch"));
    }
    Ok(Some((size, root)))
}

/// Replaces the file durably.
fn write(dir: &Path, size: u64, root: &Digest) -> Result<(), ConsensusError> {
    let path = dir.join(HIGH_WATER_FILE);
    let temporary = dir.join(format!("{HIGH_WATER_FILE}.tmp"));
    let body = body(size, root);
    let text = format!("{body}{}\n", sha256(body.as_bytes()).to_hex());
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&temporary)
        .map_err(|error| file_error(&temporary, error))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| file_error(&temporary, error))?;
    std::fs::rename(&temporary, &path).map_err(|error| file_error(&path, error))?;
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| file_error(dir, error))
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
            history
                .push_batch(1, &[digests], &[leaf], &identity)
                .unwrap();
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
}
