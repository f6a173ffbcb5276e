//! Integration tests of the runtime, as one binary.

mod abi;
mod architecture;
mod cache;
mod determinism;
mod harness;
mod hostile;
mod metering;
