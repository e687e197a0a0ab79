#![no_main]
//! Fuzz target `resp_session`: see `stele_fuzz_harness::targets::resp_session`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::resp_session(data);
});
