//! libFuzzer entry point of the `agent_config` target; the body lives in `fuzz/targets.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::agent_config(data));
