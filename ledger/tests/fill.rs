//! Filling the seqnos a resume entry skipped while the ledger runs: fetched
//! batches checked against the signed checkpoints (and refused when edited,
//! out of order or past the resume point), written as committed chunks in
//! front of the gap, adopted, read, reopened and verified.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use stele_history::MerkleTree;
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::{
    verify_ledger, write_filled_chunk, BatchEntry, GapCheck, Ledger, LedgerConfig, LedgerError,
    SignatureEntry,
};

/// Small chunks, so a few batches span several files.
const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

type Fetched = Vec<(BatchEntry, SignatureEntry)>;

/// A ledger that resumed right after its genesis at seqno 60 (12 batches of
/// 5 skipped), then holds 6 more batches; and the skipped batches, as a
/// peer would send them.
fn resumed(dir: &Path) -> (FixtureWriter, Ledger, Fetched) {
    let mut writer = FixtureWriter::new(8);
    let mut ledger = Ledger::create(dir, SMALL, &writer.genesis()).unwrap();
    let skipped: Fetched = (0..12).map(|_| writer.batch(5)).collect();
    ledger.append_resume(&writer.resume(0)).unwrap();
    for _ in 0..6 {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    (writer, ledger, skipped)
}

fn check_of(ledger: &Ledger) -> GapCheck {
    let gap = ledger.first_gap().unwrap();
    GapCheck::new(ledger.genesis(), gap, MerkleTree::new()).unwrap()
}

#[test]
fn checked_batches_fill_the_gap_while_the_ledger_runs_and_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut ledger, skipped) = resumed(dir.path());
    let genesis = writer.genesis();
    let mut check = check_of(&ledger);
    for (batch, signature) in &skipped[..6] {
        check.check(batch, signature).unwrap();
    }
    assert_eq!(check.next_seqno(), 31);
    let filled = write_filled_chunk(dir.path(), &genesis, &skipped[..6]).unwrap();
    assert_eq!(filled.name.file_name(), "ledger_1-30.committed");
    let gap = ledger.adopt_filled(filled).unwrap();
    assert_eq!((gap.held_before, gap.seqno), (30, 60));
    assert_eq!(ledger.read_batch(12).unwrap().0, skipped[2].0);
    assert!(matches!(
        ledger.read_batch(31),
        Err(LedgerError::NotHeld {
            after_seqno: 30,
            ..
        })
    ));

    for (batch, signature) in &skipped[6..] {
        check.check(batch, signature).unwrap();
    }
    assert!(check.is_done());
    let filled = write_filled_chunk(dir.path(), &genesis, &skipped[6..]).unwrap();
    ledger.adopt_filled(filled).unwrap();
    assert!(ledger.first_gap().is_none());
    assert_eq!(ledger.read_batch(45).unwrap().0, skipped[8].0);
    // Appends, syncs and commits go on after it.
    let (batch, signature) = writer.batch(5);
    ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    ledger.commit(writer.last_seqno()).unwrap();
    assert_eq!(ledger.batches().len(), 12 + 7);
    drop(ledger);

    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert!(ledger.first_gap().is_none());
    assert_eq!(ledger.resumptions()[0].held_before, 60);
    assert_eq!(ledger.read_batch(3).unwrap().0, skipped[0].0);
    drop(ledger);
    let summary = verify_ledger(dir.path(), Some(&writer.public_key()), &mut |_| {}).unwrap();
    assert!(summary.absent.is_empty(), "{:?}", summary.absent);
    assert_eq!(summary.transactions, writer.last_seqno());
}

#[test]
fn a_filled_chunk_written_before_a_crash_is_taken_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, skipped) = resumed(dir.path());
    let genesis = writer.genesis();
    write_filled_chunk(dir.path(), &genesis, &skipped[..3]).unwrap();
    drop(ledger);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(ledger.first_gap().unwrap().held_before, 15);
    // The check of the rest starts from the ledger's own tree.
    let mut tree = MerkleTree::new();
    for (batch, _) in &skipped[..3] {
        tree.append_leaf_hashes(&batch.leaf_hashes());
    }
    let mut check = GapCheck::new(ledger.genesis(), ledger.first_gap().unwrap(), tree).unwrap();
    for (batch, signature) in &skipped[3..] {
        check.check(batch, signature).unwrap();
    }
    assert!(check.is_done());
}

