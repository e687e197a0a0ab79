#![no_main]
//! Fuzz target `proof`: see `stele_fuzz_harness::targets::proof`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::proof(data);
});
