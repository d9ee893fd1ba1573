#![no_main]
//! Fuzz target `feed_event`: the body is `alys_fuzz_replay::targets::feed_event`, which the corpus replay runs too.

libfuzzer_sys::fuzz_target!(|data: &[u8]| alys_fuzz_replay::targets::feed_event(data));
