//! Writing, reopening, crash recovery, truncation and group commit.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::chunk_files;

use stele_ledger::fixture::FixtureWriter;
use stele_ledger::{
    verify_ledger, BatchEntry, GroupCommit, Ledger, LedgerConfig, LedgerError, SignatureEntry,
};

/// Small chunks, so a few batches span several files.
const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

fn new_ledger(dir: &Path, writer: &FixtureWriter) -> Ledger {
    Ledger::create(dir, SMALL, &writer.genesis()).unwrap()
}

/// Appends `sizes.len()` batches and syncs after each; returns what was written.
fn append_all(
    ledger: &mut Ledger,
    writer: &mut FixtureWriter,
    sizes: &[usize],
) -> Vec<(BatchEntry, SignatureEntry)> {
    sizes
        .iter()
        .map(|&txs| {
            let (batch, signature) = writer.batch(txs);
            ledger.append(&batch, &signature).unwrap();
            ledger.sync().unwrap();
            (batch, signature)
        })
        .collect()
}

fn verifies(dir: &Path, writer: &FixtureWriter) -> u64 {
    verify_ledger(dir, Some(&writer.public_key()), &mut |_| {})
        .unwrap()
        .transactions
}

#[test]
fn round_trip_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(1);
    let mut ledger = new_ledger(dir.path(), &writer);
    let sizes: Vec<usize> = (1..=30).map(|index| index % 7 + 1).collect();
    let written = append_all(&mut ledger, &mut writer, &sizes);
    let chunks = ledger.chunk_count();
    assert!(chunks > 2, "small chunks rotate: {chunks}");
    drop(ledger);

    let (ledger, recovery) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(recovery.torn, None);
    assert_eq!(ledger.chunk_count(), chunks);
    assert_eq!(ledger.genesis(), &writer.genesis());
    assert_eq!(ledger.last_seqno(), sizes.iter().sum::<usize>() as u64);
    for (batch, signature) in &written {
        for seqno in batch.first_seqno..=batch.last_seqno() {
            let (read, read_signature) = ledger.read_batch(seqno).unwrap();
            assert_eq!(&read, batch);
            assert_eq!(&read_signature, signature);
        }
    }
    assert!(matches!(
        ledger.read_batch(ledger.last_seqno() + 1),
        Err(LedgerError::UnknownSeqno(_))
    ));
    assert_eq!(verifies(dir.path(), &writer), ledger.last_seqno());
}

