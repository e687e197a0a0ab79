#![no_main]
//! Fuzz target `command`: see `stele_fuzz_harness::targets::command`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::command(data);
});
