#![no_main]
//! Fuzz target `burn`: the body is `alys_fuzz_replay::targets::burn`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::burn(data));
