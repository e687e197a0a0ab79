#![no_main]
//! Fuzz target `snapshot_file`: see `stele_fuzz_harness::targets::snapshot_file`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::snapshot_file(data);
});
