//! Helpers used by the code `#[contract]` generates. Not a stable API.

use alloc::vec::Vec;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::env;
use crate::error::ContractError;

/// Decodes the call's input as the method's argument tuple.
pub fn args<T: BorshDeserialize>(method: &'static str) -> T {
    let input = env::input();
    T::try_from_slice(&input).unwrap_or_else(|_| {
        let mut message = alloc::string::String::from("invalid arguments for ");
        message.push_str(method);
        env::abort(&message)
    })
}

/// Returns a method's value.
pub fn ret<T: BorshSerialize>(value: &T) {
    let bytes: Vec<u8> =
        borsh::to_vec(value).unwrap_or_else(|_| env::abort("return value does not encode"));
    if !bytes.is_empty() {
        env::set_return(&bytes);
    }
}

/// Aborts with a typed error's message.
pub fn fail<E: ContractError>(error: &E) -> ! {
    env::abort(&error.to_abort_message())
}

/// Decodes a client reply.
pub fn reply<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, crate::CallError> {
    T::try_from_slice(bytes).map_err(|_| crate::CallError::bad_reply())
}

/// Encodes a value with borsh. (Aborts rather than panicking with the
/// error's `Debug` text, which would pull formatting code into every
/// contract.)
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).unwrap_or_else(|_| env::abort("value does not encode"))
}
