#![no_main]
//! Fuzz target `pegin`: the body is `alys_fuzz_replay::targets::pegin`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::pegin(data));
