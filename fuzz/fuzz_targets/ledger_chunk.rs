#![no_main]
//! Fuzz target `ledger_chunk`: see `stele_fuzz_harness::targets::ledger_chunk`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::ledger_chunk(data);
});
