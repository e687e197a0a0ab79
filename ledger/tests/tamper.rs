//! The offline verifier against tampering: any flipped byte, reordered, deleted or
//! forged entry fails verification, and the failure names the position; so do a
//! rewritten command or view, and (against a kept checkpoint) a cut tail.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{chunk_files as chunks, read_payloads, rewrite};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stele_ledger::fixture::FixtureWriter;
use stele_ledger::frame::encode_frame;
use stele_ledger::{
    verify_ledger, verify_ledger_against, BatchEntry, Entry, KeySource, Ledger, LedgerConfig,
    VerifyFailure, LEAF_FORMAT_1, LEAF_FORMAT_2,
};

const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

/// A ledger of several chunks (closed and open) signed by key 1.
fn ledger_dir() -> (tempfile::TempDir, FixtureWriter) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(1);
    writer.command_bytes = 40;
    let mut ledger = Ledger::create(dir.path(), SMALL, &writer.genesis()).unwrap();
    for index in 0..24 {
        let (batch, signature) = writer.batch(index % 5 + 1);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    assert!(ledger.chunk_count() >= 3);
    (dir, writer)
}

fn verify(dir: &Path, writer: &FixtureWriter) -> Result<u64, VerifyFailure> {
    verify_ledger(dir, Some(&writer.public_key()), &mut |_| {}).map(|summary| summary.transactions)
}

#[test]
fn every_flipped_byte_fails_and_is_located() {
    let (dir, writer) = ledger_dir();
    let total = verify(dir.path(), &writer).unwrap();
    assert!(total > 50);
    let files = chunks(dir.path());
    let sizes: Vec<u64> = files
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .collect();
    let all: u64 = sizes.iter().sum();
    // Seeded: the trials are the same on every run.
    let mut rng = StdRng::seed_from_u64(0x7a3f_0001_dead_beef);
    for trial in 0..1000 {
        // A uniformly random byte of the whole ledger.
        let mut position = rng.random_range(0..all);
        let index = sizes
            .iter()
            .position(|&size| {
                let inside = position < size;
                if !inside {
                    position -= size;
                }
                inside
            })
            .unwrap();
        let path = &files[index];
        let mut bytes = std::fs::read(path).unwrap();
        let mask: u8 = rng.random_range(1..=255);
        bytes[position as usize] ^= mask;
        std::fs::write(path, &bytes).unwrap();

        let failure = verify(dir.path(), &writer).expect_err(&format!(
            "trial {trial}: flip at {}:{position}",
            path.display()
        ));
        assert_eq!(&failure.file, path, "trial {trial}: {failure}");
        let offset = failure.offset.unwrap();
        assert!(
            offset <= position,
            "trial {trial}: reported {offset} after the flip at {position}: {failure}"
        );

        bytes[position as usize] ^= mask;
        std::fs::write(path, &bytes).unwrap();
    }
    assert_eq!(verify(dir.path(), &writer).unwrap(), total);
}

#[test]
fn reordered_entries_fail() {
    let (dir, writer) = ledger_dir();
    let path = &chunks(dir.path())[1];
    let mut payloads = read_payloads(path);
    // Swap two batch-and-signature pairs.
    payloads.swap(0, 2);
    payloads.swap(1, 3);
    rewrite(path, &payloads);
    let failure = verify(dir.path(), &writer).unwrap_err();
    assert_eq!(&failure.file, path);
    assert!(failure.what.contains("expected"), "{failure}");

    // Swapping a batch with its own signature fails too.
    let (dir, writer) = ledger_dir();
    let path = &chunks(dir.path())[1];
    let mut payloads = read_payloads(path);
    payloads.swap(0, 1);
    rewrite(path, &payloads);
    assert!(verify(dir.path(), &writer).is_err());
}

#[test]
fn deleted_entries_fail() {
    // A signature, a whole batch with its signature, and the last signature.
    for remove in [vec![1], vec![0, 1], vec![usize::MAX]] {
        let (dir, writer) = ledger_dir();
        let files = chunks(dir.path());
        let path = if remove == [usize::MAX] {
            files.last().unwrap()
        } else {
            &files[1]
        };
        let mut payloads = read_payloads(path);
        if remove == [usize::MAX] {
            payloads.pop();
        } else {
            for index in remove.iter().rev() {
                payloads.remove(*index);
            }
        }
        rewrite(path, &payloads);
        let failure = verify(dir.path(), &writer).unwrap_err();
        assert_eq!(&failure.file, path, "{remove:?}: {failure}");
    }
    // A whole chunk.
    let (dir, writer) = ledger_dir();
    std::fs::remove_file(&chunks(dir.path())[1]).unwrap();
    assert!(verify(dir.path(), &writer).is_err());
}