#[test]
fn edited_reordered_or_foreign_batches_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ledger, skipped) = resumed(dir.path());
    let mut check = check_of(&ledger);

    // A command edited: its leaf, so the root, is no longer the signed one.
    let (mut edited, signature) = skipped[0].clone();
    edited.txs[1].command[0] ^= 1;
    let refused = check.check(&edited, &signature).unwrap_err();
    assert!(refused.contains("differs from the root"), "{refused}");
    // Out of order.
    let refused = check.check(&skipped[1].0, &skipped[1].1).unwrap_err();
    assert!(refused.contains("expected 1"), "{refused}");
    // Batches of another history signed by another key.
    let mut other = FixtureWriter::new(9);
    let (foreign, foreign_signature) = other.batch(5);
    let refused = check.check(&foreign, &foreign_signature).unwrap_err();
    assert!(refused.contains("does not verify"), "{refused}");
    // None of that moved the check: the real batches still pass.
    for (batch, signature) in &skipped {
        check.check(batch, signature).unwrap();
    }
    // Past the resume point.
    let mut more = FixtureWriter::new(8);
    let batches: Fetched = (0..13).map(|_| more.batch(5)).collect();
    let refused = check.check(&batches[12].0, &batches[12].1).unwrap_err();
    assert!(refused.contains("runs past the resume point"), "{refused}");
}

#[test]
fn a_batch_that_ends_the_gap_must_give_the_resume_entrys_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(8);
    let mut ledger = Ledger::create(dir.path(), SMALL, &writer.genesis()).unwrap();
    let skipped: Fetched = (0..2).map(|_| writer.batch(5)).collect();
    ledger.append_resume(&writer.resume(0)).unwrap();
    // A second history under the same key, of the same length: each of its
    // batches is signed, but it is not the tree the resume entry records.
    let mut fork = FixtureWriter::new(8);
    fork.salt = 1;
    let forked: Fetched = (0..2).map(|_| fork.batch(5)).collect();
    let mut check = check_of(&ledger);
    check.check(&forked[0].0, &forked[0].1).unwrap();
    let refused = check.check(&forked[1].0, &forked[1].1).unwrap_err();
    assert!(
        refused.contains("resume entry's checkpoint signs"),
        "{refused}"
    );
    drop(check);
    let mut check = check_of(&ledger);
    for (batch, signature) in &skipped {
        check.check(batch, signature).unwrap();
    }
}

#[test]
fn a_chunk_that_does_not_start_the_gap_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut ledger, skipped) = resumed(dir.path());
    let genesis = writer.genesis();
    let filled = write_filled_chunk(dir.path(), &genesis, &skipped[2..4]).unwrap();
    let refused = ledger.adopt_filled(filled).unwrap_err();
    assert!(
        refused.to_string().contains("does not fill the gap 1..=60"),
        "{refused}"
    );
    assert_eq!(ledger.first_gap().unwrap().held_before, 0);
}

#[test]
fn a_run_is_checked_up_to_its_first_bad_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ledger, skipped) = resumed(dir.path());
    let mut run = skipped.clone();
    run[4].0.txs[0].write_set[0] ^= 1;
    let mut check = check_of(&ledger);
    let (passed, refused) = check.check_run(&run);
    assert_eq!(passed, 4);
    assert!(refused.unwrap().contains("differs from the root"));
    assert_eq!(check.next_seqno(), 21);
    let (passed, refused) = check.check_run(&skipped[4..]);
    assert_eq!((passed, refused), (8, None));
    assert!(check.is_done());
}

/// Two resume entries with nothing between share the chunk the first one
/// opened, named from where the second one's gap starts: that gap cannot
/// take a chunk of its own, so it is not offered, and a chunk written for it
/// is refused before it reaches the folder (two chunks named from one seqno
/// would make the ledger unopenable).
#[test]
fn the_gap_after_a_lone_resume_entry_is_not_filled() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(8);
    let genesis = writer.genesis();
    let mut ledger = Ledger::create(dir.path(), SMALL, &genesis).unwrap();
    let first: Fetched = (0..2).map(|_| writer.batch(5)).collect();
    ledger.append_resume(&writer.resume(0)).unwrap();
    let second: Fetched = (0..2).map(|_| writer.batch(5)).collect();
    ledger.append_resume(&writer.resume(10)).unwrap();
    assert_eq!(ledger.chunk_count(), 1, "both resume entries in one chunk");

    // The first gap fills.
    let gap = ledger.fillable_gap().unwrap().clone();
    assert_eq!((gap.held_before, gap.seqno), (0, 10));
    let mut check = GapCheck::new(&genesis, &gap, MerkleTree::new()).unwrap();
    assert_eq!(check.check_run(&first), (2, None));
    let filled = write_filled_chunk(dir.path(), &genesis, &first).unwrap();
    ledger.adopt_filled(filled).unwrap();

    // The second starts where the shared chunk is named from.
    let gap = ledger.first_gap().unwrap().clone();
    assert_eq!((gap.held_before, gap.seqno), (10, 20));
    assert!(ledger.fillable_gap().is_none());
    let refused = write_filled_chunk(dir.path(), &genesis, &second).unwrap_err();
    assert!(
        refused.to_string().contains("already starts at seqno 11"),
        "{refused}"
    );
    drop(ledger);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(ledger.first_gap().unwrap().held_before, 10);
}
