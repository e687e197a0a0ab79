//! A scratch folder per thread for the decoders that read files (ledger
//! chunks, snapshot files, transfers): on `/dev/shm` when it exists, so the
//! fsyncs of `Ledger::open` cost nothing and no disk is worn.

use std::path::{Path, PathBuf};

thread_local! {
    static SCRATCH: tempfile::TempDir = {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("stele-fuzz-").tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("stele-fuzz-").tempdir()
        };
        dir.expect("a scratch folder for the fuzz inputs")
    };
}

/// An empty folder `name` inside this thread's scratch folder (emptied if it
/// was used before).
pub fn empty_dir(name: &str) -> PathBuf {
    let dir = SCRATCH.with(|scratch| scratch.path().join(name));
    // Absent the first time.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder in the scratch folder");
    dir
}
