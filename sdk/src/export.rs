//! Helpers used by the code `#[contract]` generates. Not a stable API.

use crate::codec::{self, Decode, Encode};
use crate::env;
use crate::error::ContractError;

/// Decodes the next argument of `method`; aborts if it does not decode.
/// (A generated export reads [`input`], decodes it argument by argument
/// and calls [`end_args`]: one decoder per argument type, shared by every
/// method, instead of one per method signature.)
pub fn arg<T: Decode>(input: &mut codec::Input<'_>, method: &'static str) -> T {
    match T::decode(input) {
        Some(value) => value,
        None => invalid_args(method),
    }
}

/// Aborts unless every byte of the input was an argument of `method`.
pub fn end_args(input: &codec::Input<'_>, method: &'static str) {
    if input.remaining() != 0 {
        invalid_args(method)
    }
}

#[inline(never)]
fn invalid_args(method: &str) -> ! {
    let mut message = codec::copy(b"invalid arguments for ");
    codec::put(&mut message, method.as_bytes());
    // SAFETY: both parts are text.
    env::abort(unsafe { core::str::from_utf8_unchecked(&message) })
}

/// Aborts unless the input of `method`, which takes no arguments, is
/// empty.
pub fn no_args(method: &'static str) {
    if env::input_len() != 0 {
        invalid_args(method)
    }
}

// Buffers here are leaked rather than dropped, as in `storage`: a
// contract's allocator never frees, and each drop is code in every export.

/// The call's input (what [`env::input`] returns), leaked.
pub fn input() -> &'static [u8] {
    env::input().leak()
}

/// Returns a method's value.
pub fn ret<T: Encode>(value: &T) {
    set_return(codec::to_vec(value).leak());
}

fn set_return(bytes: &[u8]) {
    if !bytes.is_empty() {
        env::set_return(bytes);
    }
}

/// Aborts with a typed error's message.
pub fn fail<E: ContractError>(error: &E) -> ! {
    env::abort(error.abort_message())
}

/// Decodes a client reply.
pub fn reply<T: Decode>(bytes: &[u8]) -> Result<T, crate::CallError> {
    codec::from_slice(bytes).ok_or_else(crate::CallError::bad_reply)
}
