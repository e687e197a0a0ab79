#![no_main]
//! Fuzz target `peer_message`: see `stele_fuzz_harness::targets::peer_message`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::peer_message(data);
});
