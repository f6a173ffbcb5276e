//! Arbitrary host-call sequences with arbitrary pointers and lengths: never
//! a host fault, the same outcome twice.
#![no_main]

libfuzzer_sys::fuzz_target!(|calls: stele_fuzzing::HostCalls| stele_fuzzing::check_host_calls(&calls));
