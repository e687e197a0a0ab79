//! Tests of the log store's memory use: a batch stays in memory from its
//! append until it is applied, and reads stay right once it is released.

use stele_ledger::chunk;
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::LedgerConfig;

use super::log_reader::empty_root;
use super::*;

fn executed(writer: &mut FixtureWriter, txs: usize) -> ExecutedBatch {
    let (batch, signature) = writer.batch(txs);
    ExecutedBatch {
        batch,
        signature,
        prev_root: [0; 32],
    }
}

/// `batches` as normal log entries of `view`, at indices 0, 1, ...
fn entries_of(view: u64, batches: &[ExecutedBatch]) -> Vec<SteleEntry> {
    batches
        .iter()
        .enumerate()
        .map(|(index, batch)| Entry {
            log_id: log_id(view, index as u64),
            payload: EntryPayload::Normal(batch.clone()),
        })
        .collect()
}

/// A new ledger of view-7 fixtures in a temporary folder and its log store.
fn fresh_store() -> (tempfile::TempDir, FixtureWriter, LedgerLogStore) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let writer = FixtureWriter::new(7);
    let ledger = Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis())
        .expect("a new ledger");
    let store = LedgerLogStore::open(ledger).expect("the log store opens");
    (dir, writer, store)
}

/// [`fresh_store`] with the smallest chunks, so a few batches span several.
fn small_chunk_store() -> (
    tempfile::TempDir,
    FixtureWriter,
    LedgerLogStore,
    LedgerConfig,
) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let writer = FixtureWriter::new(9);
    let config = LedgerConfig {
        chunk_bytes: stele_ledger::CHUNK_BYTES_MIN,
    };
    let ledger = Ledger::create(dir.path(), config, &writer.genesis()).expect("a new ledger");
    let store = LedgerLogStore::open(ledger).expect("the log store opens");
    (dir, writer, store, config)
}

#[tokio::test]
async fn batches_stay_in_memory_until_applied_and_read_back_alike_after() {
    let (_dir, mut writer, mut store) = fresh_store();
    let batches: Vec<ExecutedBatch> = (0..3).map(|_| executed(&mut writer, 4)).collect();
    let entries = entries_of(writer.view, &batches);
    store.append_and_wait(entries).await.expect("appended");

    // Durable but not applied: all still held.
    assert_eq!(store.cached_batches(), 3);
    store.log.release_through(1);
    assert_eq!(store.cached_batches(), 1);

    // Released batches are read from the ledger; each prev_root is the root
    // the previous batch's checkpoint signs, held or read.
    let read = store.reader.read(0, 3).expect("the log reads");
    let roots: Vec<[u8; 32]> = batches
        .iter()
        .map(|batch| checkpoint_root(&batch.signature.checkpoint).expect("a checkpoint"))
        .collect();
    assert_eq!(read.len(), 3);
    for (index, entry) in read.iter().enumerate() {
        let EntryPayload::Normal(got) = &entry.payload else {
            panic!("entry {index} is not a batch");
        };
        assert_eq!(got.batch, batches[index].batch);
        assert_eq!(got.signature, batches[index].signature);
        let expected_prev = if index == 0 {
            empty_root()
        } else {
            roots[index - 1]
        };
        assert_eq!(got.prev_root, expected_prev, "prev_root of entry {index}");
    }
    let tail = store.reader.read(2, 3).expect("the tail reads");
    let EntryPayload::Normal(last) = &tail[0].payload else {
        panic!("the last entry is not a batch");
    };
    assert_eq!(last.prev_root, roots[1]);

    store.log.release_through(2);
    assert_eq!(store.cached_batches(), 0);
}

