//! Chunk index files: the batch locations of a committed chunk, written when
//! the chunk is committed, so that [`crate::Ledger::open`] reads a few bytes
//! per batch instead of scanning (reading, checksumming and decoding) every
//! committed chunk again. A committed chunk never changes: no truncation
//! reaches below the commit point.
//!
//! `chunk-index/<chunk file name>.index` in the ledger folder:
//!
//! ```text
//! b"STELIDX1"
//! u64 BE first seqno | u64 BE last seqno | u64 BE chunk length | u64 BE count
//! count x (u64 BE view | first seqno | last seqno | offset | end)
//! SHA-256 of everything before
//! ```
//!
//! An index is used only if it is whole (its digest), names the chunk (first
//! and last seqno) and its length, and its locations are contiguous from the
//! first seqno to the last and lie in order inside the chunk; otherwise the
//! chunk is scanned as before (and its index written again). Index files are
//! a cache: written without a sync, deleted or lost at no cost but a scan.
//! What an index skips is the open-time check of the committed chunk's
//! frames: their checksums are still checked on every read, and `stele
//! verify` checks every frame and signature.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::chunk::ChunkName;
use crate::frame::CHUNK_HEADER_BYTES;
use crate::ledger::BatchLocation;

/// The folder of index files, inside the ledger folder.
pub const CHUNK_INDEX_DIR: &str = "chunk-index";

/// First bytes of an index file (version 1).
const INDEX_MAGIC: &[u8; 8] = b"STELIDX1";

/// Bytes before the locations: magic, first, last, length, count.
const INDEX_HEAD_BYTES: usize = 8 + 4 * 8;

/// Bytes per location.
const LOCATION_BYTES: usize = 5 * 8;

/// Bytes of the trailing digest.
const DIGEST_BYTES: usize = 32;

/// Most locations an index file may claim (a chunk's batches: each holds at
/// least one transaction and two frames of tens of bytes).
pub const INDEX_LOCATIONS_MAX: u64 = 1 << 22;

/// Largest index file read: its head, the most locations, its digest.
const INDEX_BYTES_MAX: u64 =
    (INDEX_HEAD_BYTES + LOCATION_BYTES * INDEX_LOCATIONS_MAX as usize + DIGEST_BYTES) as u64;

fn index_path(dir: &Path, name: &ChunkName) -> PathBuf {
    dir.join(CHUNK_INDEX_DIR)
        .join(format!("{}.index", name.file_name()))
}

