//! `stele-fuzz-harness`: what the decoder fuzz targets run, in one place, so
//! that the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly, run by hand)
//! and the stable smoke test (`tests/decode_smoke.rs`, run by the normal test
//! suite) exercise exactly the same code.
//!
//! The modules:
//!
//! - [`targets`] — one function per decoder that reads bytes from outside the
//!   node (ledger chunks and entries, snapshot transfers, KV snapshots and
//!   snapshot files, write sets, peer messages, commands, receipts, signed
//!   notes, proofs, query strings), and a whole RESP session against the
//!   in-memory node. Each feeds its input to the decoder's public
//!   entry point and returns whether the input was accepted. The contract they
//!   check: any input is an error or a value, never a panic, and never an
//!   allocation beyond a small multiple of the input (libFuzzer's
//!   `-malloc_limit_mb` catches those).
//! - [`seeds`] — valid encodings for every target, built through the crates'
//!   own encoders (so they follow format changes): the fuzzers' starting corpus
//!   and what the smoke test mutates.
//! - [`mutate`] — a seeded xorshift generator and the mutations of the smoke
//!   test (bit flips, truncations, insertions, deletions, length-field edits,
//!   splices).
//! - `scratch` — a per-thread scratch folder (on `/dev/shm` when present) for
//!   the decoders that read files.
//!
//! [`TARGETS`] lists them all, by the name of their cargo-fuzz target;
//! `src/bin/fuzz-seeds.rs` writes their seeds as the fuzzers' corpus.

pub mod mutate;
mod scratch;
pub mod seeds;
pub mod targets;

/// One decoder under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The cargo-fuzz target name (`fuzz/fuzz_targets/<name>.rs`).
    pub name: &'static str,
    /// Runs the decoder on one input; true if it was accepted.
    pub check: fn(&[u8]) -> bool,
    /// Valid inputs, each of which `check` accepts.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "ledger_chunk",
        check: targets::ledger_chunk,
        seeds: seeds::ledger_chunk,
    },
    Target {
        name: "ledger_entry",
        check: targets::ledger_entry,
        seeds: seeds::ledger_entry,
    },
    Target {
        name: "raft_transfer",
        check: targets::raft_transfer,
        seeds: seeds::raft_transfer,
    },
    Target {
        name: "kv_snapshot",
        check: targets::kv_snapshot,
        seeds: seeds::kv_snapshot,
    },
    Target {
        name: "write_set",
        check: targets::write_set,
        seeds: seeds::write_set,
    },
    Target {
        name: "snapshot_file",
        check: targets::snapshot_file,
        seeds: seeds::snapshot_file,
    },
    Target {
        name: "peer_message",
        check: targets::peer_message,
        seeds: seeds::peer_message,
    },
    Target {
        name: "command",
        check: targets::command,
        seeds: seeds::command,
    },
    Target {
        name: "resp_session",
        check: targets::resp_session,
        seeds: seeds::resp_session,
    },
    Target {
        name: "receipt",
        check: targets::receipt,
        seeds: seeds::receipt,
    },
    Target {
        name: "note",
        check: targets::note,
        seeds: seeds::note,
    },
    Target {
        name: "proof",
        check: targets::proof,
        seeds: seeds::proof,
    },
    Target {
        name: "api_query",
        check: targets::api_query,
        seeds: seeds::api_query,
    },
];
