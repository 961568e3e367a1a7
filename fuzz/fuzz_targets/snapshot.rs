//! Fuzz target: Arbitrary snapshot files through `snapshot::load` (see `claimgate_fuzz::snapshot`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| claimgate_fuzz::snapshot(data));
