//! Integration tests of the runtime, as one binary.

mod abi;
mod cache;
mod determinism;
mod harness;
mod hostile;
