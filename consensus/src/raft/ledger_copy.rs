//! Copying the logged batches up to a log index as raw ledger frames (a
//! snapshot transfer carries them): the frames are read from the chunk files
//! in long runs and written as they are, instead of being decoded and encoded
//! again batch by batch (measured: most of a snapshot build's time, during
//! which the node's commits stalled).

use std::os::unix::fs::FileExt as _;
use std::path::Path;

use openraft::EntryPayload;

use super::log_reader::{open_chunk, Chunks};
use super::{LedgerLogReader, Slot};
use crate::raft::types::ExecutedBatch;
use crate::ConsensusError;

/// Bytes read from a chunk at a time.
const COPY_PIECE_BYTES: u64 = 8 << 20;

/// Where the batches go: raw frames (a batch's frame and its signature's, for
/// one or more batches in log order), or one batch not yet on disk.
pub(crate) trait BatchSink {
    /// Takes frames copied from the ledger.
    fn frames(&mut self, bytes: &[u8]) -> Result<(), ConsensusError>;
    /// Takes a batch held in memory only.
    fn batch(&mut self, batch: &ExecutedBatch) -> Result<(), ConsensusError>;
}

/// A stretch of one chunk holding consecutive batches.
struct Run {
    chunk_first: u64,
    offset: u64,
    end: u64,
}

impl LedgerLogReader {
    /// Sends every batch at log indices `0..=index` to `sink`, in log order.
    pub(crate) fn copy_batches_through(
        &self,
        index: u64,
        sink: &mut impl BatchSink,
    ) -> Result<(), ConsensusError> {
        let (dir, slots) = {
            let state = super::lock(&self.shared);
            let end = usize::try_from(index)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
                .min(state.slots.len());
            (state.dir.clone(), state.slots[..end].to_vec())
        };
        let mut chunks = Chunks::new();
        let mut run: Option<Run> = None;
        for (position, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Control(_) => {}
                Slot::Batch {
                    location: Some(location),
                    ..
                } => match &mut run {
                    Some(current)
                        if current.chunk_first == location.chunk_first
                            && current.end == location.offset =>
                    {
                        current.end = location.end;
                    }
                    _ => {
                        if let Some(done) = run.take() {
                            copy_run(&dir, &done, &mut chunks, sink)?;
                        }
                        run = Some(Run {
                            chunk_first: location.chunk_first,
                            offset: location.offset,
                            end: location.end,
                        });
                    }
                },
                Slot::Batch { .. } => {
                    if let Some(done) = run.take() {
                        copy_run(&dir, &done, &mut chunks, sink)?;
                    }
                    let entry = self.read(position as u64, position as u64 + 1)?;
                    for entry in entry {
                        if let EntryPayload::Normal(batch) = entry.payload {
                            sink.batch(&batch)?;
                        }
                    }
                }
            }
        }
        if let Some(done) = run {
            copy_run(&dir, &done, &mut chunks, sink)?;
        }
        Ok(())
    }
}

/// Copies one run in pieces; a chunk renamed meanwhile is looked up again.
fn copy_run(
    dir: &Path,
    run: &Run,
    chunks: &mut Chunks,
    sink: &mut impl BatchSink,
) -> Result<(), ConsensusError> {
    let (file, _) = open_chunk(dir, run.chunk_first, chunks)?;
    let fail = |error: std::io::Error| ConsensusError::RaftStorage {
        path: dir.to_owned(),
        reason: format!("copying the chunk from seqno {}: {error}", run.chunk_first),
    };
    let mut offset = run.offset;
    let mut piece = Vec::new();
    while offset < run.end {
        let length = (run.end - offset).min(COPY_PIECE_BYTES);
        piece.resize(
            usize::try_from(length).map_err(|error| fail(std::io::Error::other(error)))?,
            0,
        );
        file.read_exact_at(&mut piece, offset).map_err(fail)?;
        sink.frames(&piece)?;
        offset += length;
    }
    Ok(())
}
