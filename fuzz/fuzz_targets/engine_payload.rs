#![no_main]
//! Fuzz target `engine_payload`: the body is `alys_fuzz_replay::targets::engine_payload`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::engine_payload(data));