#[test]
fn forged_entries_fail() {
    // Appended by someone without the key: a valid frame, a wrong signature.
    let (dir, writer) = ledger_dir();
    let last = chunks(dir.path()).last().unwrap().clone();
    let mut forger = FixtureWriter::new(66);
    for _ in 0..writer.last_seqno() {
        forger.batch(1);
    }
    let mut bytes = std::fs::read(&last).unwrap();
    let (batch, signature) = forger.batch(2);
    let offset = bytes.len() as u64;
    encode_frame(&Entry::Batch(batch).encode(), &mut bytes);
    encode_frame(&Entry::Signature(signature).encode(), &mut bytes);
    std::fs::write(&last, &bytes).unwrap();
    let failure = verify(dir.path(), &writer).unwrap_err();
    assert!(failure.offset.unwrap() > offset, "{failure}");
    assert!(failure.what.contains("checkpoint"), "{failure}");

    // A transaction's write set changed, checksums recomputed: the root differs.
    let (dir, writer) = ledger_dir();
    let path = &chunks(dir.path())[0];
    let mut payloads = read_payloads(path);
    let Entry::Batch(mut batch) = Entry::decode(&payloads[1]).unwrap() else {
        panic!("the second entry of the first chunk is a batch")
    };
    batch.txs[0].write_set.push(0);
    payloads[1] = Entry::Batch(batch).encode();
    rewrite(path, &payloads);
    let failure = verify(dir.path(), &writer).unwrap_err();
    assert!(failure.what.contains("root"), "{failure}");
}

#[test]
fn the_key_must_match_and_the_genesis_key_is_reported() {
    let (dir, writer) = ledger_dir();
    let summary = verify_ledger(dir.path(), None, &mut |_| {}).unwrap();
    assert_eq!(summary.key_source, KeySource::Genesis);
    assert_eq!(summary.public_key, writer.public_key().to_bytes());
    assert_eq!(
        summary.last_checkpoint.unwrap().tree_size,
        writer.last_seqno()
    );

    let other = FixtureWriter::new(2);
    let failure = verify(dir.path(), &other).unwrap_err();
    assert!(
        failure.what.contains("genesis entry records public key"),
        "{failure}"
    );
}

/// The signed checkpoint note of the last signature entry in `dir`.
fn last_checkpoint_note(dir: &Path) -> String {
    let payloads = read_payloads(chunks(dir).last().unwrap());
    match Entry::decode(payloads.last().unwrap()).unwrap() {
        Entry::Signature(signature) => signature.checkpoint,
        other => panic!("the ledger ends with a {} entry", other.kind()),
    }
}

fn verify_against(dir: &Path, writer: &FixtureWriter, anchor: &str) -> Result<u64, VerifyFailure> {
    verify_ledger_against(dir, Some(&writer.public_key()), Some(anchor), &mut |_| {})
        .map(|summary| summary.transactions)
}

#[test]
fn a_cut_tail_verifies_alone_but_fails_against_a_kept_checkpoint() {
    // The last chunk deleted.
    let (dir, writer) = ledger_dir();
    let anchor = last_checkpoint_note(dir.path());
    assert_eq!(
        verify_against(dir.path(), &writer, &anchor),
        Ok(writer.last_seqno())
    );
    std::fs::remove_file(chunks(dir.path()).last().unwrap()).unwrap();
    let shorter = verify(dir.path(), &writer).unwrap();
    assert!(
        shorter < writer.last_seqno(),
        "every prefix is a valid ledger"
    );
    let failure = verify_against(dir.path(), &writer, &anchor).unwrap_err();
    assert!(failure.what.contains("cut off"), "{failure}");
    assert!(
        failure
            .what
            .contains(&format!("holds {shorter} transactions")),
        "{failure}"
    );

    // The last batch and its signature cut, frames intact.
    let (dir, writer) = ledger_dir();
    let anchor = last_checkpoint_note(dir.path());
    let last = chunks(dir.path()).last().unwrap().clone();
    let mut payloads = read_payloads(&last);
    payloads.truncate(payloads.len() - 2);
    rewrite(&last, &payloads);
    assert!(verify(dir.path(), &writer).unwrap() < writer.last_seqno());
    let failure = verify_against(dir.path(), &writer, &anchor).unwrap_err();
    assert!(failure.what.contains("cut off"), "{failure}");

    // An older checkpoint is still reached; one of another tree (same size,
    // other transactions) or another key is not.
    let (dir, writer) = ledger_dir();
    let mut other = FixtureWriter::new(1);
    other.salt = 7;
    let mut older = String::new();
    for _ in 0..3 {
        older = other.batch(2).1.checkpoint;
    }
    let failure = verify_against(dir.path(), &writer, &older).unwrap_err();
    assert!(failure.what.contains("is not the one"), "{failure}");
    let mut same = FixtureWriter::new(1);
    same.command_bytes = writer.command_bytes;
    let anchor = same.batch(1).1.checkpoint;
    assert_eq!(
        verify_against(dir.path(), &writer, &anchor),
        Ok(writer.last_seqno())
    );
    let forged = FixtureWriter::new(66).batch(1).1.checkpoint;
    let failure = verify_against(dir.path(), &writer, &forged).unwrap_err();
    assert!(
        failure.what.contains("anchor checkpoint does not verify"),
        "{failure}"
    );
}

