//! The archive: committed chunks moved to `archive/`, still read and verified;
//! what a kill -9 mid-move leaves; damaged archive chunks refused by name.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use support::chunk_files;

use stele_ledger::archive::{copy_to_archive, ARCHIVE_DIR};
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::{verify_ledger, BatchEntry, GroupCommit, Ledger, LedgerConfig, LedgerError};

/// Small chunks, so a few batches span several files.
const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

/// A committed ledger of 40 batches of 5 transactions in small chunks.
fn committed_ledger(dir: &Path) -> (FixtureWriter, Ledger, Vec<BatchEntry>) {
    let mut writer = FixtureWriter::new(8);
    let mut ledger = Ledger::create(dir, SMALL, &writer.genesis()).unwrap();
    let mut batches = Vec::new();
    for _ in 0..40 {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
        batches.push(batch);
    }
    ledger.commit(ledger.durable_seqno()).unwrap();
    (writer, ledger, batches)
}

fn archived_files(dir: &Path) -> Vec<PathBuf> {
    chunk_files(&dir.join(ARCHIVE_DIR))
}

fn verifies(dir: &Path, writer: &FixtureWriter) -> Result<u64, String> {
    verify_ledger(dir, Some(&writer.public_key()), &mut |_| {})
        .map(|summary| summary.transactions)
        .map_err(|failure| format!("{failure:?}"))
}

#[test]
fn archived_chunks_are_still_read_reopened_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, batches) = committed_ledger(dir.path());
    let index = ledger.batches().to_vec();
    let committed_before = chunk_files(dir.path())
        .iter()
        .filter(|path| path.to_string_lossy().ends_with(".committed"))
        .count();
    assert!(committed_before >= 4, "small chunks: {committed_before}");
    let group = GroupCommit::spawn(ledger).unwrap();
    let moved = group.archive_pass(1).unwrap();
    assert_eq!(
        moved,
        committed_before - 1,
        "all but the newest committed chunk"
    );
    assert_eq!(group.archive_pass(1).unwrap(), 0, "nothing left to move");
    let ledger = group.shutdown().unwrap();
    assert_eq!(archived_files(dir.path()).len(), moved);
    let live_committed = chunk_files(dir.path())
        .iter()
        .filter(|path| path.to_string_lossy().ends_with(".committed"))
        .count();
    assert_eq!(live_committed, 1);
    // Read through the ledger that moved them, and after a reopen.
    assert_eq!(ledger.read_batch(1).unwrap().0, batches[0]);
    drop(ledger);
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice());
    for (position, batch) in batches.iter().enumerate().step_by(7) {
        assert_eq!(
            &reopened.read_batch(batch.first_seqno).unwrap().0,
            batch,
            "{position}"
        );
    }
    drop(reopened);
    assert_eq!(verifies(dir.path(), &writer), Ok(200));
}

/// A kill -9 between the steps of a move: a copy still being written, or a
/// chunk in both folders. Both are readable ledgers, and the next pass ends
/// the move.
#[test]
fn a_move_cut_short_leaves_a_readable_ledger_and_is_finished_later() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, _) = committed_ledger(dir.path());
    let index = ledger.batches().to_vec();
    let moves = ledger.archivable(1);
    assert!(moves.len() >= 3);
    // Step 2 done for the first chunk (both copies), step 1 half done for
    // the second (a partial copy under its temporary name).
    copy_to_archive(dir.path(), &moves[0]).unwrap();
    let partial = dir
        .path()
        .join(ARCHIVE_DIR)
        .join(format!("{}.tmp", moves[1].name.file_name()));
    let bytes = std::fs::read(&moves[1].live).unwrap();
    std::fs::write(&partial, &bytes[..bytes.len() / 2]).unwrap();
    drop(ledger);

    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice());
    assert_eq!(verifies(dir.path(), &writer), Ok(200));
    let group = GroupCommit::spawn(reopened).unwrap();
    assert_eq!(group.archive_pass(1).unwrap(), moves.len());
    drop(group);
    assert!(!partial.exists(), "the partial copy is gone");
    assert_eq!(archived_files(dir.path()).len(), moves.len());
    assert!(!moves[0].live.exists() && !moves[1].live.exists());
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice());
    drop(reopened);
    assert_eq!(verifies(dir.path(), &writer), Ok(200));
}

/// An archive chunk cut short, or with a flipped byte, or missing: the start
/// or `stele verify` names the file (and the offset where there is one).
#[test]
fn damaged_archive_chunks_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, _) = committed_ledger(dir.path());
    let group = GroupCommit::spawn(ledger).unwrap();
    group.archive_pass(1).unwrap();
    drop(group.shutdown().unwrap());
    let archived = archived_files(dir.path());
    let second = archived[1].clone();
    let whole = std::fs::read(&second).unwrap();

    // Cut short: its index no longer matches its length, so the start scans it.
    std::fs::write(&second, &whole[..whole.len() - 10]).unwrap();
    match Ledger::open(dir.path(), SMALL) {
        Err(LedgerError::Corrupt { file, .. }) => assert_eq!(file, second),
        other => panic!("expected {} refused, got {other:?}", second.display()),
    }
    let failure = verifies(dir.path(), &writer).unwrap_err();
    assert!(failure.contains(&second.display().to_string()), "{failure}");

    // A flipped byte: caught by `stele verify` (and by any read of that frame).
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    std::fs::write(&second, &flipped).unwrap();
    let failure = verifies(dir.path(), &writer).unwrap_err();
    assert!(failure.contains(&second.display().to_string()), "{failure}");

    // Missing: a gap in the sequence.
    std::fs::remove_file(&second).unwrap();
    match Ledger::open(dir.path(), SMALL) {
        Err(LedgerError::Corrupt { reason, .. }) => {
            assert!(reason.contains("starts at seqno"), "{reason}");
        }
        other => panic!("expected a gap refused, got {other:?}"),
    }
    std::fs::write(&second, &whole).unwrap();
    assert_eq!(verifies(dir.path(), &writer), Ok(200));
}
