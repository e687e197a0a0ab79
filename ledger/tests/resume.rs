//! Ledgers that resume at a signed checkpoint (a resume entry) without the
//! batches before it: opened, read, cut, and verified from the checkpoint on;
//! resume entries that lie, or sit where they may not, are refused.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write as _;
use std::path::Path;

use stele_history::Digest;
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::frame::encode_frame;
use stele_ledger::{
    verify_ledger, verify_ledger_against, Entry, Ledger, LedgerConfig, LedgerError, ResumeEntry,
    VerifySummary,
};

/// Small chunks, so a few batches span several files.
const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

/// A ledger holding `held` batches of 5 transactions, then resuming after
/// `skipped` more (made, not appended), then holding `after` more. Returns
/// the writer (at the last batch) and the ledger, synced.
fn resumed_ledger(
    dir: &Path,
    held: usize,
    skipped: usize,
    after: usize,
) -> (FixtureWriter, Ledger, ResumeEntry) {
    let mut writer = FixtureWriter::new(8);
    let mut ledger = Ledger::create(dir, SMALL, &writer.genesis()).unwrap();
    for _ in 0..held {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    let after_seqno = writer.last_seqno();
    for _ in 0..skipped {
        writer.batch(5);
    }
    let resume = writer.resume(after_seqno);
    ledger.append_resume(&resume).unwrap();
    ledger.sync().unwrap();
    for _ in 0..after {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    (writer, ledger, resume)
}

fn verified(dir: &Path, writer: &FixtureWriter) -> Result<VerifySummary, String> {
    verify_ledger(dir, Some(&writer.public_key()), &mut |_| {}).map_err(|error| error.to_string())
}

#[test]
fn a_ledger_resumes_after_a_skip_reads_reopens_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, resume) = resumed_ledger(dir.path(), 6, 10, 8);
    assert_eq!((resume.after_seqno, resume.seqno), (30, 80));
    assert_eq!(ledger.last_seqno(), 120);
    assert!(ledger.read_batch(30).is_ok());
    assert!(ledger.read_batch(81).is_ok());
    match ledger.read_batch(55) {
        Err(LedgerError::NotHeld {
            seqno: 55,
            after_seqno: 30,
            resumes_at: 80,
        }) => {}
        other => panic!("a skipped seqno read as {other:?}"),
    }
    assert!(matches!(
        ledger.read_batch(121),
        Err(LedgerError::UnknownSeqno(121))
    ));
    let resumptions = ledger.resumptions().to_vec();
    let batches = ledger.batches().to_vec();
    drop(ledger);

    let (reopened, recovery) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(recovery.torn, None);
    assert_eq!(reopened.resumptions(), resumptions.as_slice());
    assert_eq!(reopened.batches(), batches.as_slice());
    assert_eq!(reopened.last_seqno(), 120);

    let summary = verified(dir.path(), &writer).unwrap();
    assert_eq!(summary.absent, vec![(31, 80)]);
    assert_eq!(summary.transactions, 120 - 50);
    assert_eq!(summary.last_checkpoint.unwrap().tree_size, 120);
}

#[test]
fn a_ledger_can_resume_right_after_its_genesis_and_commit_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, mut ledger, _) = resumed_ledger(dir.path(), 0, 12, 30);
    assert_eq!(ledger.resumptions()[0].chunk_first, 61);
    let files: Vec<String> = support::chunk_files(dir.path())
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|name| name.starts_with("ledger_61-"))
            && !files
                .iter()
                .any(|name| name == "ledger_1" || name.starts_with("ledger_1-")),
        "the genesis and resume entries are in a chunk named from 61, ledger_1 is gone: {files:?}"
    );
    assert!(files.len() > 3);
    ledger.commit(ledger.durable_seqno()).unwrap();
    drop(ledger);
    // Twice: the second open reads the committed chunks' index files.
    for _ in 0..2 {
        let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
        assert_eq!(reopened.resumptions().len(), 1);
        assert_eq!(reopened.resumptions()[0].seqno, 60);
        assert_eq!(reopened.resumptions()[0].chunk_first, 61);
        assert_eq!(reopened.last_seqno(), 210);
        assert_eq!(reopened.batches().first().unwrap().first_seqno, 61);
    }
    let summary = verified(dir.path(), &writer).unwrap();
    assert_eq!(summary.absent, vec![(1, 60)]);
    assert_eq!(summary.transactions, 150);
}

