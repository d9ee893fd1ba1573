#![no_main]
//! Fuzz target `burn_log`: the body is `alys_fuzz_replay::targets::burn_log`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::burn_log(data));