#[test]
fn a_cut_anywhere_in_the_last_entry_recovers_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(2);
    let mut ledger =
        Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).unwrap();
    append_all(&mut ledger, &mut writer, &[3, 2, 4]);
    let before = ledger.batches().last().unwrap().end;
    let kept_seqno = ledger.last_seqno();
    let (batch, signature) = writer.batch(3);
    let location = ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    drop(ledger);
    let path = dir.path().join("ledger_1");
    let full = std::fs::read(&path).unwrap();
    assert_eq!(location.end, full.len() as u64);

    for cut in before..location.end {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (ledger, recovery) = Ledger::open(dir.path(), LedgerConfig::default()).unwrap();
        assert_eq!(ledger.last_seqno(), kept_seqno, "cut at {cut}");
        let torn = recovery.torn.map(|torn| (torn.offset, torn.bytes));
        let expected = (cut > before).then_some((before, cut - before));
        assert_eq!(torn, expected, "cut at {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    }

    // Zero fill after the last entry (a file system that grew the file first).
    let mut zeroed = full.clone();
    zeroed.extend_from_slice(&[0; 300]);
    std::fs::write(&path, &zeroed).unwrap();
    let (mut ledger, recovery) = Ledger::open(dir.path(), LedgerConfig::default()).unwrap();
    assert_eq!(recovery.torn.unwrap().bytes, 300);
    assert_eq!(ledger.last_seqno(), batch.last_seqno());
    // And the recovered ledger takes appends again.
    let (next, next_signature) = writer.batch(1);
    ledger.append(&next, &next_signature).unwrap();
    ledger.sync().unwrap();
    assert_eq!(verifies(dir.path(), &writer), next.last_seqno());
}

#[test]
fn damage_before_the_tail_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(3);
    let mut ledger = new_ledger(dir.path(), &writer);
    append_all(&mut ledger, &mut writer, &[5; 12]);
    drop(ledger);
    // The middle of the first (closed) chunk, and the first entry of the open one.
    let files = chunk_files(dir.path());
    let closed = files
        .iter()
        .find(|path| path.to_str().unwrap().contains('-'))
        .unwrap();
    let mut bytes = std::fs::read(closed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(closed, &bytes).unwrap();
    match Ledger::open(dir.path(), SMALL) {
        Err(LedgerError::Corrupt { file, offset, .. }) => {
            assert_eq!(&file, closed);
            assert!(offset <= middle as u64);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    bytes[middle] ^= 0x40;
    std::fs::write(closed, &bytes).unwrap();
    assert!(Ledger::open(dir.path(), SMALL).is_ok());
}

#[test]
fn truncated_suffixes_never_reappear() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(4);
    let mut ledger = new_ledger(dir.path(), &writer);
    let written = append_all(&mut ledger, &mut writer, &[4; 20]);
    let chunks = ledger.chunk_count();

    // Not a batch end; beyond the end: refused, nothing changes.
    assert!(matches!(
        ledger.truncate(6),
        Err(LedgerError::NotABatchBoundary { seqno: 6 })
    ));
    assert!(matches!(
        ledger.truncate(81),
        Err(LedgerError::SeqnoOutOfRange { .. })
    ));
    assert_eq!(ledger.last_seqno(), 80);

    // Back into an earlier chunk, then a different future.
    ledger.truncate(24).unwrap();
    assert!(ledger.chunk_count() < chunks);
    writer.rollback(24);
    writer.salt = 1;
    let rewritten = append_all(&mut ledger, &mut writer, &[3, 3]);
    drop(ledger);

    let (ledger, recovery) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(recovery.torn, None);
    assert_eq!(ledger.last_seqno(), 30);
    for (batch, _) in &written[..6] {
        assert_eq!(&ledger.read_batch(batch.first_seqno).unwrap().0, batch);
    }
    for (batch, _) in &rewritten {
        let (read, _) = ledger.read_batch(batch.first_seqno).unwrap();
        assert_eq!(&read, batch);
        assert_ne!(read.txs[0], written[6].0.txs[0]);
    }
    assert_eq!(verifies(dir.path(), &writer), 30);

    // Commit protects a prefix.
    let mut ledger = ledger;
    ledger.commit(8).unwrap();
    assert!(matches!(
        ledger.truncate(4),
        Err(LedgerError::SeqnoOutOfRange { .. })
    ));
    ledger.truncate(8).unwrap();
    assert_eq!(ledger.last_seqno(), 8);
    drop(ledger);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(ledger.last_seqno(), 8);
}

#[test]
fn truncate_to_genesis_then_start_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(5);
    let mut ledger = new_ledger(dir.path(), &writer);
    append_all(&mut ledger, &mut writer, &[6; 10]);
    ledger.truncate(0).unwrap();
    assert_eq!(ledger.chunk_count(), 1);
    writer.rollback(0);
    writer.salt = 9;
    append_all(&mut ledger, &mut writer, &[2]);
    drop(ledger);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(ledger.last_seqno(), 2);
    assert_eq!(verifies(dir.path(), &writer), 2);
}

#[test]
fn commit_names_closed_chunks_and_appends_must_be_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(6);
    let mut ledger = new_ledger(dir.path(), &writer);
    append_all(&mut ledger, &mut writer, &[5; 12]);
    ledger.commit(ledger.durable_seqno()).unwrap();
    let names: Vec<String> = chunk_files(dir.path())
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    let closed = names.iter().filter(|name| name.contains('-')).count();
    let committed = names
        .iter()
        .filter(|name| name.ends_with(".committed"))
        .count();
    assert!(closed >= 2);
    assert_eq!(
        committed, closed,
        "every closed chunk is committed: {names:?}"
    );
    let (mut batch, signature) = writer.batch(1);
    batch.first_seqno += 1;
    assert!(matches!(
        ledger.append(&batch, &signature),
        Err(LedgerError::NotNext { .. })
    ));
    drop(ledger);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert!(ledger.committed_seqno() > 0);
    assert_eq!(verifies(dir.path(), &writer), 60);
}

#[test]
fn group_commit_covers_many_appends_with_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(7);
    let ledger = Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).unwrap();
    let group = GroupCommit::spawn(ledger).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    // The first completion holds the writer thread until every other append is
    // queued, so the rest form one group, whatever the timing.
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let mut hold = Some(hold);
    let appends = 200;
    for _ in 0..appends {
        let (batch, signature) = writer.batch(2);
        let last = batch.last_seqno();
        let sender = sender.clone();
        let gate = hold.take();
        group
            .append(batch, signature, move |result| {
                if let Some(gate) = gate {
                    gate.recv().unwrap();
                }
                sender.send((last, result)).unwrap();
            })
            .unwrap();
    }
    release.send(()).unwrap();
    for _ in 0..appends {
        let (last, result) = receiver.recv().unwrap();
        let durable = result.unwrap();
        assert_eq!(durable.location.last_seqno, last);
        assert!(
            durable.durable_seqno >= last,
            "told durable before its sync"
        );
    }
    assert_eq!(group.appends(), appends);
    // One group, or the first request alone and then the other 199 together.
    assert!((1..=2).contains(&group.syncs()), "{} syncs", group.syncs());
    let (batch, signature) = writer.batch(1);
    group.append_blocking(batch, signature).unwrap();
    group.commit_blocking(10).unwrap();
    group.truncate_blocking(20).unwrap();
    let ledger = group.shutdown().unwrap();
    assert_eq!(ledger.last_seqno(), 20);
    assert_eq!(ledger.committed_seqno(), 10);
}