#[test]
fn a_truncation_keeps_or_drops_the_resume_entry_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut ledger, _) = resumed_ledger(dir.path(), 4, 4, 4);
    // Back to the checkpoint it resumes at: the entry stays.
    ledger.truncate(40).unwrap();
    assert_eq!(ledger.last_seqno(), 40);
    assert_eq!(ledger.resumptions().len(), 1);
    writer.rollback(40);
    let (batch, signature) = writer.batch(5);
    ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    drop(ledger);
    let (mut reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.last_seqno(), 45);
    assert!(verified(dir.path(), &writer).is_ok());
    // Inside the skipped seqnos: no batch ends there.
    assert!(matches!(
        reopened.truncate(30),
        Err(LedgerError::NotABatchBoundary { seqno: 30 })
    ));
    // Before it: the entry goes with everything after it.
    reopened.truncate(20).unwrap();
    assert!(reopened.resumptions().is_empty());
    drop(reopened);
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.last_seqno(), 20);
    assert!(reopened.resumptions().is_empty());
}

#[test]
fn a_resume_entry_must_continue_the_ledger_and_describe_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(8);
    let mut ledger = Ledger::create(dir.path(), SMALL, &writer.genesis()).unwrap();
    for _ in 0..2 {
        writer.batch(5);
    }
    // After seqno 3: the ledger holds nothing.
    assert!(matches!(
        ledger.append_resume(&writer.resume(3)),
        Err(LedgerError::NotNext { .. })
    ));
    // A frontier of 9 leaves for a tree of 10.
    let mut short_frontier = writer.resume(0);
    short_frontier.frontier_edge.truncate(9 * 32);
    assert!(matches!(
        ledger.append_resume(&short_frontier),
        Err(LedgerError::BadResume(_))
    ));
    // Resuming at the seqno it already holds skips nothing.
    let mut nothing_skipped = writer.resume(0);
    nothing_skipped.seqno = 0;
    assert!(matches!(
        ledger.append_resume(&nothing_skipped),
        Err(LedgerError::BadResume(_))
    ));
    assert_eq!(ledger.last_seqno(), 0);
    assert!(ledger.resumptions().is_empty());
}

/// Writes `resume` as a raw frame at the end of the ledger's last chunk.
fn append_raw_resume(dir: &Path, resume: &ResumeEntry) {
    let last = support::chunk_files(dir).pop().unwrap();
    let mut bytes = Vec::new();
    encode_frame(&Entry::Resume(resume.clone()).encode(), &mut bytes);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    file.write_all(&bytes).unwrap();
}

#[test]
fn a_resume_entry_inside_a_chunk_is_refused_by_open_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(8);
    let mut ledger =
        Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).unwrap();
    let (batch, signature) = writer.batch(5);
    ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    drop(ledger);
    writer.batch(5);
    append_raw_resume(dir.path(), &writer.resume(5));
    let error = Ledger::open(dir.path(), LedgerConfig::default()).unwrap_err();
    assert!(
        error.to_string().contains("does not open its chunk"),
        "{error}"
    );
    let failure = verified(dir.path(), &writer).unwrap_err();
    assert!(failure.contains("does not open its chunk"), "{failure}");
}

/// The fixture's first chunk, holding its transactions 1 ..= `last` (60
/// at most), as a committed chunk file of `dir`: what a node fetches.
fn place_prefix(dir: &Path, last: u64) {
    place_prefix_salted(dir, last, 0);
}

