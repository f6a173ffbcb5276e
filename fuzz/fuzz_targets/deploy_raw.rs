//! Arbitrary bytes through validation and compilation: never a panic, and
//! validation agrees with the engine.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| stele_fuzzing::check_deploy_raw(bytes));
