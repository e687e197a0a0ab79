#![no_main]
//! Fuzz target `note`: see `stele_fuzz_harness::targets::note`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::note(data);
});
