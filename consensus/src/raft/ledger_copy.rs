//! The logged batches up to a log index as the raw ledger frames a snapshot
//! transfer carries (a batch's frame and its signature's, per batch): named
//! as [`Piece`]s, runs of bytes of the chunk files, opened and read only when
//! the snapshot is sent. Nothing is decoded and encoded again, and nothing is
//! copied to build a snapshot.

use std::sync::Arc;

use openraft::EntryPayload;

use super::{LedgerLogReader, Slot};
use crate::raft::transfer_data::{push_piece, ChunkSource, Piece};
use crate::ConsensusError;

/// What one stretch of the log is, as found under the state lock.
enum Stretch {
    /// Consecutive batches of one chunk.
    Chunk {
        chunk_first: u64,
        offset: u64,
        end: u64,
    },
    /// A batch not yet in a chunk file, at this log index.
    Unwritten(u64),
}

impl LedgerLogReader {
    /// The frames of every batch at log indices `0..=index`, in log order:
    /// stretches of the chunk files (opened when read), or the frames of a
    /// batch not yet in one. Memory: one piece per chunk (and per batch not
    /// yet written), whatever the number of batches.
    pub(crate) fn batch_pieces_through(&self, index: u64) -> Result<Vec<Piece>, ConsensusError> {
        let (dir, stretches) = {
            let state = super::lock(&self.shared);
            let end = index.saturating_add(1);
            if state.slots.base() > 0 || end > state.slots.end() {
                return Err(ConsensusError::RaftStorage {
                    path: state.dir.clone(),
                    reason: format!(
                        "a snapshot through log index {index}, but the log holds indices {}..{}",
                        state.slots.base(),
                        state.slots.end()
                    ),
                });
            }
            (state.dir.clone(), stretches(state.slots.range(0, end)))
        };
        let source = Arc::new(ChunkSource::new(dir));
        let mut pieces = Vec::new();
        for stretch in stretches {
            let piece = match stretch {
                Stretch::Chunk {
                    chunk_first,
                    offset,
                    end,
                } => Piece::Chunk {
                    source: Arc::clone(&source),
                    chunk_first,
                    offset,
                    length: end - offset,
                },
                Stretch::Unwritten(position) => {
                    let mut frames = Vec::new();
                    for entry in self.read(position, position + 1)? {
                        if let EntryPayload::Normal(batch) = entry.payload {
                            batch.encode_frames(&mut frames);
                        }
                    }
                    Piece::Bytes(Arc::from(frames))
                }
            };
            push_piece(&mut pieces, piece);
        }
        Ok(pieces)
    }
}

/// The stretches of `slots`, consecutive batches of one chunk merged.
fn stretches(slots: &[Slot]) -> Vec<Stretch> {
    let mut stretches = Vec::new();
    for (position, slot) in slots.iter().enumerate() {
        match slot {
            Slot::Control(_) => {}
            Slot::Batch {
                location: Some(location),
                ..
            } => {
                debug_assert!(location.end >= location.offset, "a batch's frames in order");
                match stretches.last_mut() {
                    Some(Stretch::Chunk {
                        chunk_first, end, ..
                    }) if *chunk_first == location.chunk_first && *end == location.offset => {
                        *end = location.end;
                    }
                    _ => stretches.push(Stretch::Chunk {
                        chunk_first: location.chunk_first,
                        offset: location.offset,
                        end: location.end,
                    }),
                }
            }
            Slot::Batch { .. } => stretches.push(Stretch::Unwritten(position as u64)),
        }
    }
    stretches
}
