#![no_main]
//! Fuzz target `gossip`: the body is `alys_fuzz_replay::targets::gossip`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::gossip(data));
