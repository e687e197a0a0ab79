//! [`EngineConfig`]: how the replica core batches and executes, whatever
//! protocol orders its batches.

use crate::replica::Fault;
use crate::{ConsensusError, BATCH_ENTRIES_DEFAULT, BATCH_WAIT_US_DEFAULT};

/// How the engine batches and executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most commands in one batch.
    pub batch_entries_max: usize,
    /// Longest wait for a batch to fill while this node's log is still making
    /// the previous one durable, in microseconds (an idle log takes a batch at
    /// once; see `intake.rs`).
    pub batch_wait_us: u64,
    /// Frontend workers of the dispatcher.
    pub workers: usize,
    /// A deliberate execution fault (tests of divergence only).
    pub fault: Fault,
    /// Where KV snapshots go (`None`: no snapshots).
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// Committed transactions between snapshots (0: no snapshots).
    pub snapshot_interval_tx: u64,
    /// Committed leaves of the Merkle tree kept in memory; older ones are
    /// read back from the ledger when a receipt or proof needs them.
    pub history_leaves_kept: u64,
    /// Committed ledger chunks kept in the ledger folder; older ones move to
    /// its `archive/` (`None`: none move).
    pub committed_chunks_live: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_entries_max: BATCH_ENTRIES_DEFAULT,
            batch_wait_us: BATCH_WAIT_US_DEFAULT,
            workers: 1,
            fault: Fault::None,
            snapshot_dir: None,
            snapshot_interval_tx: 0,
            history_leaves_kept: stele_history::state::LEAVES_COMMITTED_KEPT_DEFAULT,
            committed_chunks_live: None,
        }
    }
}

impl EngineConfig {
    /// Refuses values out of range, naming the bound.
    pub fn validate(&self) -> Result<(), ConsensusError> {
        if self.batch_entries_max == 0 || self.batch_entries_max > stele_ledger::BATCH_TXS_MAX {
            return Err(ConsensusError::Config(format!(
                "batch_entries_max must be 1..={}",
                stele_ledger::BATCH_TXS_MAX
            )));
        }
        Ok(())
    }
}
