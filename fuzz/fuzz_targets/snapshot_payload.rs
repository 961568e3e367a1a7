//! Fuzz target: Snapshot payloads behind a correct header and checksum (see `claimgate_fuzz::snapshot_payload`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| claimgate_fuzz::snapshot_payload(data));