/// Applies `edit` to the first batch of the last chunk and rewrites the chunk
/// with valid checksums.
fn edit_last_chunk_batch(dir: &Path, edit: impl FnOnce(&mut BatchEntry)) {
    let last = chunks(dir).last().unwrap().clone();
    let mut payloads = read_payloads(&last);
    let index = payloads
        .iter()
        .position(|payload| matches!(Entry::decode(payload), Ok(Entry::Batch(_))))
        .unwrap();
    let Entry::Batch(mut batch) = Entry::decode(&payloads[index]).unwrap() else {
        unreachable!("found above")
    };
    edit(&mut batch);
    payloads[index] = Entry::Batch(batch).encode();
    rewrite(&last, &payloads);
}

#[test]
fn a_rewritten_command_fails() {
    let (dir, writer) = ledger_dir();
    edit_last_chunk_batch(dir.path(), |batch| batch.txs[0].command[0] ^= 1);
    let failure = verify(dir.path(), &writer).unwrap_err();
    assert!(failure.what.contains("root"), "{failure}");
}

#[test]
fn rewritten_views_fail() {
    // The last batches' views raised (still non-decreasing) in the batch and
    // in its signature entry: only the signed view line can tell.
    let (dir, writer) = ledger_dir();
    let last = chunks(dir.path()).last().unwrap().clone();
    let payloads: Vec<Vec<u8>> = read_payloads(&last)
        .into_iter()
        .map(|payload| match Entry::decode(&payload).unwrap() {
            Entry::Batch(mut batch) => {
                batch.view += 1;
                Entry::Batch(batch).encode()
            }
            Entry::Signature(mut signature) => {
                signature.view += 1;
                Entry::Signature(signature).encode()
            }
            Entry::Genesis(_) | Entry::Resume(_) => payload,
        })
        .collect();
    rewrite(&last, &payloads);
    let failure = verify(dir.path(), &writer).unwrap_err();
    assert_eq!(failure.file, last);
    assert!(failure.what.contains("signs view 1"), "{failure}");
}

/// A ledger written before leaf format 2: 3 format-1 batches, then (after an
/// upgrade) 3 format-2 batches.
fn mixed_ledger() -> (tempfile::TempDir, FixtureWriter) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(1);
    writer.leaf_format = LEAF_FORMAT_1;
    let mut ledger = Ledger::create(dir.path(), SMALL, &writer.genesis()).unwrap();
    for index in 0..6 {
        if index == 3 {
            writer.leaf_format = LEAF_FORMAT_2;
        }
        let (batch, signature) = writer.batch(3);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    (dir, writer)
}

#[test]
fn format_1_ledgers_still_verify_and_cannot_pass_for_format_2() {
    let (dir, writer) = mixed_ledger();
    assert_eq!(verify(dir.path(), &writer), Ok(18));
    let payloads = read_payloads(&chunks(dir.path())[0]);
    let Entry::Batch(first) = Entry::decode(&payloads[1]).unwrap() else {
        panic!("a batch follows the genesis entry")
    };
    assert_eq!(first.leaf_format, LEAF_FORMAT_1);
    assert!(!payloads[1]
        .windows(11)
        .any(|window| window == b"leaf_format"));

    // A format-2 batch relabelled as format 1 (to free its commands): its
    // leaves change, so its root does.
    let (dir, writer) = mixed_ledger();
    let path = chunks(dir.path())[0].clone();
    let mut payloads = read_payloads(&path);
    let index = payloads.len() - 2;
    let Entry::Batch(mut batch) = Entry::decode(&payloads[index]).unwrap() else {
        panic!("the last batch")
    };
    assert_eq!(batch.leaf_format, LEAF_FORMAT_2);
    batch.leaf_format = LEAF_FORMAT_1;
    payloads[index] = Entry::Batch(batch).encode();
    rewrite(&path, &payloads);
    let failure = verify(dir.path(), &writer).unwrap_err();
    assert!(failure.what.contains("root"), "{failure}");
}
