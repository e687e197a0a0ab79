//! `docs/ledger-format.md`'s worked example is what the code writes.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use stele_ledger::fixture::FixtureWriter;
use stele_ledger::frame::CHUNK_MAGIC;
use stele_ledger::{Ledger, LedgerConfig};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn the_worked_example_matches_the_bytes_written() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/ledger-format.md"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = FixtureWriter::new(1);
    drop(Ledger::create(dir.path(), LedgerConfig::default(), &writer.genesis()).unwrap());
    let bytes = std::fs::read(dir.path().join("ledger_1")).unwrap();
    assert_eq!(&bytes[..8], CHUNK_MAGIC);
    let length = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
    assert_eq!(bytes.len(), 16 + length as usize, "only the genesis frame");
    // The checksum is CRC32C(length || payload), independently of the crate's code.
    let crc = crc32c::crc32c(&[&bytes[8..12], &bytes[16..]].concat());
    assert_eq!(&bytes[12..16], crc.to_be_bytes());

    // The dump as `xxd -p` prints it: 30 bytes per line.
    let dump: Vec<String> = bytes.chunks(30).map(hex).collect();
    let expected = [
        ("dump", dump.join("\n")),
        ("length", format!("length {length}")),
        ("length hex", format!("`{}`", hex(&bytes[8..12]))),
        ("crc", format!("CRC32C `{}`", hex(&bytes[12..16]))),
        (
            "key",
            format!("h'{}'", hex(&writer.public_key().to_bytes())),
        ),
    ];
    for (what, text) in expected {
        assert!(
            doc.contains(&text),
            "docs/ledger-format.md lacks the {what}: {text}"
        );
    }
}

#[test]
fn the_leaf_format_pair_is_as_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/ledger-format.md"
    ))
    .unwrap();
    let mut writer = FixtureWriter::new(1);
    let (batch, signature) = writer.batch(1);
    let payload = hex(&stele_ledger::Entry::Batch(batch).encode());
    let pair = "6b6c6561665f666f726d617402";
    assert!(payload.ends_with(pair), "{payload}");
    assert!(
        doc.contains("`6b 6c6561665f666f726d6174 02`"),
        "docs/ledger-format.md lacks the leaf_format pair"
    );
    assert!(signature.checkpoint.contains("\nstele-view 1\n"));
}

#[test]
fn the_resume_entry_example_is_what_the_code_writes() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/ledger-format.md"
    ))
    .unwrap();
    let mut writer = FixtureWriter::new(1);
    writer.batch(1);
    let resume = writer.resume(0);
    let payload = stele_ledger::Entry::Resume(resume.clone()).encode();
    let mut lines = resume.checkpoint.lines();
    let expected = [
        ("payload start", format!("`{}`", hex(&payload[..12]))),
        (
            "edge",
            format!("\"frontier_edge\": h'{}'", hex(&resume.frontier_edge)),
        ),
        ("checkpoint origin line", lines.next().unwrap().to_owned()),
        (
            "checkpoint size and root lines",
            format!("{}\\n{}", lines.next().unwrap(), lines.next().unwrap()),
        ),
        ("payload length", format!("{} bytes", payload.len())),
    ];
    for (what, text) in expected {
        assert!(
            doc.contains(&text),
            "docs/ledger-format.md lacks the resume entry's {what}: {text}"
        );
    }
}
