//! Background work kept out of the commit path's way: [`PacedFile`], a file
//! written in the background (a snapshot) that syncs every
//! [`PACED_SYNC_BYTES`], so the ledger's fsyncs never queue behind more than
//! that much of its data; [`remove_file_paced`], which deletes a large file a
//! few MiB at a time for the same reason; and [`in_background`] /
//! [`lower_this_thread`], snapshot threads at the least CPU priority (nice
//! 19), so the build's CPU goes to the commit path's threads first (its
//! effect on the worst commit latency is not established: 3 runs of
//! `bench/snapshot-stall.sh` showed 15-83 ms falling to 15-25 ms, 11 later
//! ones 20-80 ms).
//!
//! Why: a snapshot file is tens of MB written as fast as the CPU allows. Left
//! to the kernel, its dirty pages go to the disk in bursts (at the final
//! sync, or when writeback starts), and a commit's fdatasync that arrives
//! meanwhile waits for them all: 15-34 ms beside a 60 MiB file synced only at
//! its end, 6-7 ms when synced every 8 MiB, 1-4 ms every 1 MiB, for 60-65 ms
//! of writing instead of 43-56 (`bench/disk-probe.py`, 6 runs). The
//! snapshot's own thread takes the waits instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A snapshot file is synced each time this many bytes were written to it.
pub(crate) const PACED_SYNC_BYTES: usize = 1 << 20;

/// A file that syncs its data every [`PACED_SYNC_BYTES`] written (wrap it in a
/// `BufWriter`: this counts the bytes it is handed, not the calls).
#[derive(Debug)]
pub(crate) struct PacedFile {
    file: File,
    unsynced_bytes: usize,
}

impl PacedFile {
    /// Wraps `file`, counting from zero.
    pub(crate) fn new(file: File) -> Self {
        PacedFile {
            file,
            unsynced_bytes: 0,
        }
    }

    /// Syncs everything written (data and metadata) and returns the file.
    pub(crate) fn finish(self) -> io::Result<File> {
        self.file.sync_all()?;
        Ok(self.file)
    }
}

impl Write for PacedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.unsynced_bytes += written;
        if self.unsynced_bytes >= PACED_SYNC_BYTES {
            self.unsynced_bytes = 0;
            self.file.sync_data()?;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A file is shrunk this much at a time before it is deleted.
pub(crate) const PACED_TRUNCATE_BYTES: u64 = 2 << 20;

/// Deletes `path` after shrinking it [`PACED_TRUNCATE_BYTES`] at a time.
///
/// Why: deleting a 100 MiB file at once held a concurrent fdatasync for 11-29
/// ms on this machine's disk (ext4 mounted with `discard`: the blocks freed
/// are trimmed as part of the delete); shrinking it 2 MiB at a time kept that
/// fdatasync at 1.0-2.0 ms, for 25-38 ms in all instead of 18-29
/// (`bench/disk-probe.py`, 5 runs).
///
/// The file is first renamed to end in [`DELETING_SUFFIX`], so no reader
/// that lists the folder afterwards can find it (one that opens the old name
/// gets `NotFound`, and lists again to find the newer file); one that opened
/// it before still has it open under the new name, and then the file is only
/// unlinked: its reader keeps the data, and the blocks are freed when it
/// closes. A crash midway leaves a `*.deleting` file, which
/// [`remove_leftovers`] deletes.
pub(crate) fn remove_file_paced(path: &Path) -> io::Result<()> {
    let mut deleting = path.as_os_str().to_owned();
    deleting.push(DELETING_SUFFIX);
    let deleting = PathBuf::from(deleting);
    std::fs::rename(path, &deleting)?;
    shrink_and_remove(&deleting)
}

/// Shrinks `path` [`PACED_TRUNCATE_BYTES`] at a time, unless this process has
/// it open, then unlinks it.
fn shrink_and_remove(path: &Path) -> io::Result<()> {
    if !open_in_this_process(path) {
        let file = OpenOptions::new().write(true).open(path)?;
        let mut length = file.metadata()?.len();
        while length > 0 {
            length = length.saturating_sub(PACED_TRUNCATE_BYTES);
            file.set_len(length)?;
        }
    }
    std::fs::remove_file(path)
}

/// Suffix of a file [`remove_file_paced`] is deleting.
pub(crate) const DELETING_SUFFIX: &str = ".deleting";

/// Deletes the files of `dir` whose names end in one of `suffixes` (what a
/// stopped process left: unfinished writes, files being deleted), paced.
/// Call it only where nothing else creates files with those suffixes in
/// `dir` meanwhile.
pub(crate) fn remove_leftovers(dir: &Path, suffixes: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if suffixes.iter().any(|suffix| name.ends_with(suffix)) {
            let path = entry.path();
            // Named as being deleted already: no second rename.
            let removed = if name.ends_with(DELETING_SUFFIX) {
                shrink_and_remove(&path)
            } else {
                remove_file_paced(&path)
            };
            if let Err(error) = removed {
                tracing::warn!(path = %path.display(), %error, "cannot delete a leftover file");
            }
        }
    }
}

