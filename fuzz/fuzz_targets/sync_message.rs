#![no_main]
//! Fuzz target `sync_message`: the body is `alys_fuzz_replay::targets::sync_message`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::sync_message(data));
