//! libFuzzer entry point of the `desired_document` target; the body lives in `fuzz/targets.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::desired_document(data));
