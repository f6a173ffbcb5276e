//! Typed clients: how contracts and tests call contracts.
//!
//! `#[contract]` generates `<Name>Client<B: Backend>` with one method per
//! contract method, taking its arguments and returning
//! `Result<ReturnType, CallError>`. Inside a contract the backend is
//! [`Host`] (a synchronous cross-contract call); in native tests it is the
//! testkit, which runs the compiled wasm.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Address;

/// A failed call: a status from `stele_host_api::status` and the callee's
/// message (its `Enum::Variant: message` for a typed error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// Negative status code.
    pub status: i32,
    /// What the callee (or the host) said.
    pub message: String,
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.message,
            stele_host_api::status::name(self.status)
        )
    }
}

impl CallError {
    /// An error for a reply that does not decode as the method's type.
    pub fn bad_reply() -> Self {
        CallError {
            status: stele_host_api::status::CALLEE_FAILED,
            message: crate::codec::string("reply does not decode"),
        }
    }
}

/// Carries a call to a contract.
pub trait Backend {
    /// Calls `method` on `contract` with borsh-encoded arguments.
    fn call(&self, contract: &Address, method: &str, input: Vec<u8>) -> Result<Vec<u8>, CallError>;
}

/// The backend inside a contract: a synchronous cross-contract call that
/// forwards at most `gas` (0 forwards everything left).
#[derive(Clone, Copy, Debug, Default)]
pub struct Host {
    /// Gas to forward; 0 for all.
    pub gas: u64,
}

impl Backend for Host {
    fn call(&self, contract: &Address, method: &str, input: Vec<u8>) -> Result<Vec<u8>, CallError> {
        crate::env::call_raw(contract, method, &input, self.gas)
    }
}

impl<B: Backend + ?Sized> Backend for &B {
    fn call(&self, contract: &Address, method: &str, input: Vec<u8>) -> Result<Vec<u8>, CallError> {
        (**self).call(contract, method, input)
    }
}
