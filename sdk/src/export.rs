//! Helpers used by the code `#[contract]` generates. Not a stable API.

use alloc::vec::Vec;

use crate::codec::{self, Decode, Encode};
use crate::env;
use crate::error::ContractError;

/// Decodes the call's input as the method's argument tuple.
pub fn args<T: Decode>(method: &'static str) -> T {
    let input = env::input();
    match codec::from_slice(&input) {
        Some(args) => args,
        None => invalid_args(method),
    }
}

#[inline(never)]
fn invalid_args(method: &str) -> ! {
    let mut message = alloc::string::String::from("invalid arguments for ");
    message.push_str(method);
    env::abort(&message)
}

/// Returns a method's value.
pub fn ret<T: Encode>(value: &T) {
    let bytes = codec::to_vec(value);
    if !bytes.is_empty() {
        env::set_return(&bytes);
    }
}

/// Aborts with a typed error's message.
pub fn fail<E: ContractError>(error: &E) -> ! {
    env::abort(&error.to_abort_message())
}

/// Decodes a client reply.
pub fn reply<T: Decode>(bytes: &[u8]) -> Result<T, crate::CallError> {
    codec::from_slice(bytes).ok_or_else(crate::CallError::bad_reply)
}

/// Encodes a value.
pub fn encode<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    codec::to_vec(value)
}
