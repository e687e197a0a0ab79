//! `stele verify` as an operator runs it: the real binary on a ledger folder;
//! and a node refusing a ledger cut below what it committed.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stele_api::ValidatorsInfo;
use stele_history::hash::sha256;
use stele_history::{
    validator_key_name, Checkpoint, CommitEvidence, Digest, LeafComponents, MerkleTree, NoteSigner,
    NoteVerifier, Receipt, SigningKey, Tiles, TransactionId, ValidatorQuorum,
};
use stele_ledger::fixture::{FixtureWriter, FIXTURE_ORIGIN};
use stele_ledger::frame::{encode_frame, Frames, CHUNK_MAGIC};
use stele_ledger::{Entry, Ledger, LedgerConfig};
use stele_tests::TestNode;

/// How long a node started on a cut ledger may take to refuse (it does so
/// before serving; this only bounds a hang).
const REFUSAL_WAIT: Duration = Duration::from_secs(60);

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

/// A ledger split across folders: committed chunks in its own `archive/`
/// are found without a flag; in a folder elsewhere, with `--archive`; and
/// without it the gap they leave is named.
#[test]
fn a_ledger_split_across_live_and_archive_folders_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("ledger");
    let writer = ledger(&live);
    {
        let (mut opened, _) = Ledger::open(&live, LedgerConfig { chunk_bytes: 4096 }).unwrap();
        opened.commit(opened.durable_seqno()).unwrap();
        let group = stele_ledger::GroupCommit::spawn(opened).unwrap();
        assert!(group.archive_pass(1).unwrap() >= 2, "chunks were archived");
    }
    let key = Digest(writer.public_key().to_bytes()).to_hex();
    let path = live.to_str().unwrap();
    let output = stele(&["verify", path, "--key", &key]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("60 transactions"));

    let elsewhere = dir.path().join("mounted-archive");
    std::fs::rename(live.join("archive"), &elsewhere).unwrap();
    let output = stele(&["verify", path, "--key", &key]);
    assert!(!output.status.success(), "verified without its archive");
    assert!(
        text(&output.stderr).contains("starts at seqno"),
        "{}",
        text(&output.stderr)
    );
    let output = stele(&[
        "verify",
        path,
        "--key",
        &key,
        "--archive",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("60 transactions"));
}

/// A ledger that resumes at a signed checkpoint verifies from there, naming
/// the seqnos it skips; `--complete` refuses it.
#[test]
fn a_ledger_that_resumes_at_a_checkpoint_verifies_and_names_what_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FixtureWriter::new(3);
    let mut ledger =
        Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).unwrap();
    for _ in 0..6 {
        writer.batch(5);
    }
    ledger.append_resume(&writer.resume(0)).unwrap();
    for _ in 0..4 {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
    }
    ledger.sync().unwrap();
    let key = Digest(writer.public_key().to_bytes()).to_hex();
    let path = dir.path().to_str().unwrap();
    let output = stele(&["verify", path, "--key", &key]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("20 transactions"), "{stdout}");
    assert!(
        stdout.contains("seqnos 1..=30 are not in this ledger"),
        "{stdout}"
    );
    assert!(stdout.contains("tree size 50"), "{stdout}");
    let output = stele(&["verify", path, "--key", &key, "--complete"]);
    assert!(
        !output.status.success(),
        "--complete passed a resumed ledger"
    );
    assert!(
        text(&output.stderr).contains("seqnos 1..=30 are not in the ledger"),
        "{}",
        text(&output.stderr)
    );
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

/// A BFT ledger of 3 chunks or more (60 transactions), each certificate
/// signed by validators 1, 2 and 3 of 4; and `GET /node/validators` of its
/// service, written to `validators.json` in `dir`.
fn bft_ledger(dir: &Path) -> (FixtureWriter, std::path::PathBuf) {
    let ledger_dir = dir.join("ledger");
    let mut writer = FixtureWriter::bft(4);
    writer.certifying = vec![1, 2, 3];
    let config = LedgerConfig { chunk_bytes: 4096 };
    let mut ledger = Ledger::create(&ledger_dir, config, &writer.genesis()).unwrap();
    for _ in 0..12 {
        let (batch, signature) = writer.batch(5);
        ledger.append(&batch, &signature).unwrap();
        ledger.sync().unwrap();
    }
    assert!(ledger.chunk_count() >= 3);
    let info = ValidatorsInfo::from_quorum(FIXTURE_ORIGIN, &writer.quorum().unwrap());
    let validators = dir.join("validators.json");
    std::fs::write(&validators, serde_json::to_string(&info).unwrap()).unwrap();
    (writer, validators)
}