#[tokio::test]
async fn the_log_as_pieces_reads_as_the_frames_of_its_batches() {
    // Small chunks: the pieces span several files.
    let (dir, mut writer, mut store, _) = small_chunk_store();
    let batches: Vec<ExecutedBatch> = (0..12).map(|_| executed(&mut writer, 5)).collect();
    // One sync per batch: a chunk closes at a sync once past its size.
    for entry in entries_of(writer.view, &batches) {
        store.append_and_wait(vec![entry]).await.expect("appended");
    }
    assert!(
        chunk::list(dir.path()).expect("the chunks list").len() > 1,
        "the test needs batches in several chunks"
    );

    let mut expected = Vec::new();
    for batch in &batches[..10] {
        batch.encode_frames(&mut expected);
    }
    let pieces = store.reader.batch_pieces_through(9).expect("the pieces");
    assert!(
        pieces
            .iter()
            .all(|piece| matches!(piece, crate::raft::transfer_data::Piece::Chunk { .. })),
        "every batch was durable: {pieces:?}"
    );
    assert!(
        pieces.len() <= chunk::list(dir.path()).expect("the chunks list").len(),
        "consecutive batches of a chunk make one piece: {pieces:?}"
    );
    let mut read = Vec::new();
    let mut data = crate::raft::transfer_data::TransferData::pieces(pieces);
    tokio::io::AsyncReadExt::read_to_end(&mut data, &mut read)
        .await
        .expect("the pieces read");
    assert!(
        read == expected,
        "the pieces differ from the batches' frames"
    );
    assert!(
        store.reader.batch_pieces_through(12).is_err(),
        "past the log's end: refused"
    );
}

#[tokio::test]
async fn a_saved_leadership_is_read_back_as_a_candidacy_of_the_same_term() {
    let (_dir, _writer, mut store) = fresh_store();
    assert_eq!(store.resign_saved_leadership(1), None, "no vote saved");
    let led = Vote::new_committed(4, 1);
    store.save_vote(&led).await.expect("the vote is saved");
    // Another node's leadership, or a mere candidacy, is left alone.
    assert_eq!(store.resign_saved_leadership(2), None);
    assert_eq!(store.read_vote().await.expect("a vote"), Some(led));
    // This node's: the same term, uncommitted, so openraft does not resume
    // leading in it.
    assert_eq!(store.resign_saved_leadership(1), Some(4));
    let read = store.read_vote().await.expect("a vote");
    assert_eq!(read, Some(Vote::new(4, 1)));
    assert_eq!(store.resign_saved_leadership(1), None);
}

/// openraft 0.10's contract for the log store: an appended entry is
/// readable as soon as `append` returns (0.10 replicates it before it is
/// durable); `truncate_after(last)` keeps `last` and rolls back the batch
/// after it; a gap is refused.
#[tokio::test]
async fn appended_entries_read_back_at_once_and_truncate_after_keeps_the_last() {
    use std::sync::Mutex as StdMutex;

    let (_dir, mut writer, mut store) = fresh_store();
    let dropped: Arc<StdMutex<Vec<u64>>> = Arc::default();
    let seen = Arc::clone(&dropped);
    store.set_on_truncate(Box::new(move |batch| {
        crate::sync::lock(&seen).push(batch.batch.first_seqno)
    }));
    let batches: Vec<ExecutedBatch> = (0..4).map(|_| executed(&mut writer, 3)).collect();
    let entries = entries_of(writer.view, &batches);
    store
        .append(entries, IOFlushed::noop())
        .await
        .expect("appended");
    // Readable before anything says it is durable.
    let read = store
        .try_get_log_entries(0..4)
        .await
        .expect("the log reads");
    assert_eq!(read.len(), 4);
    assert_eq!(read[3].log_id, log_id(writer.view, 3));

    // A gap is refused (slot i is log index i).
    let gap = Entry {
        log_id: log_id(writer.view, 9),
        payload: EntryPayload::Blank,
    };
    assert!(store.append(vec![gap], IOFlushed::noop()).await.is_err());

    // Keep index 1: the batch at index 2 is the first one dropped.
    store
        .truncate_after(Some(log_id(writer.view, 1)))
        .await
        .expect("truncated");
    assert_eq!(
        *crate::sync::lock(&dropped),
        vec![batches[2].batch.first_seqno]
    );
    let state = store.get_log_state().await.expect("the log state");
    assert_eq!(state.last_log_id, Some(log_id(writer.view, 1)));
    assert_eq!(
        store
            .try_get_log_entries(0..)
            .await
            .expect("the log reads")
            .len(),
        2
    );

    // Everything: the first batch is dropped.
    store.truncate_after(None).await.expect("truncated");
    assert_eq!(
        crate::sync::lock(&dropped).last(),
        Some(&batches[0].batch.first_seqno)
    );
    assert_eq!(
        store
            .get_log_state()
            .await
            .expect("the log state")
            .last_log_id,
        None
    );
}

