//! A full disk holds the writer back instead of stopping the ledger: the tail is
//! cut back to the last sync and the failed group written again once space is
//! freed ([`Ledger::recover_tail`], the group writer's retry).

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use stele_ledger::fixture::FixtureWriter;
use stele_ledger::{verify_ledger, Clearable, GroupCommit, Ledger, LedgerConfig};
use stele_tests::tmpfs::{fill, Tmpfs};

const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

/// Bound on the waits for the writer to notice the full disk, and to finish.
const WAIT: Duration = Duration::from_secs(30);

fn verifies(dir: &Path, writer: &FixtureWriter) -> u64 {
    verify_ledger(dir, Some(&writer.public_key()), &mut |_| {})
        .unwrap()
        .transactions
}

#[test]
fn recover_tail_takes_the_ledger_back_to_its_last_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(1);
    let mut ledger = Ledger::create(dir.path(), SMALL, &writer.genesis()).unwrap();
    let (batch, signature) = writer.batch(3);
    ledger.append(&batch, &signature).unwrap();
    let durable = ledger.sync().unwrap();
    // Enough for a new chunk: the undone part spans the rotation too.
    let undone: Vec<_> = (0..8).map(|_| writer.batch(20)).collect();
    for (batch, signature) in &undone {
        ledger.append(batch, signature).unwrap();
    }
    let chunks_written = ledger.chunk_count();

    ledger.recover_tail().unwrap();
    assert_eq!(ledger.last_seqno(), durable);
    assert_eq!(ledger.durable_seqno(), durable);
    assert!(ledger.chunk_count() <= chunks_written);
    // The same batches again, as the group writer does after a failure.
    for (batch, signature) in &undone {
        ledger.append(batch, signature).unwrap();
        ledger.sync().unwrap();
    }
    let last = ledger.last_seqno();
    drop(ledger);
    let (ledger, recovery) = Ledger::open(dir.path(), SMALL).unwrap();
    assert_eq!(recovery.torn, None);
    assert_eq!(ledger.last_seqno(), last);
    assert_eq!(verifies(dir.path(), &writer), last);
}

#[test]
fn a_full_disk_holds_the_group_back_until_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = tmpfs.path().join("ledger");
    let mut writer = FixtureWriter::new(2);
    let ledger = Ledger::create(&dir, SMALL, &writer.genesis()).unwrap();
    let group = GroupCommit::spawn(ledger).unwrap();
    let health = group.health();
    let (batch, signature) = writer.batch(5);
    group.append_blocking(batch, signature).unwrap();

    let filler = fill(tmpfs.path());
    // Larger than the slack of the chunk's last page: it needs new pages.
    let (batch, signature) = writer.batch(100);
    let last = batch.last_seqno();
    let (sender, receiver) = std::sync::mpsc::channel();
    group
        .append(batch, signature, move |result| {
            let _ = sender.send(result.map(|durable| durable.durable_seqno));
        })
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let condition = loop {
        if let Some(condition) = health.condition() {
            break condition;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never reported the full disk"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(condition.kind, Clearable::Full, "{condition}");
    // Not reported either way while the disk is full.
    assert!(receiver.try_recv().is_err());

    std::fs::remove_file(filler).unwrap();
    let durable = receiver.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(durable, last);
    assert_eq!(health.condition(), None);
    // And the writer goes on.
    let (batch, signature) = writer.batch(1);
    group.append_blocking(batch, signature).unwrap();
    let ledger = group.shutdown().unwrap();
    let last = ledger.last_seqno();
    drop(ledger);
    let (ledger, recovery) = Ledger::open(&dir, SMALL).unwrap();
    assert_eq!(recovery.torn, None);
    assert_eq!(ledger.last_seqno(), last);
    assert_eq!(verifies(&dir, &writer), last);
}
