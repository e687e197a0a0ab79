#![no_main]
//! Fuzz target `kv_snapshot`: see `stele_fuzz_harness::targets::kv_snapshot`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::kv_snapshot(data);
});
