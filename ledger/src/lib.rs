//! `stele-ledger`: the append-only ledger files, Stele's durable truth.
//!
//! Will hold (issue P3): chunked, checksummed, CBOR-framed entries; group
//! commit with fdatasync; recovery that cuts a torn tail and reports it;
//! truncation of a speculative suffix; and the offline verifier behind
//! `stele verify`.
