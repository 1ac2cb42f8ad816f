//! libFuzzer entry point of the `central_envelope` target; the body lives in `fuzz/targets.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::central_envelope(data));
