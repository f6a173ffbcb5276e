//! Write Stele smart contracts in Rust.
//!
//! A contract is a crate compiled to `wasm32-unknown-unknown`. Its state is
//! a struct of storage collections, its methods an `impl` block; one
//! attribute on each generates everything else:
//!
//! ```
//! # #![cfg_attr(target_arch = "wasm32", no_std)]
//! use stele_sdk::prelude::*;
//!
//! #[contract]
//! pub struct Counter {
//!     count: Item<u64>,
//! }
//!
//! #[contract]
//! impl Counter {
//!     #[init]
//!     pub fn init(&mut self, start: u64) {
//!         self.count.set(&start);
//!     }
//!
//!     /// Adds one and returns the new count.
//!     pub fn increment(&mut self) -> u64 {
//!         let count = self.count.get().unwrap_or(0) + 1;
//!         self.count.set(&count);
//!         count
//!     }
//!
//!     pub fn count(&self) -> u64 {
//!         self.count.get().unwrap_or(0)
//!     }
//! }
//! ```
//!
//! `#[contract]` generates, for each `pub fn`:
//! * a wasm export of the same name (`init` for the `#[init]` method,
//!   `migrate` for `#[migrate]`) that decodes the borsh-encoded arguments,
//!   calls the method and encodes its result — a `Result::Err` becomes an
//!   abort carrying the error's message;
//! * a record of the embedded spec (`stele.spec` custom section);
//! * a method of the typed client, `CounterClient`, usable from other
//!   contracts and from native tests (`stele-testkit`).
//!
//! Values cross the contract boundary in the borsh wire format through
//! the SDK's own [`codec`] (small code, no formatting machinery);
//! `#[data]` on a struct or enum makes it an argument, return or stored
//! type.
//!
//! Methods taking `&self` are read-only (`View` in the spec). A contract
//! crate starts with `#![cfg_attr(target_arch = "wasm32", no_std)]`, has
//! `crate-type = ["cdylib", "rlib"]` and a `library` feature, which other
//! contracts enable to use its client without its exports.
//!
//! On wasm the SDK provides the allocator (a bump allocator: every call runs
//! in a fresh instance, so nothing needs freeing) and the panic handler (an
//! abort with the message "contract panicked").
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod client;
pub mod codec;
pub mod env;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod export;
mod runtime_support;
pub mod storage;

pub use stele_host_api::{Address, CodeHash, abi, limits, spec, status};
pub use stele_sdk_macros::{contract, contract_error, data, event};

pub use client::{Backend, CallError, Host};
pub use error::ContractError;
pub use event::Event;

/// A contract's state: a struct of storage collections, each bound to its
/// own key prefix. Implemented by `#[contract]` on the struct.
pub trait State {
    /// The state handles. Loads nothing: collections read lazily.
    fn load() -> Self;
}

/// Everything a contract usually needs.
pub mod prelude {
    pub use crate::client::{Backend, CallError, Host};
    pub use crate::codec::{Decode, Encode};
    pub use crate::env;
    pub use crate::error::ContractError;
    pub use crate::event::Event;
    pub use crate::storage::{Item, Map, Set, Vector};
    pub use crate::{Address, contract, contract_error, data, event};
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}
