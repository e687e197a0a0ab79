//! Helpers shared by the ledger's integration tests.

use std::path::{Path, PathBuf};

/// The chunk files of a ledger folder, sorted by name.
pub fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the ledger folder is readable")
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("ledger_"))
        })
        .collect();
    files.sort();
    files
}

/// The payloads of a chunk file's frames.
#[allow(dead_code)] // not every test that shares this module rewrites chunks
pub fn read_payloads(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("the chunk is readable");
    stele_ledger::frame::Frames::new(&bytes)
        .map(|frame| frame.expect("a valid frame").payload.to_vec())
        .collect()
}

/// Rewrites a chunk from payloads, with valid frames and checksums.
#[allow(dead_code)] // not every test that shares this module rewrites chunks
pub fn rewrite(path: &Path, payloads: &[Vec<u8>]) {
    let mut bytes = stele_ledger::frame::CHUNK_MAGIC.to_vec();
    for payload in payloads {
        stele_ledger::frame::encode_frame(payload, &mut bytes);
    }
    std::fs::write(path, bytes).expect("the chunk is writable");
}