/// [`place_prefix`] with the fixture's transactions made with `salt`.
fn place_prefix_salted(dir: &Path, last: u64, salt: u64) {
    let source = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(8);
    writer.salt = salt;
    let mut ledger =
        Ledger::create(source.path(), LedgerConfig::default(), &writer.genesis()).unwrap();
    for _ in 0..12 {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
    }
    ledger.sync().unwrap();
    let end = ledger.locate(last).unwrap().end;
    let bytes = std::fs::read(source.path().join("ledger_1")).unwrap();
    std::fs::write(
        dir.join(format!("ledger_1-{last}.committed")),
        &bytes[..end as usize],
    )
    .unwrap();
}

#[test]
fn fetched_batches_fill_the_skipped_seqnos_from_the_front() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, _) = resumed_ledger(dir.path(), 0, 12, 6);
    drop(ledger);

    place_prefix(dir.path(), 30);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(ledger.resumptions()[0].held_before, 30);
    assert!(ledger.read_batch(30).is_ok());
    assert!(matches!(
        ledger.read_batch(31),
        Err(LedgerError::NotHeld {
            after_seqno: 30,
            resumes_at: 60,
            ..
        })
    ));
    drop(ledger);
    let summary = verified(dir.path(), &writer).unwrap();
    assert_eq!(summary.absent, vec![(31, 60)]);
    assert_eq!(summary.transactions, 60);

    std::fs::remove_file(dir.path().join("ledger_1-30.committed")).unwrap();
    place_prefix(dir.path(), 60);
    let (ledger, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(ledger.resumptions()[0].held_before, 60);
    assert!(ledger.read_batch(45).is_ok());
    assert_eq!(ledger.batches().len(), 18);
    drop(ledger);
    let summary = verified(dir.path(), &writer).unwrap();
    assert!(summary.absent.is_empty(), "{:?}", summary.absent);
    assert_eq!(summary.transactions, 90);

    // A prefix of other transactions (each batch signed by the same key):
    // the tree it gives is not the one the resume entry records.
    std::fs::remove_file(dir.path().join("ledger_1-60.committed")).unwrap();
    place_prefix_salted(dir.path(), 60, 1);
    let failure = verified(dir.path(), &writer).unwrap_err();
    assert!(failure.contains("the batches before it give"), "{failure}");
}

/// A ledger of the fixture's first two batches, then `resume`.
fn two_batches_then(dir: &Path, resume: &ResumeEntry) {
    let mut replay = FixtureWriter::new(8);
    let mut ledger = Ledger::create(dir, SMALL, &replay.genesis()).unwrap();
    for _ in 0..2 {
        let (batch, signature) = replay.batch(5);
        ledger.append(&batch, &signature).unwrap();
    }
    ledger.append_resume(resume).unwrap();
    ledger.sync().unwrap();
}

#[test]
fn verify_refuses_a_resume_entry_whose_tree_is_not_the_signed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, ledger, resume) = resumed_ledger(dir.path(), 2, 3, 0);
    drop(ledger);
    let good = verified(dir.path(), &writer).unwrap();
    assert_eq!(good.absent, vec![(11, 25)]);

    // The same ledger with one edge leaf changed: the frontier's root is
    // not the signed one.
    let mut forged = resume.clone();
    forged.frontier_edge[0] ^= 1;
    let dir2 = tempfile::tempdir().unwrap();
    two_batches_then(dir2.path(), &forged);
    let failure = verified(dir2.path(), &writer).unwrap_err();
    assert!(failure.contains("frontier's root"), "{failure}");

    // Signed by another key.
    let mut foreign = resume.clone();
    foreign.checkpoint = {
        let mut stranger = FixtureWriter::new(9);
        for _ in 0..5 {
            stranger.batch(5);
        }
        stranger.resume(10).checkpoint
    };
    let dir3 = tempfile::tempdir().unwrap();
    two_batches_then(dir3.path(), &foreign);
    let failure = verified(dir3.path(), &writer).unwrap_err();
    assert!(failure.contains("does not verify"), "{failure}");
}

