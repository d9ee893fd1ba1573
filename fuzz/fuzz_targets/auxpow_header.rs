#![no_main]
//! Fuzz target `auxpow_header`: the body is `alys_fuzz_replay::targets::auxpow_header`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::auxpow_header(data));
