//! Taking the ledger back to its last durable state after a failed write or
//! sync, so that the failed appends can be written again once the cause clears
//! (a full disk, too many open files).
//!
//! Why cut rather than retry the fdatasync: after a failed write or fdatasync
//! the kernel may have dropped the dirty pages and marked them clean
//! ("fsyncgate"), so a second fdatasync can succeed without the bytes ever
//! reaching the disk. Cutting the open chunk back to the length the last
//! successful sync covered discards those pages; the group writer then writes
//! the batches again from memory (they were never reported durable), as fresh
//! dirty pages that the next fdatasync does cover. Everything up to the cut was
//! covered by a sync that succeeded, so nothing reported durable is touched.

use super::{cut_file, open_append, sync_dir, Ledger};
use crate::LedgerError;

impl Ledger {
    /// Records that a sync covered everything written: the point
    /// [`Ledger::recover_tail`] returns to.
    pub(super) fn mark_durable(&mut self) {
        self.durable_chunks = self.chunks.len();
        self.durable_bytes = self.chunks.last().map_or(0, |chunk| chunk.bytes);
    }

    /// Undoes every append after the last successful sync (nothing of which was
    /// reported durable) and takes writes again: chunks created since are
    /// removed, the open chunk is cut back to its synced length (and the cut
    /// synced), the index forgets the undone batches. On an error the ledger
    /// stays stopped and the call can be repeated.
    pub fn recover_tail(&mut self) -> Result<(), LedgerError> {
        self.poisoned = true;
        self.open_file = None;
        let mut removed = false;
        while self.chunks.len() > self.durable_chunks {
            let chunk = self.chunks.last().expect("more chunks than durable ones");
            match std::fs::remove_file(&chunk.path) {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LedgerError::io(&chunk.path, "remove", source));
                }
                _ => {}
            }
            self.chunks.pop();
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        let durable_bytes = self.durable_bytes;
        if let Some(chunk) = self.chunks.last_mut() {
            // A closed chunk was closed after a sync: it is whole.
            if chunk.name.last.is_none() {
                cut_file(&chunk.path, durable_bytes)?;
                chunk.bytes = durable_bytes;
                self.open_file = Some(open_append(&chunk.path)?);
            }
        }
        let durable_seqno = self.durable_seqno;
        let kept = self
            .index
            .partition_point(|location| location.last_seqno <= durable_seqno);
        self.index.truncate(kept);
        debug_assert_eq!(self.last_seqno(), self.durable_seqno);
        self.unsynced = false;
        self.dir_unsynced = false;
        self.poisoned = false;
        Ok(())
    }
}
