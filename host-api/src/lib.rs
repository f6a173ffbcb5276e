//! The contract ↔ host ABI of Stele.
//!
//! This crate is the single source of truth for what a contract may import
//! and how values cross the wasm boundary. Both sides depend on it: the
//! runtime (`stele-runtime`) links exactly these functions and checks every
//! deployed module against [`abi::IMPORTS`]; the SDK (`stele-sdk`) declares
//! them as `extern "C"` functions for `wasm32-unknown-unknown`.
//!
//! * [`abi`] — the import module name, every host function with its exact
//!   wasm signature, and the export names the runtime gives meaning to.
//! * [`status`] — the integer status codes host functions return.
//! * [`limits`] — every limit, as a named constant with its unit last.
//! * [`types`] — ABI value types (addresses, hashes, events), encoded with
//!   borsh.
//! * [`spec`] — the contract spec the SDK embeds in a custom section.
//!
//! The ABI uses only plain `(pointer, length)` pairs of `i32` and integer
//! status codes: the host never trusts a pointer and never keeps one.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod abi;
pub mod limits;
pub mod spec;
pub mod status;
pub mod types;

pub use types::{Address, CodeHash, Event, Topic};
