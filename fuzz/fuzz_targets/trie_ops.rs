//! Batches of writes to the authenticated tree against a `BTreeMap` model:
//! the root does not depend on order or batching, true proofs verify,
//! forged ones fail.
#![no_main]

libfuzzer_sys::fuzz_target!(|ops: stele_fuzzing::trie::Ops| stele_fuzzing::trie::check(&ops));
