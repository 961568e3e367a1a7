//! Fuzz target: POST /v1/check and /v1/check/batch bodies (see `claimgate_fuzz::check_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| claimgate_fuzz::check_request(data));