#[test]
fn a_bft_ledger_verifies_with_its_validators_and_only_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, validators) = bft_ledger(dir.path());
    let ledger = dir.path().join("ledger");
    let (path, validators) = (ledger.to_str().unwrap(), validators.to_str().unwrap());
    let output = stele(&["verify", path, "--validators", validators]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("ledger OK"), "{stdout}");
    assert!(stdout.contains("60 transactions"), "{stdout}");
    assert!(
        stdout.contains("certified by validators holding more than two thirds"),
        "{stdout}"
    );
    assert!(stdout.contains("total power 4"), "{stdout}");

    // Without validators: the ledger says what to pass.
    let output = stele(&["verify", path]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert!(
        stderr.contains(
            "this ledger is certified by validators (BFT mode): pass --validators V.json \
             (GET /node/validators)"
        ),
        "{stderr}"
    );
    // --key and --validators exclude each other.
    let key = Digest(FixtureWriter::new(3).public_key().to_bytes()).to_hex();
    let output = stele(&["verify", path, "--key", &key, "--validators", validators]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("cannot be used with"),
        "{}",
        text(&output.stderr)
    );
    // A validators file that does not add up is refused before any check.
    let mut info: Value =
        serde_json::from_str(&std::fs::read_to_string(validators).unwrap()).unwrap();
    info["total_power"] = json!(3);
    let bad = dir.path().join("bad-validators.json");
    std::fs::write(&bad, info.to_string()).unwrap();
    let output = stele(&["verify", path, "--validators", bad.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("bad-validators.json"), "{stderr}");
    assert!(stderr.contains("total_power is 3"), "{stderr}");
}

/// Validator `id`'s key in [`bft_receipt`].
fn validator_key(id: u64) -> SigningKey {
    SigningKey::from_bytes(&[u8::try_from(id).unwrap() + 60; 32])
}

/// The receipt of seqno 2 of a tree of 5 whose checkpoint is a certificate
/// note of validators `signers` (of 1 ..= 4, power 1 each).
fn bft_receipt(signers: &[u64]) -> Receipt {
    let components = |seqno: u64| LeafComponents {
        write_set_digest: sha256(format!("write set {seqno}").as_bytes()),
        commit_evidence: CommitEvidence {
            transaction_id: TransactionId { view: 1, seqno },
            secret: sha256(format!("secret {seqno}").as_bytes()).0,
        },
        claims_digest: Digest::ZERO,
        command_digest: Some(sha256(format!("command {seqno}").as_bytes())),
    };
    let mut tree = MerkleTree::new();
    let leaves: Vec<Vec<u8>> = (1..=5)
        .map(|seqno| components(seqno).leaf_bytes())
        .collect();
    tree.append_batch(&leaves);
    let checkpoint = Checkpoint {
        origin: FIXTURE_ORIGIN.to_owned(),
        tree_size: tree.size(),
        root: tree.root(),
        view: Some(1),
    };
    let text = format!(
        "{}stele-bft 1 0 1 {}\n",
        checkpoint.body(),
        sha256(b"value").to_hex()
    );
    let mut note = format!("{text}\n");
    for id in signers {
        let name = validator_key_name(FIXTURE_ORIGIN, *id);
        let signed = NoteSigner::new(&name, validator_key(*id))
            .unwrap()
            .sign(&text)
            .unwrap();
        note.push_str(&signed[text.len() + 1..]);
    }
    Receipt::build(&tree, &Tiles::none(), 1, &components(2), &checkpoint, note).unwrap()
}

#[test]
fn a_bft_receipt_verifies_with_the_validators() {
    let dir = tempfile::tempdir().unwrap();
    let set = ValidatorQuorum::new(
        FIXTURE_ORIGIN,
        (1..=4).map(|id| (id, validator_key(id).verifying_key(), 1)),
    )
    .unwrap();
    let validators = dir.path().join("validators.json");
    let info = ValidatorsInfo::from_quorum(FIXTURE_ORIGIN, &set);
    std::fs::write(&validators, serde_json::to_string(&info).unwrap()).unwrap();
    let validators = validators.to_str().unwrap();
    let write = |name: &str, receipt: &Receipt| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(receipt).unwrap()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let good = write("good.json", &bft_receipt(&[1, 3, 4]));
    let output = stele(&["receipt", "verify", &good, "--validators", validators]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("receipt OK: transaction 1.2"), "{stdout}");
    assert!(
        stdout.contains("holding 3 of 4 voting power (more than two thirds): v1 (power 1), v3 (power 1), v4 (power 1)"),
        "{stdout}"
    );

    // Two of four do not certify.
    let short = write("short.json", &bft_receipt(&[2, 4]));
    let output = stele(&["receipt", "verify", &short, "--validators", validators]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert!(stderr.contains("FAILED for transaction 1.2"), "{stderr}");
    assert!(stderr.contains("hold 2 of 4 voting power"), "{stderr}");
    // One validator's key is not a service key.
    let one = Digest(validator_key(1).verifying_key().to_bytes()).to_hex();
    let output = stele(&["receipt", "verify", &good, "--key", &one]);
    assert!(!output.status.success(), "{}", text(&output.stdout));

    // Exactly one of --key and --validators.
    for args in [
        vec!["receipt", "verify", good.as_str()],
        vec![
            "receipt",
            "verify",
            good.as_str(),
            "--key",
            one.as_str(),
            "--validators",
            validators,
        ],
    ] {
        let output = stele(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains("--validators"),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}

/// Cuts the last batch and its signature entry off the open chunk of `ledger`,
/// leaving valid frames: a shorter ledger that verifies on its own.
fn cut_last_batch(ledger: &Path) {
    let chunks = stele_ledger::chunk::list(ledger).unwrap();
    let (name, path) = chunks.last().unwrap();
    assert!(
        name.last.is_none(),
        "the newest chunk is open: {}",
        path.display()
    );
    let bytes = std::fs::read(path).unwrap();
    let payloads: Vec<Vec<u8>> = Frames::new(&bytes)
        .map(|frame| frame.unwrap().payload.to_vec())
        .collect();
    assert!(payloads.len() >= 3, "genesis and at least one batch");
    let mut cut = CHUNK_MAGIC.to_vec();
    for payload in &payloads[..payloads.len() - 2] {
        encode_frame(payload, &mut cut);
    }
    std::fs::write(path, cut).unwrap();
}

/// Rewrites the open chunk of `ledger` frame by frame with `edit` applied to
/// each entry, checksums recomputed.
fn rewrite_entries(ledger: &Path, edit: impl Fn(Entry) -> Entry) {
    let chunks = stele_ledger::chunk::list(ledger).unwrap();
    let (_, path) = chunks.last().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let mut rewritten = CHUNK_MAGIC.to_vec();
    for frame in Frames::new(&bytes) {
        let entry = Entry::decode(frame.unwrap().payload).unwrap();
        encode_frame(&edit(entry).encode(), &mut rewritten);
    }
    std::fs::write(path, rewritten).unwrap();
}

/// Starts a node on `data_dir` and waits for it to exit on its own.
fn start_expecting_refusal(data_dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(["start", "--data-dir", data_dir.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--resp-listen", "off"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + REFUSAL_WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the node started on a cut ledger:\n{}",
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_ledger_cut_below_what_was_committed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(Path::new(env!("CARGO_BIN_EXE_stele")), dir.path());
    for index in 0..3 {
        node.put("hw", &format!("k{index}"), "v");
    }
    let committed = node.commit().unwrap();
    // A receipt checked with a verifier key issued for another origin fails,
    // with one for this origin passes.
    let receipt = dir.path().join("receipt.json");
    std::fs::write(&receipt, node.receipt_text(committed)).unwrap();
    let receipt = receipt.to_str().unwrap();
    let origin = Checkpoint::open_with_key(&node.checkpoint(), &node.public_key())
        .unwrap()
        .origin;
    for (name, accepted) in [(origin.as_str(), true), ("elsewhere.example/log", false)] {
        let key = NoteVerifier::new(name, node.public_key())
            .unwrap()
            .to_verifier_key();
        let output = stele(&["receipt", "verify", receipt, "--key", &key]);
        assert_eq!(
            output.status.success(),
            accepted,
            "{name}: {}",
            text(&output.stderr)
        );
    }
    // An auditor keeps the latest signed checkpoint.
    let kept = dir.path().join("kept-checkpoint");
    std::fs::write(&kept, node.checkpoint()).unwrap();
    assert!(node.terminate().success(), "{}", node.log_tail());
    let ledger = node.ledger_dir();
    let (ledger_path, kept_path) = (ledger.to_str().unwrap(), kept.to_str().unwrap());
    let output = stele(&["verify", ledger_path, "--checkpoint", kept_path]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("reaches the given checkpoint"));

    cut_last_batch(&ledger);
    // Alone, the shorter ledger verifies: every prefix of a ledger does.
    let output = stele(&["verify", ledger_path]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Against the kept checkpoint it does not.
    let output = stele(&["verify", ledger_path, "--checkpoint", kept_path]);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("cut off"),
        "{}",
        text(&output.stderr)
    );
    // And the node, which recorded what it committed, refuses to start.
    let output = start_expecting_refusal(dir.path());
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("signed-high-water"), "{stderr}");
    assert!(
        stderr.contains(&format!("tree of size {}", committed.seqno)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("holds only {}", committed.seqno - 1)),
        "{stderr}"
    );
}

#[test]
fn a_rewritten_command_fails_verification_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(Path::new(env!("CARGO_BIN_EXE_stele")), dir.path());
    node.put("cmd", "k", "the value asked for");
    assert!(node.terminate().success(), "{}", node.log_tail());
    let ledger = node.ledger_dir();
    // The recorded command says another value; the write set is untouched.
    let edited = std::cell::Cell::new(0);
    rewrite_entries(&ledger, |entry| match entry {
        Entry::Batch(mut batch) => {
            for tx in &mut batch.txs {
                let found = tx.command.windows(5).position(|window| window == b"asked");
                if let Some(at) = found {
                    tx.command[at..at + 5].copy_from_slice(b"ASKED");
                    edited.set(edited.get() + 1);
                }
            }
            Entry::Batch(batch)
        }
        other => other,
    });
    assert_eq!(edited.get(), 1, "the command is recorded once");
    let output = stele(&["verify", ledger.to_str().unwrap()]);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("root"),
        "{}",
        text(&output.stderr)
    );
    let output = start_expecting_refusal(dir.path());
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("checkpoint does not match"), "{stderr}");
}
