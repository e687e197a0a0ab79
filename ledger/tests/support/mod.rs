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