#[test]
fn an_anchor_before_the_resume_point_cannot_be_shown_and_one_after_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(8);
    let mut early_anchor = None;
    let mut ledger = Ledger::create(dir.path(), SMALL, &writer.genesis()).unwrap();
    for index in 0..4 {
        let (batch, signature) = writer.batch(5);
        if index == 1 {
            early_anchor = Some(signature.checkpoint.clone());
        }
        ledger.append(&batch, &signature).unwrap();
    }
    for _ in 0..4 {
        writer.batch(5);
    }
    ledger.append_resume(&writer.resume(20)).unwrap();
    let mut late_anchor = None;
    for _ in 0..3 {
        let (batch, signature) = writer.batch(5);
        late_anchor = Some(signature.checkpoint.clone());
        ledger.append(&batch, &signature).unwrap();
    }
    ledger.sync().unwrap();
    drop(ledger);
    let key = writer.public_key();
    let failure =
        verify_ledger_against(dir.path(), Some(&key), early_anchor.as_deref(), &mut |_| {})
            .unwrap_err();
    assert!(failure.what.contains("resumes at seqno 40"), "{failure}");
    let summary =
        verify_ledger_against(dir.path(), Some(&key), late_anchor.as_deref(), &mut |_| {}).unwrap();
    assert_eq!(summary.anchor.unwrap().tree_size, 55);
    assert_eq!(
        Digest(summary.public_key).to_hex(),
        Digest(key.to_bytes()).to_hex()
    );
}

#[test]
fn an_install_cut_short_drops_its_resume_entry_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut ledger, _) = resumed_ledger(dir.path(), 3, 4, 0);
    ledger.drop_last_resumption().unwrap();
    assert!(ledger.resumptions().is_empty());
    assert_eq!(ledger.last_seqno(), 15);
    writer.rollback(15);
    let (batch, signature) = writer.batch(5);
    ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    drop(ledger);
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.last_seqno(), 20);
    assert!(reopened.resumptions().is_empty());
    assert_eq!(verified(dir.path(), &writer).unwrap().transactions, 20);

    // With batches after it, it is not an install cut short: refused.
    let dir = tempfile::tempdir().unwrap();
    let (_, mut ledger, _) = resumed_ledger(dir.path(), 1, 2, 1);
    assert!(ledger.drop_last_resumption().is_err());
    assert_eq!(ledger.resumptions().len(), 1);
}

#[test]
fn a_second_resume_before_any_batch_follows_the_first_in_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut ledger, _) = resumed_ledger(dir.path(), 2, 2, 0);
    for _ in 0..3 {
        writer.batch(5);
    }
    let second = writer.resume(20);
    ledger.append_resume(&second).unwrap();
    assert_eq!(ledger.resumptions().len(), 2);
    assert_eq!(
        ledger.resumptions()[1].chunk_first,
        ledger.resumptions()[0].chunk_first,
        "in the chunk the first opened"
    );
    let (batch, signature) = writer.batch(5);
    ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    drop(ledger);
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.resumptions().len(), 2);
    assert_eq!(reopened.last_seqno(), 40);
    let summary = verified(dir.path(), &writer).unwrap();
    assert_eq!(summary.absent, vec![(11, 20), (21, 35)]);
    drop(reopened);

    // Undone (an install cut short): back to the first, which stays.
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, mut ledger, _) = resumed_ledger(dir.path(), 2, 2, 0);
    for _ in 0..3 {
        writer.batch(5);
    }
    ledger.append_resume(&writer.resume(20)).unwrap();
    ledger.drop_last_resumption().unwrap();
    assert_eq!(ledger.resumptions().len(), 1);
    assert_eq!(ledger.last_seqno(), 20);
    drop(ledger);
    let (reopened, _) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(reopened.resumptions().len(), 1);
    assert_eq!(reopened.last_seqno(), 20);
}
