#![no_main]
//! Fuzz target `engine_jwt`: the body is `alys_fuzz_replay::targets::engine_jwt`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::engine_jwt(data));
