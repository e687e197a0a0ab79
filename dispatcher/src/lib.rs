//! `stele-dispatcher`: deterministic parallel execution of an ordered batch.
//!
//! Will hold (issue P2): splitting a batch into conflict-free sub-batches over
//! the commands' declared key sets, running them on N frontend workers, and
//! merging the results back into batch order.
//!
//! Invariant: for every N, the responses, write sets, digests and final state
//! are byte-identical to serial execution of the batch in order.
