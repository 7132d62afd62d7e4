//! The logic lives in `ganfold_tests::fuzz::manifest`, which `cargo test` also replays.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ganfold_tests::fuzz::manifest(data));
