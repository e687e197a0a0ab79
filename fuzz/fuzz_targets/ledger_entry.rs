#![no_main]
//! Fuzz target `ledger_entry`: see `stele_fuzz_harness::targets::ledger_entry`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stele_fuzz_harness::targets::ledger_entry(data);
});
