#![no_main]
//! Fuzz target `consensus_header`: the body is `alys_fuzz_replay::targets::consensus_header`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::consensus_header(data));
