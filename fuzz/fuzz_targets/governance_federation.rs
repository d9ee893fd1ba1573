#![no_main]
//! Fuzz target `governance_federation`: the body is `alys_fuzz_replay::targets::governance_federation`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::governance_federation(data));
