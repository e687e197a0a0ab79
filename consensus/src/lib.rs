//! `stele-consensus`: ordering and replication.
//!
//! Will hold (issues P4 and P5): the batcher, Raft through openraft (one log
//! entry = one executed batch, the ledger as log storage), re-execution and
//! root comparison on followers before they acknowledge, confirm on apply,
//! rollback on truncate, and membership changes.
