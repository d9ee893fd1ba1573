#![no_main]
//! Fuzz target `governance_stream`: the body is `alys_fuzz_replay::targets::governance_stream`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::governance_stream(data));
