//! `stele verify` as an operator runs it: the real binary on a ledger folder.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use stele_history::{Digest, NoteVerifier};
use stele_ledger::fixture::{FixtureWriter, FIXTURE_ORIGIN};
use stele_ledger::{Ledger, LedgerConfig};

fn stele(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A ledger of 3 chunks or more, 60 transactions.
fn ledger(dir: &Path) -> FixtureWriter {
    let mut writer = FixtureWriter::new(3);
    let config = LedgerConfig { chunk_bytes: 4096 };
    let mut ledger = Ledger::create(dir, config, &writer.genesis()).unwrap();
    for _ in 0..12 {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    assert!(ledger.chunk_count() >= 3);
    writer
}

#[test]
fn a_good_ledger_verifies_with_the_key_in_either_form() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ledger(dir.path());
    let path = dir.path().to_str().unwrap();
    let hex = Digest(writer.public_key().to_bytes()).to_hex();
    let verifier_key = NoteVerifier::new(FIXTURE_ORIGIN, writer.public_key())
        .unwrap()
        .to_verifier_key();
    for key in [&hex, &verifier_key] {
        let output = stele(&["verify", path, "--key", key]);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
        assert!(stdout.contains("ledger OK"), "{stdout}");
        assert!(stdout.contains("60 transactions"), "{stdout}");
        assert!(stdout.contains("tree size 60"), "{stdout}");
        assert!(stdout.contains("the given key"), "{stdout}");
    }
    // Not a terminal: progress comes as plain lines on stderr.
    let output = stele(&["verify", path]);
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("genesis entry"));
    assert!(text(&output.stderr).contains("transactions"));
}

#[test]
fn a_flipped_byte_fails_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ledger(dir.path());
    let chunk = dir.path().join("ledger_1");
    let chunk = if chunk.exists() {
        chunk
    } else {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.to_str().unwrap().contains("ledger_1-"))
            .unwrap()
    };
    let mut bytes = std::fs::read(&chunk).unwrap();
    let position = bytes.len() - 10;
    bytes[position] ^= 0x08;
    std::fs::write(&chunk, &bytes).unwrap();
    let hex = Digest(writer.public_key().to_bytes()).to_hex();
    let output = stele(&["verify", dir.path().to_str().unwrap(), "--key", &hex]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(
        stderr.contains(chunk.file_name().unwrap().to_str().unwrap()),
        "{stderr}"
    );
    assert!(stderr.contains("at byte"), "{stderr}");
}

#[test]
fn wrong_or_malformed_keys_and_missing_folders_fail() {
    let dir = tempfile::tempdir().unwrap();
    ledger(dir.path());
    let path = dir.path().to_str().unwrap();
    let other = Digest(FixtureWriter::new(4).public_key().to_bytes()).to_hex();
    let cases = [
        vec!["verify", path, "--key", other.as_str()],
        vec!["verify", path, "--key", "not-a-key"],
        vec!["verify", path, "--key", "ABCDEF"],
        vec!["verify", "/nonexistent/stele/ledger"],
    ];
    for args in cases {
        let output = stele(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(!output.stderr.is_empty(), "{args:?}: no message");
    }
    let empty = tempfile::tempdir().unwrap();
    let output = stele(&["verify", empty.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no ledger chunks"));
}

#[test]
fn a_verifier_key_naming_another_origin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let writer = ledger(dir.path());
    let path = dir.path().to_str().unwrap();
    // The right public key, issued under another name: it vouches for that
    // log, not this one.
    let elsewhere = NoteVerifier::new("elsewhere.example/log", writer.public_key())
        .unwrap()
        .to_verifier_key();
    let output = stele(&["verify", path, "--key", &elsewhere]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert!(stderr.contains("elsewhere.example/log"), "{stderr}");
    assert!(stderr.contains(FIXTURE_ORIGIN), "{stderr}");
}
