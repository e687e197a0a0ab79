#![no_main]
//! Fuzz target `api_query`: see `stele_fuzz_harness::targets::api_query`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::api_query(data);
});