/// The key log ids (the last of each term) come from the slots, and a
/// replication read stops at its byte budget (at least one entry).
#[tokio::test]
async fn key_log_ids_and_the_replication_read_budget() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut writer = FixtureWriter::new(7);
    writer.view = 1;
    let ledger = Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis())
        .expect("a new ledger");
    let mut store = LedgerLogStore::open(ledger).expect("the log store opens");
    let mut entries = Vec::new();
    for index in 0..2 {
        entries.push(Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Normal(executed(&mut writer, 3)),
        });
    }
    entries.push(Entry {
        log_id: log_id(2, 2),
        payload: EntryPayload::Blank,
    });
    writer.view = 2;
    entries.push(Entry {
        log_id: log_id(2, 3),
        payload: EntryPayload::Normal(executed(&mut writer, 3)),
    });
    store.append_and_wait(entries).await.expect("appended");

    let keys = store
        .get_key_log_ids(log_id(1, 0)..=log_id(2, 3))
        .await
        .expect("the key log ids");
    assert_eq!(keys, vec![log_id(1, 1), log_id(2, 3)]);
    let keys = store
        .get_key_log_ids(log_id(2, 2)..=log_id(2, 3))
        .await
        .expect("the key log ids");
    assert_eq!(keys, vec![log_id(2, 3)]);

    // A budget of one byte still returns one entry; a large one all.
    assert_eq!(
        store.reader.entries_within(0, 4, 1).expect("reads").len(),
        1
    );
    assert_eq!(
        store
            .reader
            .entries_within(0, 4, usize::MAX)
            .expect("reads")
            .len(),
        4
    );
    assert_eq!(
        store
            .limited_get_log_entries(0, 4)
            .await
            .expect("reads")
            .len(),
        4
    );
}

/// The ledger is marked committed only up to the commit point the meta file
/// holds: a restart takes its commit point from that file, and a snapshot
/// install then rolls back to it, which the ledger would refuse below a
/// higher mark (and the node would not start again).
#[tokio::test]
async fn the_ledger_is_marked_committed_only_up_to_the_saved_commit_point() {
    let (dir, mut writer, mut store, config) = small_chunk_store();
    let batches: Vec<ExecutedBatch> = (0..14).map(|_| executed(&mut writer, 5)).collect();
    let entries = entries_of(writer.view, &batches);
    for entry in entries[..12].iter().cloned() {
        store.append_and_wait(vec![entry]).await.expect("appended");
    }
    let committed_names = |dir: &std::path::Path| {
        chunk::list(dir)
            .expect("the chunks list")
            .iter()
            .filter(|(name, _)| name.committed)
            .map(|(name, _)| name.last.expect("a committed chunk is closed"))
            .collect::<Vec<_>>()
    };
    // Nothing saved yet: nothing is marked, however far the replica got.
    let log = store.log_writer();
    log.mark_committed();
    store
        .append_and_wait(vec![entries[12].clone()])
        .await
        .expect("appended (a barrier for the writer's queue)");
    assert!(committed_names(dir.path()).is_empty());
    // Saved through log index 5: marked through batch 5's last seqno only.
    log.raise_committed(log_id(writer.view, 5))
        .expect("the commit point is saved");
    log.mark_committed();
    store
        .append_and_wait(vec![entries[13].clone()])
        .await
        .expect("appended (a barrier for the writer's queue)");
    drop((log, store));
    let (reopened, _) = Ledger::open(dir.path(), config).expect("the ledger reopens");
    let through = batches[5].batch.last_seqno();
    assert_eq!(
        reopened.committed_seqno(),
        *committed_names(dir.path())
            .last()
            .expect("a committed chunk")
    );
    assert!(
        reopened.committed_seqno() <= through,
        "marked past the saved commit point"
    );
    assert!(
        committed_names(dir.path())
            .iter()
            .all(|&last| last <= through),
        "{:?}",
        committed_names(dir.path())
    );
}

