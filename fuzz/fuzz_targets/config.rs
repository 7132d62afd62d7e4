//! The logic lives in `ganfold_tests::fuzz::config`, which `cargo test` also replays.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ganfold_tests::fuzz::config(data));