/// The chunks between the first and the last are scanned apart (in
/// parallel): damage in one is still named with its file, and a missing one
/// is still refused, as when they were scanned in order.
#[test]
fn middle_chunks_scanned_apart_still_name_damage_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(4);
    let mut ledger = new_ledger(dir.path(), &writer);
    append_all(&mut ledger, &mut writer, &[5; 40]);
    let chunks = ledger.chunk_count();
    assert!(chunks >= 5, "small chunks rotate: {chunks}");
    let index: Vec<_> = ledger.batches().to_vec();
    drop(ledger);
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice(), "the same index");
    drop(reopened);

    let files = chunk_files(dir.path());
    let third = &files[2];
    let mut bytes = std::fs::read(third).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(third, &bytes).unwrap();
    match Ledger::open(dir.path(), SMALL) {
        Err(LedgerError::Corrupt { file, offset, .. }) => {
            assert_eq!(&file, third);
            assert!(offset <= middle as u64);
        }
        other => panic!("expected corruption in {}, got {other:?}", third.display()),
    }
    bytes[middle] ^= 0x40;
    std::fs::write(third, &bytes).unwrap();

    let aside = dir.path().join("aside");
    std::fs::rename(third, &aside).unwrap();
    match Ledger::open(dir.path(), SMALL) {
        Err(LedgerError::Corrupt { reason, .. }) => {
            assert!(reason.contains("starts at seqno"), "{reason}");
        }
        other => panic!("expected a gap to be refused, got {other:?}"),
    }
    std::fs::rename(&aside, third).unwrap();
    assert!(Ledger::open(dir.path(), SMALL).is_ok());
}

/// A committed chunk gets an index file, and a start reads it instead of
/// the chunk: damage inside such a chunk (same length) is not seen by the
/// start, but is by `stele verify`, and by the start again once the index is
/// gone. A damaged index is ignored (the chunk is scanned) and rewritten.
#[test]
fn committed_chunks_open_from_their_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(6);
    let mut ledger = new_ledger(dir.path(), &writer);
    append_all(&mut ledger, &mut writer, &[5; 40]);
    ledger.commit(ledger.durable_seqno()).unwrap();
    let index: Vec<_> = ledger.batches().to_vec();
    drop(ledger);
    let index_dir = dir.path().join(stele_ledger::chunk_index::CHUNK_INDEX_DIR);
    let index_files = |dir: &Path| -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    };
    let written = index_files(&index_dir);
    let committed = chunk_files(dir.path())
        .iter()
        .filter(|path| path.to_string_lossy().ends_with(".committed"))
        .count();
    assert_eq!(written.len(), committed, "one index per committed chunk");
    assert!(committed >= 4, "small chunks rotate: {committed}");

    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice(), "the same index");
    drop(reopened);

    // Damage the middle of a middle chunk without changing its length.
    let files = chunk_files(dir.path());
    let third = files[2].clone();
    let mut bytes = std::fs::read(&third).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&third, &bytes).unwrap();
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice(), "read from the index");
    drop(reopened);
    assert!(
        verify_ledger(dir.path(), Some(&writer.public_key()), &mut |_| {}).is_err(),
        "stele verify reads every frame"
    );
    let third_index = written
        .iter()
        .find(|path| {
            path.file_name().unwrap().to_string_lossy()
                == format!("{}.index", third.file_name().unwrap().to_string_lossy())
        })
        .unwrap()
        .clone();
    std::fs::remove_file(&third_index).unwrap();
    match Ledger::open(dir.path(), SMALL) {
        Err(LedgerError::Corrupt { file, .. }) => assert_eq!(file, third),
        other => panic!("expected corruption in {}, got {other:?}", third.display()),
    }
    bytes[middle] ^= 0x40;
    std::fs::write(&third, &bytes).unwrap();

    // A damaged index: ignored, the chunk scanned, the index written again.
    let fourth_index = &written[3];
    let whole = std::fs::read(fourth_index).unwrap();
    let mut damaged = whole.clone();
    damaged[20] ^= 1;
    std::fs::write(fourth_index, &damaged).unwrap();
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.batches(), index.as_slice());
    drop(reopened);
    assert_eq!(std::fs::read(fourth_index).unwrap(), whole, "rewritten");
    assert!(
        !std::fs::read(&third_index).unwrap().is_empty(),
        "rewritten too"
    );
    assert_eq!(
        verifies(dir.path(), &writer),
        index.last().unwrap().last_seqno
    );
}
