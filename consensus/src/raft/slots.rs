//! [`Slots`]: the Raft log positions the store holds in memory, from a base
//! index on. A log that holds every entry from index 0 has base 0; one that
//! starts at an installed snapshot (a node that joined without the history
//! before it) has base = the snapshot's last index + 1, and [`LogBase`]
//! records what the slots before would have ended with.

use serde::{Deserialize, Serialize};

use super::Slot;
use crate::raft::types::SteleLogId;

/// Where a log that starts at a snapshot begins: the snapshot's last log id,
/// the ledger seqno it ends at and the root its checkpoint signs (the
/// `prev_root` of the first batch after it). Kept in the meta file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBase {
    /// The last log id the snapshot covers: the log holds the indices after it.
    pub last_log_id: SteleLogId,
    /// The ledger seqno of its last transaction (where the ledger resumes).
    pub seqno: u64,
    /// The root of the tree at `seqno`.
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
}

/// Slot `i` of `items` is log index `base + i`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    base: u64,
    items: Vec<Slot>,
}

impl Slots {
    /// The slots `items` from log index `base` on.
    pub(crate) fn new(base: u64, items: Vec<Slot>) -> Self {
        Slots { base, items }
    }

    /// The first log index the slots may hold.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// The index after the last one held: the log's length.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.items.len() as u64
    }

    /// Slots held.
    pub(crate) fn count(&self) -> usize {
        self.items.len()
    }

    fn position(&self, index: u64) -> Option<usize> {
        usize::try_from(index.checked_sub(self.base)?).ok()
    }

    /// The slot at log index `index`, if held.
    pub(crate) fn get(&self, index: u64) -> Option<&Slot> {
        self.items.get(self.position(index)?)
    }

    /// The slot at log index `index`, if held, to change.
    pub(crate) fn get_mut(&mut self, index: u64) -> Option<&mut Slot> {
        let position = self.position(index)?;
        self.items.get_mut(position)
    }

    /// Appends the slot of log index [`Slots::end`].
    pub(crate) fn push(&mut self, slot: Slot) {
        self.items.push(slot);
    }

    /// Keeps the indices before `index` (none if it is at or before the base).
    pub(crate) fn truncate(&mut self, index: u64) {
        let keep = usize::try_from(index.saturating_sub(self.base)).unwrap_or(usize::MAX);
        self.items.truncate(keep);
    }

    /// Drops every slot: the log starts after index `base - 1` now.
    pub(crate) fn rebase(&mut self, base: u64) {
        self.items.clear();
        self.base = base;
    }

    /// The slots of indices `start..end`, clamped to what is held.
    pub(crate) fn range(&self, start: u64, end: u64) -> &[Slot] {
        let (start, end) = self.clamp(start, end);
        &self.items[start..end]
    }

    /// [`Slots::range`], to change.
    pub(crate) fn range_mut(&mut self, start: u64, end: u64) -> &mut [Slot] {
        let (start, end) = self.clamp(start, end);
        &mut self.items[start..end]
    }

    fn clamp(&self, start: u64, end: u64) -> (usize, usize) {
        let end = end.clamp(self.base, self.end());
        let start = start.clamp(self.base, end);
        (
            usize::try_from(start - self.base).expect("within the held slots"),
            usize::try_from(end - self.base).expect("within the held slots"),
        )
    }

    /// The slots of indices `start..end` held, with their log indices.
    pub(crate) fn indexed_range(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &Slot)> {
        let (first, _) = self.clamp(start, end);
        let base = self.base + first as u64;
        self.range(start, end)
            .iter()
            .enumerate()
            .map(move |(offset, slot)| (base + offset as u64, slot))
    }

    /// Every slot held, with its log index.
    pub(crate) fn indexed(&self) -> impl DoubleEndedIterator<Item = (u64, &Slot)> {
        let base = self.base;
        self.items
            .iter()
            .enumerate()
            .map(move |(position, slot)| (base + position as u64, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::log_id;

    fn control(index: u64) -> Slot {
        Slot::Control(Box::new(openraft::Entry {
            log_id: log_id(1, index),
            payload: openraft::EntryPayload::Blank,
        }))
    }

    fn index_of(slot: &Slot) -> u64 {
        match slot {
            Slot::Control(entry) => entry.log_id.index,
            Slot::Batch { .. } => u64::MAX,
        }
    }

    #[test]
    fn slots_answer_by_log_index_from_their_base() {
        let mut slots = Slots::new(10, (10..15).map(control).collect());
        assert_eq!((slots.base(), slots.end(), slots.count()), (10, 15, 5));
        assert!(slots.get(9).is_none());
        assert_eq!(slots.get(12).map(index_of), Some(12));
        assert!(slots.get(15).is_none());
        let range: Vec<u64> = slots.range(0, 13).iter().map(index_of).collect();
        assert_eq!(range, vec![10, 11, 12]);
        let indexed: Vec<(u64, u64)> = slots
            .indexed_range(11, 20)
            .map(|(index, slot)| (index, index_of(slot)))
            .collect();
        assert_eq!(indexed, vec![(11, 11), (12, 12), (13, 13), (14, 14)]);
        assert!(slots.range(16, 20).is_empty());
        let indexed: Vec<u64> = slots.indexed().map(|(index, _)| index).collect();
        assert_eq!(indexed, vec![10, 11, 12, 13, 14]);
        slots.truncate(13);
        assert_eq!(slots.end(), 13);
        slots.truncate(5);
        assert_eq!((slots.base(), slots.end()), (10, 10));
        slots.push(control(10));
        assert_eq!(slots.get(10).map(index_of), Some(10));
        slots.rebase(40);
        assert_eq!((slots.base(), slots.end(), slots.count()), (40, 40, 0));
    }
}