/// A log that starts at a resume transfer's snapshot: the ledger's resume
/// entry and the log's base survive a reopen, and batches go on after them;
/// a resume entry the log never recorded (an install cut short) is undone on
/// open.
#[tokio::test]
async fn a_rebased_log_reopens_at_its_base_and_an_unrecorded_resume_is_undone() {
    let (dir, mut writer, mut store) = fresh_store();
    let first: Vec<ExecutedBatch> = (0..3).map(|_| executed(&mut writer, 5)).collect();
    store
        .append_and_wait(entries_of(writer.view, &first))
        .await
        .expect("appended");
    // What the leader had: 4 more batches, then its snapshot at seqno 35,
    // log index 9.
    for _ in 0..4 {
        executed(&mut writer, 5);
    }
    let resume = writer.resume(15);
    let base = LogBase {
        last_log_id: log_id(writer.view, 9),
        seqno: 35,
        root: [3; 32],
    };
    let log = store.log_writer();
    log.resume_ledger(resume.clone())
        .expect("the ledger resumes");
    log.rebase(base).expect("the log starts after the snapshot");
    assert_eq!((log.base(), log.len()), (10, 10));
    assert_eq!(log.log_id_at(9), Some(base.last_log_id));
    assert_eq!(log.index_after_seqno(35), Some(10));
    let next = executed(&mut writer, 5);
    store
        .append_and_wait(vec![Entry {
            log_id: log_id(writer.view, 10),
            payload: EntryPayload::Normal(next.clone()),
        }])
        .await
        .expect("appended after the base");
    drop((log, store));

    let (ledger, _) = Ledger::open(dir.path(), LedgerConfig::default()).expect("reopens");
    let store = LedgerLogStore::open(ledger).expect("the log store reopens");
    let log = store.log_writer();
    assert_eq!((log.base(), log.len()), (10, 11));
    let read = store
        .reader()
        .read(10, 11)
        .expect("the entry after the base");
    let EntryPayload::Normal(batch) = &read[0].payload else {
        panic!("a batch at index 10");
    };
    assert_eq!(batch.batch, next.batch);
    assert_eq!(batch.prev_root, base.root, "the base's root precedes it");
    drop((log, store));

    // An install cut short: the ledger resumed, the log did not record it.
    let (dir, mut writer, store) = fresh_store();
    for _ in 0..2 {
        executed(&mut writer, 5);
    }
    store
        .log_writer()
        .resume_ledger(writer.resume(0))
        .expect("the ledger resumes");
    drop(store);
    let (ledger, _) = Ledger::open(dir.path(), LedgerConfig::default()).expect("reopens");
    assert_eq!(ledger.resumptions().len(), 1);
    let store = LedgerLogStore::open(ledger).expect("the log store reopens");
    drop(store);
    let (ledger, _) = Ledger::open(dir.path(), LedgerConfig::default()).expect("reopens");
    assert!(
        ledger.resumptions().is_empty(),
        "the unrecorded resume entry was undone"
    );
    assert_eq!(ledger.last_seqno(), 0);
}
