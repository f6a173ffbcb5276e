//! wasm-smith modules importing the host ABI, run under a gas limit: always
//! terminate, never a host fault, the same outcome twice.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = stele_fuzzing::check_exec_smith(&mut arbitrary::Unstructured::new(bytes));
});
