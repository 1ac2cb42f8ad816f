//! libFuzzer entry point of the `middleware_objects` target; the body lives in `fuzz/targets.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::middleware_objects(data));
