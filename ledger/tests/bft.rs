//! The offline verifier on a BFT ledger: a genesis entry without a service
//! key, and signature entries holding certificate notes signed by the
//! validators (here 3 of 4). It verifies against the validators only: not
//! without them, not with a service key, not with validators of another
//! service; a certificate of 2 of 4, a forged or repeated signer line, or an
//! edited command fails, naming where.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use stele_history::identity::NO_SERVICE_KEY;
use stele_history::{Checkpoint, SigningKey, ValidatorQuorum};
use stele_ledger::fixture::{FixtureWriter, FIXTURE_ORIGIN};
use stele_ledger::verify::NEEDS_VALIDATORS;
use stele_ledger::{
    verify_ledger, verify_ledger_with, Entry, KeySource, Ledger, LedgerConfig, Trust,
    VerifyFailure, VerifySummary,
};
use support::{chunk_files, read_payloads, rewrite};

const SMALL: LedgerConfig = LedgerConfig { chunk_bytes: 4096 };

/// Batches in each test ledger.
const BATCHES: usize = 12;

/// A BFT ledger of several chunks: 4 validators of power 1, each batch's
/// certificate signed by validators 1, 2 and 4; `edit` may change the writer
/// before batch `index` is made.
fn bft_ledger(edit: impl Fn(usize, &mut FixtureWriter)) -> (tempfile::TempDir, FixtureWriter) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::bft(4);
    writer.command_bytes = 40;
    writer.certifying = vec![1, 2, 4];
    let genesis = writer.genesis();
    assert_eq!(genesis.public_key, NO_SERVICE_KEY);
    let mut ledger = Ledger::create(dir.path(), SMALL, &genesis).unwrap();
    for index in 0..BATCHES {
        edit(index, &mut writer);
        let (batch, signature) = writer.batch(index % 3 + 2);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    assert!(ledger.chunk_count() >= 3, "several chunks");
    (dir, writer)
}

fn with_validators(
    dir: &Path,
    validators: &ValidatorQuorum,
) -> Result<VerifySummary, VerifyFailure> {
    verify_ledger_with(dir, None, Trust::Validators(validators), None, &mut |_| {})
}

/// Applies `edit` to every entry of the last chunk and rewrites it with
/// valid checksums.
fn edit_last_chunk(dir: &Path, edit: impl Fn(Entry) -> Entry) {
    let last = chunk_files(dir).last().unwrap().clone();
    let payloads: Vec<Vec<u8>> = read_payloads(&last)
        .iter()
        .map(|payload| edit(Entry::decode(payload).unwrap()).encode())
        .collect();
    rewrite(&last, &payloads);
}

#[test]
fn a_bft_ledger_verifies_with_its_validators() {
    let (dir, writer) = bft_ledger(|_, _| {});
    let validators = writer.quorum().unwrap();
    let summary = with_validators(dir.path(), &validators).unwrap();
    assert_eq!(summary.key_source, KeySource::Validators);
    assert_eq!(summary.public_key, NO_SERVICE_KEY);
    assert_eq!(summary.origin, FIXTURE_ORIGIN);
    assert_eq!(summary.transactions, writer.last_seqno());
    let last = summary.last_checkpoint.unwrap();
    assert_eq!(last.tree_size, writer.last_seqno());

    // The notes really are certificates: three validators' lines and the
    // decision line, verified by the set.
    let payloads = read_payloads(chunk_files(dir.path()).last().unwrap());
    let Entry::Signature(signature) = Entry::decode(payloads.last().unwrap()).unwrap() else {
        panic!("the ledger ends with a signature entry");
    };
    let note = &signature.checkpoint;
    assert!(note.contains("\nstele-bft "), "{note}");
    assert_eq!(note.matches("\n\u{2014} ").count(), 3, "{note}");
    let (opened, signers) = Checkpoint::open_certified(note, &validators).unwrap();
    assert_eq!((opened, signers), (last, vec![1, 2, 4]));

    // A kept certificate is an anchor, opened with the validators too.
    let summary = verify_ledger_with(
        dir.path(),
        None,
        Trust::Validators(&validators),
        Some(note),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.anchor.unwrap().tree_size, writer.last_seqno());
}

