//! The stable smoke of the fuzz targets: every decoder of outside bytes gets
//! its valid seeds (which it must accept), the inputs the fuzzers crashed
//! once (`fuzz/regressions/<target>/`), then seeded random and mutated inputs,
//! which it must answer without panicking and without allocating what a
//! length field claims rather than what the input holds. Deterministic: a
//! fixed seed per target, so a failure names an input that reproduces.

use std::alloc::System;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use cap::Cap;
use stele_fuzz_harness::mutate::{mutate, Rng};
use stele_fuzz_harness::{Target, TARGETS};

/// Heap the whole test process may hold at once: far above what the decoders
/// need for these small inputs (every target runs in parallel), far below what
/// a length field taken as an allocation size asks for (gigabytes). An
/// allocation beyond it aborts the test ("memory allocation of N bytes
/// failed"), as libFuzzer's `-malloc_limit_mb` stops a fuzzer.
const HEAP_BYTES_MAX: usize = 1 << 30;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, HEAP_BYTES_MAX);

/// Mutated seeds per target.
const MUTATED_INPUTS: usize = 4000;

/// Inputs of random bytes per target.
const RANDOM_INPUTS: usize = 500;

/// Longest random input, in bytes.
const RANDOM_BYTES_MAX: usize = 256;

/// Runs `target` on `input`, failing with the target and the input (hex) if
/// it panics.
fn run(target: &Target, input: &[u8]) -> bool {
    match catch_unwind(AssertUnwindSafe(|| (target.check)(input))) {
        Ok(accepted) => accepted,
        Err(_) => panic!(
            "target {} panicked on input (hex, {} bytes): {}",
            target.name,
            input.len(),
            input
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        ),
    }
}

/// The inputs that once crashed target `name`'s fuzzer, kept in
/// `fuzz/regressions/<name>/` (one file each).
fn regressions(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../regressions")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|entry| entry.expect("a regression input").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).expect("a regression input"))
        .collect()
}

fn smoke(name: &str) {
    let target = TARGETS
        .iter()
        .find(|target| target.name == name)
        .expect("a target of that name");
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty());
    for seed in &seeds {
        assert!(run(target, seed), "{name} refuses its own seed");
    }
    for input in regressions(name) {
        run(target, &input);
    }
    // The seed differs per target so that targets do not share input sequences.
    let mut rng = Rng::new(0x5eed ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 8);
    let mut refused = 0;
    for index in 0..MUTATED_INPUTS {
        let input = mutate(&mut rng, &seeds[index % seeds.len()]);
        refused += usize::from(!run(target, &input));
    }
    for _ in 0..RANDOM_INPUTS {
        let len = rng.below(RANDOM_BYTES_MAX + 1);
        let input = rng.bytes(len);
        refused += usize::from(!run(target, &input));
    }
    // The mutations reach the decoder's error paths (else they test nothing).
    assert!(refused > 0, "{name} accepted every mutated input");
}

#[test]
fn every_target_has_a_smoke_test() {
    let tested = [
        "ledger_chunk",
        "ledger_entry",
        "raft_transfer",
        "kv_snapshot",
        "write_set",
        "snapshot_file",
        "peer_message",
        "command",
        "resp_session",
        "receipt",
        "note",
        "proof",
        "api_query",
    ];
    let names: Vec<_> = TARGETS.iter().map(|target| target.name).collect();
    assert_eq!(names, tested);
}

#[test]
fn ledger_chunk() {
    smoke("ledger_chunk");
}

#[test]
fn ledger_entry() {
    smoke("ledger_entry");
}

#[test]
fn raft_transfer() {
    smoke("raft_transfer");
}

#[test]
fn kv_snapshot() {
    smoke("kv_snapshot");
}

#[test]
fn write_set() {
    smoke("write_set");
}

#[test]
fn snapshot_file() {
    smoke("snapshot_file");
}

#[test]
fn peer_message() {
    smoke("peer_message");
}

#[test]
fn command() {
    smoke("command");
}

#[test]
fn resp_session() {
    smoke("resp_session");
}

#[test]
fn receipt() {
    smoke("receipt");
}

#[test]
fn note() {
    smoke("note");
}

#[test]
fn proof() {
    smoke("proof");
}

#[test]
fn api_query() {
    smoke("api_query");
}