/// Whether a descriptor of this process names `path` (Linux: `/proc/self/fd`;
/// elsewhere, or when that cannot be read, assumed so).
fn open_in_this_process(path: &Path) -> bool {
    let Ok(target) = path.canonicalize() else {
        return true;
    };
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else {
        return true;
    };
    descriptors
        .flatten()
        .any(|descriptor| std::fs::read_link(descriptor.path()).is_ok_and(|link| link == target))
}

/// Lowers the calling thread to the least CPU priority (nice 19; on Linux
/// niceness is per thread). Snapshots are background work: a build's sort,
/// encoding and copying compete for the cores with the commit path (and, in
/// the benchmarks, with the load generator). Logs and carries on if refused.
pub(crate) fn lower_this_thread() {
    use thread_priority::{set_current_thread_priority, ThreadPriority};
    if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(?error, "could not lower a snapshot thread's priority");
    }
}

/// Runs `work` on a new thread named `name` at the least CPU priority
/// ([`lower_this_thread`]) and returns its result. A thread of its own, not
/// tokio's blocking pool: a thread cannot raise its priority back without
/// privileges, and the pool's threads serve other work after.
pub(crate) async fn in_background<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_thread();
            // The receiver is gone only if the caller stopped waiting.
            let _ = sender.send(work());
        })
        .map_err(|error| format!("spawning {name}: {error}"))?;
    receiver
        .await
        .map_err(|_| format!("{name} ended without a result (it panicked)"))
}

#[cfg(test)]
mod tests {
    use std::io::{BufWriter, Read};

    use super::*;

    #[test]
    fn counts_what_it_writes_and_keeps_every_byte() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("paced");
        let file = File::create(&path).expect("created");
        let mut writer = BufWriter::new(PacedFile::new(file));
        let chunk = vec![7u8; PACED_SYNC_BYTES / 3 + 1];
        for _ in 0..4 {
            writer.write_all(&chunk).expect("written");
        }
        let paced = writer.into_inner().expect("flushed");
        // The third write crossed the bound (a sync, the count back to zero);
        // the fourth is not synced yet.
        assert_eq!(paced.unsynced_bytes, chunk.len());
        paced.finish().expect("synced");
        let mut read = Vec::new();
        File::open(&path)
            .and_then(|mut file| file.read_to_end(&mut read))
            .expect("read back");
        assert_eq!(read.len(), 4 * chunk.len());
        assert!(read.iter().all(|&byte| byte == 7));
    }

    fn file_of(dir: &Path, name: &str, bytes: usize) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![1u8; bytes]).expect("written");
        path
    }

    #[test]
    fn a_closed_file_is_shrunk_then_deleted() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = file_of(dir.path(), "closed", 5 << 20);
        assert!(!open_in_this_process(&path));
        remove_file_paced(&path).expect("deleted");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_file_still_open_keeps_its_bytes_for_its_reader() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let bytes = 5 << 20;
        let path = file_of(dir.path(), "open", bytes);
        let mut reader = File::open(&path).expect("opened");
        assert!(open_in_this_process(&path));
        remove_file_paced(&path).expect("deleted");
        assert!(!path.exists());
        // Shrinking would have cut the reader short.
        let mut read = Vec::new();
        reader.read_to_end(&mut read).expect("read");
        assert_eq!(read.len(), bytes);
    }

    /// This thread's nice value, field 19 of `/proc/thread-self/stat` (after
    /// the command name, which is in parentheses).
    fn own_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux procfs");
        let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
        after_name
            .split(' ')
            .nth(16)
            .and_then(|nice| nice.parse().ok())
            .expect("a nice field")
    }

    #[test]
    fn background_work_runs_at_the_least_priority_and_reports_a_panic() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let before = own_nice();
        let nice = runtime
            .block_on(in_background("test-background", own_nice))
            .expect("the work's result");
        assert_eq!(nice, 19);
        assert_eq!(own_nice(), before, "the caller's priority is untouched");
        let panicked = runtime.block_on(in_background("test-panic", || -> u8 {
            panic!("the work fails")
        }));
        assert!(panicked.is_err_and(|reason| reason.contains("panicked")));
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        assert!(remove_file_paced(&dir.path().join("missing")).is_err());
    }
}