#[test]
fn without_its_validators_a_bft_ledger_fails_saying_what_to_pass() {
    let (dir, writer) = bft_ledger(|_, _| {});
    // Nothing given: the genesis entry records no key to fall back on.
    let failure = verify_ledger(dir.path(), None, &mut |_| {}).unwrap_err();
    assert_eq!(failure.what, NEEDS_VALIDATORS);
    assert!(failure
        .what
        .contains("pass --validators V.json (GET /node/validators)"));
    assert_eq!(
        failure.offset,
        Some(stele_ledger::frame::CHUNK_HEADER_BYTES)
    );
    // A service key: there is none.
    let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let failure = verify_ledger(dir.path(), Some(&key), &mut |_| {}).unwrap_err();
    assert!(failure.what.starts_with(NEEDS_VALIDATORS), "{failure}");
    assert!(failure.what.contains("instead of --key"), "{failure}");

    // The same keys as validators of another service: their names differ.
    let validators = writer.quorum().unwrap();
    let elsewhere = ValidatorQuorum::new(
        "elsewhere.example/log",
        validators
            .members()
            .iter()
            .map(|member| (member.id, *member.verifier.key(), member.power)),
    )
    .unwrap();
    let failure = with_validators(dir.path(), &elsewhere).unwrap_err();
    assert!(failure.what.contains("not this ledger's"), "{failure}");
    assert!(
        failure.what.contains("elsewhere.example/log/v1"),
        "{failure}"
    );
    // Other validators of this origin: no line is theirs.
    let strangers = ValidatorQuorum::new(
        FIXTURE_ORIGIN,
        (1..=4).map(|id| {
            let key = SigningKey::from_bytes(&[u8::try_from(id).unwrap() + 200; 32]);
            (id, key.verifying_key(), 1)
        }),
    )
    .unwrap();
    let failure = with_validators(dir.path(), &strangers).unwrap_err();
    assert!(failure.what.contains("0 of 4 voting power"), "{failure}");

    // And validators are refused on a ledger signed by a service key.
    let raft = tempfile::tempdir().unwrap();
    let mut service = FixtureWriter::new(3);
    let mut ledger = Ledger::create(raft.path(), SMALL, &service.genesis()).unwrap();
    let (batch, signature) = service.batch(2);
    ledger.append(&batch, &signature).unwrap();
    ledger.sync().unwrap();
    let failure = with_validators(raft.path(), &validators).unwrap_err();
    assert!(
        failure.what.contains("signed by a service key"),
        "{failure}"
    );
    assert!(verify_ledger(raft.path(), Some(&service.public_key()), &mut |_| {}).is_ok());
}

#[test]
fn a_certificate_of_two_of_four_fails_at_its_batch() {
    // Batch 7's certificate carries only validators 1 and 2.
    let (dir, writer) = bft_ledger(|index, writer| {
        writer.certifying = if index == 7 {
            vec![1, 2]
        } else {
            vec![1, 2, 4]
        };
    });
    let validators = writer.quorum().unwrap();
    let failure = with_validators(dir.path(), &validators).unwrap_err();
    assert!(
        failure.what.contains("checkpoint does not verify"),
        "{failure}"
    );
    assert!(
        failure.what.contains("hold 2 of 4 voting power"),
        "{failure}"
    );
    let seqno_after_7: u64 = (0..8).map(|index| index % 3 + 2).sum();
    assert_eq!(failure.seqno, Some(seqno_after_7), "{failure}");

    // A validator counted twice is counted once; 3 of 4 with one line
    // repeated is still 2.
    let (dir, writer) = bft_ledger(|index, writer| {
        writer.certifying = if index == 10 {
            vec![4, 1, 4]
        } else {
            vec![1, 2, 3]
        };
    });
    let failure = with_validators(dir.path(), &writer.quorum().unwrap()).unwrap_err();
    assert!(
        failure.what.contains("hold 2 of 4 voting power"),
        "{failure}"
    );
}

#[test]
fn an_edited_command_or_certificate_fails() {
    // A command rewritten in a batch of the last chunk (with valid frame
    // checksums): the recomputed root is not the certified one.
    let (dir, writer) = bft_ledger(|_, _| {});
    let validators = writer.quorum().unwrap();
    edit_last_chunk(dir.path(), |entry| match entry {
        Entry::Batch(mut batch) => {
            batch.txs[0].command[0] ^= 1;
            Entry::Batch(batch)
        }
        other => other,
    });
    let failure = with_validators(dir.path(), &validators).unwrap_err();
    assert!(failure.what.contains("root"), "{failure}");
    assert_eq!(
        failure.file,
        chunk_files(dir.path()).last().unwrap().clone()
    );

    // A certificate's decision line rewritten: every signature fails.
    let (dir, writer) = bft_ledger(|_, _| {});
    edit_last_chunk(dir.path(), |entry| match entry {
        Entry::Signature(mut signature) => {
            signature.checkpoint = signature.checkpoint.replacen(" 0 1 ", " 1 1 ", 1);
            Entry::Signature(signature)
        }
        other => other,
    });
    let failure = with_validators(dir.path(), &writer.quorum().unwrap()).unwrap_err();
    assert!(failure.what.contains("does not verify"), "{failure}");
}
