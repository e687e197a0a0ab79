//! End-to-end tests (operations): what an operator sees of one real `stele
//! start` besides its API.
//!
//! - The default log filter: Stele's own lines at info, no openraft internals
//!   (a first start used to print a whole `RaftState` dump).
//! - The data folder is for its owner only: every folder 0700, every file 0600,
//!   and a folder left looser (an older version, an operator) is tightened at
//!   start, with a log line.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use stele_tests::TestNode;

const BIN: &str = env!("CARGO_BIN_EXE_stele");

fn start(dir: &Path) -> TestNode {
    TestNode::start(Path::new(BIN), dir)
}

/// Every path under `root` (itself included), with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let is_dir = metadata.is_dir();
        found.push((path.clone(), is_dir, metadata.permissions().mode() & 0o7777));
        if is_dir {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Asserts folders 0700 and files 0600 under `root`; returns how many files.
fn assert_owner_only(root: &Path, log: &str) -> usize {
    let mut files = 0;
    for (path, is_dir, mode) in modes(root) {
        let expected = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            mode,
            expected,
            "{} is {mode:o}, expected {expected:o}\n{log}",
            path.display()
        );
        files += usize::from(!is_dir);
    }
    files
}

#[test]
fn a_first_start_logs_no_openraft_internals() {
    // The node inherits the runner's environment: the default filter is only
    // in force without RUST_LOG.
    if std::env::var_os("RUST_LOG").is_some() {
        eprintln!("skipped: RUST_LOG is set, so the default log filter is not in force");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(&dir.path().join("node"));
    node.put("m", "k", "v");
    assert!(node.terminate().success());
    let log = node.log_tail();
    assert!(
        log.contains("stele is serving"),
        "Stele's own info lines are missing:\n{log}"
    );
    for internal in ["openraft", "RaftState"] {
        assert!(
            !log.contains(internal),
            "a default start logged {internal:?}:\n{log}"
        );
    }
}

#[test]
fn the_data_folder_is_for_its_owner_only_and_a_loose_one_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    let mut node = start(&root);
    node.put("m", "k", "v");
    let files = assert_owner_only(&root, &node.log_tail());
    // identity, node key, user token, TLS key and certificate, a ledger chunk.
    assert!(files >= 6, "only {files} files in the data folder");

    // As an older version (or an operator) left it: readable by everyone.
    assert!(node.terminate().success());
    for (path, is_dir, _) in modes(&root) {
        let loose = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    node.restart();
    node.put("m", "k2", "v");
    let log = node.log_tail();
    assert_owner_only(&root, &log);
    assert!(
        log.contains("removed group and other permissions"),
        "no log line about the tightened modes:\n{log}"
    );
    assert!(node.terminate().success());
}
