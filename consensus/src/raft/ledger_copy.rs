//! The logged batches up to a log index as the raw ledger frames a snapshot
//! transfer carries (a batch's frame and its signature's, per batch): named
//! as [`Piece`]s, runs of bytes of the chunk files, read only when the
//! snapshot is sent. Nothing is decoded and encoded again, and nothing is
//! copied to build a snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use openraft::EntryPayload;

use super::log_reader::{open_chunk, Chunks};
use super::{LedgerLogReader, Slot};
use crate::raft::transfer_data::{push_piece, Piece};
use crate::ConsensusError;

impl LedgerLogReader {
    /// The frames of every batch at log indices `0..=index`, in log order:
    /// stretches of the chunk files (open), or the frames of a batch not yet
    /// in one.
    pub(crate) fn batch_pieces_through(&self, index: u64) -> Result<Vec<Piece>, ConsensusError> {
        let (dir, slots) = {
            let state = super::lock(&self.shared);
            let end = usize::try_from(index)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let Some(slots) = state.slots.get(..end) else {
                return Err(ConsensusError::RaftStorage {
                    path: state.dir.clone(),
                    reason: format!(
                        "a snapshot through log index {index}, but the log holds {} entries",
                        state.slots.len()
                    ),
                });
            };
            (state.dir.clone(), slots.to_vec())
        };
        let mut chunks = Chunks::new();
        let mut files: HashMap<u64, Arc<std::fs::File>> = HashMap::new();
        let mut pieces = Vec::new();
        for (position, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Control(_) => {}
                Slot::Batch {
                    location: Some(location),
                    ..
                } => {
                    let file = match files.get(&location.chunk_first) {
                        Some(file) => Arc::clone(file),
                        None => {
                            let (file, _) = open_chunk(&dir, location.chunk_first, &mut chunks)?;
                            let file = Arc::new(file);
                            files.insert(location.chunk_first, Arc::clone(&file));
                            file
                        }
                    };
                    debug_assert!(location.end >= location.offset, "a batch's frames in order");
                    push_piece(
                        &mut pieces,
                        Piece::File {
                            file,
                            offset: location.offset,
                            length: location.end - location.offset,
                        },
                    );
                }
                Slot::Batch { .. } => {
                    let mut frames = Vec::new();
                    for entry in self.read(position as u64, position as u64 + 1)? {
                        if let EntryPayload::Normal(batch) = entry.payload {
                            batch.encode_frames(&mut frames);
                        }
                    }
                    push_piece(&mut pieces, Piece::Bytes(Arc::from(frames)));
                }
            }
        }
        Ok(pieces)
    }
}
