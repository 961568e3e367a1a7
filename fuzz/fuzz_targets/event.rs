//! Fuzz target: POST /v1/events bodies into a seeded in-memory ledger (see `claimgate_fuzz::event`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| claimgate_fuzz::event(data));
