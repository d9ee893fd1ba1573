#![no_main]
//! Fuzz target `signed_block`: the body is `alys_fuzz_replay::targets::signed_block`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::signed_block(data));
