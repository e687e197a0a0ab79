#![no_main]
//! Fuzz target `receipt`: see `stele_fuzz_harness::targets::receipt`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::receipt(data);
});