/// Writes the index of the committed chunk `name`, `length` bytes long,
/// holding `locations` (best effort: a failure costs a scan at the next open).
pub(crate) fn write(dir: &Path, name: &ChunkName, length: u64, locations: &[BatchLocation]) {
    let Some(last) = name.last else {
        return;
    };
    let mut bytes =
        Vec::with_capacity(INDEX_HEAD_BYTES + locations.len() * LOCATION_BYTES + DIGEST_BYTES);
    bytes.extend_from_slice(INDEX_MAGIC);
    for value in [name.first, last, length, locations.len() as u64] {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    for location in locations {
        for value in [
            location.view,
            location.first_seqno,
            location.last_seqno,
            location.offset,
            location.end,
        ] {
            bytes.extend_from_slice(&value.to_be_bytes());
        }
    }
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    let path = index_path(dir, name);
    let temporary = path.with_extension("tmp");
    let written = std::fs::create_dir_all(dir.join(CHUNK_INDEX_DIR))
        .and_then(|()| std::fs::write(&temporary, &bytes))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = written {
        tracing::warn!(path = %path.display(), %error, "cannot write a chunk index; the next open scans the chunk");
        let _ = std::fs::remove_file(&temporary);
    }
}

/// The locations of the committed chunk `name` (`length` bytes) from its
/// index file, if it has a usable one.
pub(crate) fn read(dir: &Path, name: &ChunkName, length: u64) -> Option<Vec<BatchLocation>> {
    let last = name.last.filter(|_| name.committed)?;
    let path = index_path(dir, name);
    let size = std::fs::metadata(&path).ok()?.len();
    if size > INDEX_BYTES_MAX {
        tracing::warn!(path = %path.display(), size, "ignoring an oversized chunk index; scanning its chunk");
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let locations = parse(&bytes, name.first, last, length);
    if locations.is_none() {
        tracing::warn!(chunk = %name.file_name(), "ignoring a chunk index that does not match its chunk; scanning it");
    }
    locations
}

fn parse(bytes: &[u8], first: u64, last: u64, length: u64) -> Option<Vec<BatchLocation>> {
    let body_length = bytes.len().checked_sub(DIGEST_BYTES)?;
    let (body, digest) = bytes.split_at(body_length);
    if body.len() < INDEX_HEAD_BYTES
        || &body[..8] != INDEX_MAGIC
        || Sha256::digest(body).as_slice() != digest
    {
        return None;
    }
    let mut values = body[8..]
        .chunks_exact(8)
        .map(|value| u64::from_be_bytes(value.try_into().expect("8 bytes")));
    let head: Vec<u64> = values.by_ref().take(4).collect();
    let count = head[3];
    if head[..3] != [first, last, length]
        || count > INDEX_LOCATIONS_MAX
        || body.len() != INDEX_HEAD_BYTES + count as usize * LOCATION_BYTES
    {
        return None;
    }
    let mut locations = Vec::with_capacity(count as usize);
    let (mut next_seqno, mut next_offset) = (first, CHUNK_HEADER_BYTES);
    for _ in 0..count {
        let [view, first_seqno, last_seqno, offset, end] =
            std::array::from_fn(|_| values.next().expect("the length was checked"));
        let in_order = first_seqno == next_seqno
            && last_seqno >= first_seqno
            && last_seqno <= last
            && offset >= next_offset
            && end > offset
            && end <= length;
        if !in_order {
            return None;
        }
        locations.push(BatchLocation {
            view,
            first_seqno,
            last_seqno,
            chunk_first: first,
            offset,
            end,
        });
        (next_seqno, next_offset) = (last_seqno.checked_add(1)?, end);
    }
    (next_seqno == last + 1 && next_offset == length).then_some(locations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations() -> Vec<BatchLocation> {
        (0..3u64)
            .map(|batch| BatchLocation {
                view: 2,
                first_seqno: 10 + batch * 4,
                last_seqno: 13 + batch * 4,
                chunk_first: 10,
                offset: CHUNK_HEADER_BYTES + batch * 100,
                end: CHUNK_HEADER_BYTES + (batch + 1) * 100,
            })
            .collect()
    }

    fn committed() -> ChunkName {
        ChunkName {
            first: 10,
            last: Some(21),
            committed: true,
        }
    }

    const LENGTH: u64 = CHUNK_HEADER_BYTES + 300;

    #[test]
    fn an_index_reads_back_only_for_its_own_chunk() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &committed(), LENGTH, &locations());
        assert_eq!(read(dir.path(), &committed(), LENGTH), Some(locations()));
        assert_eq!(
            read(dir.path(), &committed(), LENGTH + 1),
            None,
            "another length"
        );
        let uncommitted = ChunkName {
            committed: false,
            ..committed()
        };
        assert_eq!(
            read(dir.path(), &uncommitted, LENGTH),
            None,
            "not committed"
        );
        let other = ChunkName {
            last: Some(25),
            ..committed()
        };
        assert_eq!(
            read(dir.path(), &other, LENGTH),
            None,
            "no index of its own"
        );
    }

    /// docs/ledger-format.md's worked example, byte for byte.
    #[test]
    fn the_documented_example_is_what_is_written() {
        let doc = include_str!("../../docs/ledger-format.md");
        let start = doc.find("has this 112-byte index").expect("the example");
        let block = &doc[start..];
        let block = &block[block.find("```text").expect("its bytes") + 7..];
        let hex: String = block[..block.find("```").expect("their end")]
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let name = ChunkName {
            first: 1,
            last: Some(3),
            committed: true,
        };
        let location = BatchLocation {
            view: 1,
            first_seqno: 1,
            last_seqno: 3,
            chunk_first: 1,
            offset: 108,
            end: 500,
        };
        write(dir.path(), &name, 500, &[location]);
        let written = std::fs::read(index_path(dir.path(), &name)).unwrap();
        let written_hex: String = written.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(written_hex, hex);
        assert_eq!(read(dir.path(), &name, 500), Some(vec![location]));
    }

    #[test]
    fn a_damaged_or_inconsistent_index_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &committed(), LENGTH, &locations());
        let path = index_path(dir.path(), &committed());
        let whole = std::fs::read(&path).unwrap();
        for at in [0, 9, INDEX_HEAD_BYTES + 3, whole.len() - 1] {
            let mut damaged = whole.clone();
            damaged[at] ^= 1;
            assert_eq!(parse(&damaged, 10, 21, LENGTH), None, "a flip at {at}");
        }
        assert_eq!(parse(&whole[..whole.len() - 1], 10, 21, LENGTH), None);
        // Well-formed, digest and all, but not a chunk's layout.
        let mut gap = locations();
        gap[1].first_seqno += 1;
        let mut overlap = locations();
        overlap[2].offset -= 1;
        let mut short = locations();
        short.pop();
        for (case, bad) in [("gap", gap), ("overlap", overlap), ("short", short)] {
            write(dir.path(), &committed(), LENGTH, &bad);
            assert_eq!(read(dir.path(), &committed(), LENGTH), None, "{case}");
        }
    }
}
