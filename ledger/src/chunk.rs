//! Chunk file names and the listing of a ledger folder.
//!
//! As in CCF: `ledger_<first>` is the open chunk (being appended to),
//! `ledger_<first>-<last>` a closed one, `ledger_<first>-<last>.committed` a closed
//! one whose transactions are all globally committed. `<first>` and `<last>` are
//! the seqnos of its first and last transactions, in canonical decimal. The first
//! chunk also holds the genesis entry and is named from seqno 1.

use std::path::{Path, PathBuf};

use crate::LedgerError;

/// File name prefix of every chunk.
pub const CHUNK_PREFIX: &str = "ledger_";

/// Suffix of a chunk whose transactions are all globally committed.
pub const COMMITTED_SUFFIX: &str = ".committed";

/// A chunk's identity, as encoded in its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkName {
    /// Seqno of its first transaction.
    pub first: u64,
    /// Seqno of its last transaction, once closed.
    pub last: Option<u64>,
    /// True once every transaction in it is globally committed.
    pub committed: bool,
}

impl ChunkName {
    /// The open chunk starting at `first`.
    pub fn open(first: u64) -> Self {
        ChunkName {
            first,
            last: None,
            committed: false,
        }
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        match (self.last, self.committed) {
            (None, _) => format!("{CHUNK_PREFIX}{}", self.first),
            (Some(last), false) => format!("{CHUNK_PREFIX}{}-{last}", self.first),
            (Some(last), true) => format!("{CHUNK_PREFIX}{}-{last}{COMMITTED_SUFFIX}", self.first),
        }
    }

    /// Parses a chunk file name; `None` if it is not one (other files in the
    /// folder are not the ledger's business).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(CHUNK_PREFIX)?;
        let (range, committed) = match rest.strip_suffix(COMMITTED_SUFFIX) {
            Some(range) => (range, true),
            None => (rest, false),
        };
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (canonical(first)?, Some(canonical(last)?)),
            None if committed => return None,
            None => (canonical(range)?, None),
        };
        if first == 0 || last.is_some_and(|last| last < first) {
            return None;
        }
        Some(ChunkName {
            first,
            last,
            committed,
        })
    }
}

/// A decimal without sign or leading zeros.
fn canonical(text: &str) -> Option<u64> {
    let well_formed = !text.is_empty()
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    well_formed.then(|| text.parse().ok()).flatten()
}

/// The chunks of `dir` and of its archive (`dir/archive`, committed chunks
/// only; a chunk in both is taken from `dir`), sorted by first seqno, checked
/// not to overlap: each closed chunk ends before the next begins (just
/// before, unless the next opens with a resume entry, which the scan of its
/// contents checks), and only the last may be open.
pub fn list(dir: &Path) -> Result<Vec<(ChunkName, PathBuf)>, LedgerError> {
    list_with_archive(dir, &dir.join(crate::archive::ARCHIVE_DIR))
}

/// [`list`] with the archive at `archive` (a copy of a ledger split across
/// folders, as `stele verify --archive` reads it).
pub fn list_with_archive(
    dir: &Path,
    archive: &Path,
) -> Result<Vec<(ChunkName, PathBuf)>, LedgerError> {
    let mut chunks = list_folder(dir)?;
    if archive.is_dir() {
        let live: std::collections::BTreeSet<_> = chunks
            .iter()
            .map(|(name, _)| (name.first, name.last))
            .collect();
        chunks.extend(
            list_folder(archive)?
                .into_iter()
                .filter(|(name, _)| name.committed && !live.contains(&(name.first, name.last))),
        );
    }
    chunks.sort();
    check_sequence(&chunks)?;
    Ok(chunks)
}

/// The chunk files of one folder, unsorted.
fn list_folder(dir: &Path) -> Result<Vec<(ChunkName, PathBuf)>, LedgerError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LedgerError::io(dir, "list", source))?;
    let mut chunks = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LedgerError::io(dir, "list", source))?;
        let Some(name) = entry.file_name().to_str().and_then(ChunkName::parse) else {
            continue;
        };
        chunks.push((name, entry.path()));
    }
    Ok(chunks)
}

/// Why a chunk that starts at `gap_to`, past `next_seqno` where the ledger
/// continues, is refused: only a resume entry may skip seqnos (the scan of
/// `open` and `stele verify` both say so).
pub(crate) fn gap_reason(gap_to: u64, next_seqno: u64) -> String {
    format!(
        "chunk starts at seqno {gap_to} but the ledger continues at {next_seqno} (and the \
         chunk does not open with a resume entry skipping to it)"
    )
}

fn check_sequence(chunks: &[(ChunkName, PathBuf)]) -> Result<(), LedgerError> {
    let mut expected_first = 1;
    for (index, (name, path)) in chunks.iter().enumerate() {
        let bad = |reason: String| LedgerError::Corrupt {
            file: path.clone(),
            offset: 0,
            reason,
        };
        // A chunk may start past the previous one's end only if it opens
        // with a resume entry skipping to it: its scan checks that.
        if name.first < expected_first {
            return Err(bad(format!(
                "chunk starts at seqno {} but the previous one ends at {}",
                name.first,
                expected_first - 1
            )));
        }
        match name.last {
            Some(last) => expected_first = last + 1,
            None if index + 1 == chunks.len() => {}
            None => {
                return Err(bad(
                    "an open chunk that is not the last one (two chunks claim these seqnos)"
                        .to_owned(),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_non_canonical_ones_are_ignored() {
        for name in [
            ChunkName::open(1),
            ChunkName {
                first: 5,
                last: Some(9),
                committed: false,
            },
            ChunkName {
                first: 5,
                last: Some(5),
                committed: true,
            },
        ] {
            assert_eq!(ChunkName::parse(&name.file_name()), Some(name));
        }
        for bad in [
            "ledger_",
            "ledger_01",
            "ledger_0",
            "ledger_5-3",
            "ledger_1.committed",
            "ledger_1-2.tmp",
            "ledger_+1",
            "other",
            "ledger_1-",
        ] {
            assert_eq!(ChunkName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunks_must_not_overlap() {
        let path = PathBuf::from("x");
        let closed = |first, last| {
            (
                ChunkName {
                    first,
                    last: Some(last),
                    committed: false,
                },
                path.clone(),
            )
        };
        assert!(check_sequence(&[
            closed(1, 4),
            closed(5, 9),
            (ChunkName::open(10), path.clone())
        ])
        .is_ok());
        // A gap is left to the scan (a resume entry may cover it).
        assert!(check_sequence(&[closed(1, 4), closed(6, 9)]).is_ok());
        assert!(check_sequence(&[closed(1, 4), closed(4, 9)]).is_err());
        assert!(check_sequence(&[(ChunkName::open(1), path.clone()), closed(1, 4)]).is_err());
    }
}
