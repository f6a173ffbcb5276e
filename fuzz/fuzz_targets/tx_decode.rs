//! Transaction decoding: never panics or over-allocates; decode then
//! encode is the identity.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| stele_fuzzing::check_tx_decode(bytes));
