//! `stele-kv`: versioned, transactional maps.
//!
//! Will hold (issue P2): named maps of string keys to byte values, read and
//! write sets, commit at a version, rollback to any version after the last
//! global commit, compaction, deterministic snapshots, and the canonical
//! write-set digest.
