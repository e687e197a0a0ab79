#![no_main]
//! Fuzz target `write_set`: see `stele_fuzz_harness::targets::write_set`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::write_set(data);
});
