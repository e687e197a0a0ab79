#![no_main]
//! Fuzz target `raft_transfer`: see `stele_fuzz_harness::targets::raft_transfer`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::raft_transfer(data);
});
