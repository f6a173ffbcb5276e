//! The contract's environment: safe wrappers over the host ABI.
//!
//! Each function here is one host call. Outside wasm (native tests of a
//! contract crate) the host does not exist: the functions panic, and tests
//! run the compiled contract through `stele-testkit` instead.

use alloc::string::String;
use alloc::vec::Vec;

use crate::client::CallError;
use crate::event::Event;
use crate::{Address, limits};
use stele_host_api::status;

macro_rules! host_functions {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?; )*) => {
        #[cfg(target_arch = "wasm32")]
        mod sys {
            #[link(wasm_import_module = "stele")]
            unsafe extern "C" {
                $( pub fn $name($($arg: $ty),*) $(-> $ret)?; )*
            }
        }

        #[cfg(not(target_arch = "wasm32"))]
        #[allow(unused_variables, dead_code, clippy::missing_safety_doc)]
        mod sys {
            $(
                pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                    panic!(concat!(
                        "stele::", stringify!($name),
                        " is a host function: run the contract's wasm (stele-testkit) to call it"
                    ))
                }
            )*
        }
    };
}

host_functions! {
    fn input_len() -> i32;
    fn input_read(dst: *mut u8);
    fn return_set(ptr: *const u8, len: i32);
    fn abort(ptr: *const u8, len: i32);
    fn log(ptr: *const u8, len: i32);
    fn storage_read(key: *const u8, key_len: i32, dst: *mut u8, cap: i32) -> i32;
    fn storage_write(key: *const u8, key_len: i32, value: *const u8, value_len: i32);
    fn storage_remove(key: *const u8, key_len: i32) -> i32;
    fn storage_has(key: *const u8, key_len: i32) -> i32;
    fn storage_next(prefix: *const u8, prefix_len: i32, start: *const u8, start_len: i32, dst: *mut u8, cap: i32) -> i32;
    fn caller(dst: *mut u8);
    fn self_address(dst: *mut u8);
    fn origin(dst: *mut u8);
    fn tx_hash(dst: *mut u8);
    fn block_height() -> i64;
    fn block_time() -> i64;
    fn gas_left() -> i64;
    fn event_emit(topics: *const u8, n_topics: i32, data: *const u8, data_len: i32);
    fn contract_call(address: *const u8, method: *const u8, method_len: i32, input: *const u8, input_len: i32, gas: i64) -> i32;
    fn call_result_read(dst: *mut u8, cap: i32) -> i32;
    fn balance(address: *const u8, dst: *mut u8);
    fn transfer(address: *const u8, amount: *const u8) -> i32;
    fn blake3(data: *const u8, len: i32, dst: *mut u8);
    fn ed25519_verify(public_key: *const u8, signature: *const u8, message: *const u8, len: i32) -> i32;
    fn code_upgrade(code: *const u8, code_len: i32, input: *const u8, input_len: i32);
}

/// Length of the call's raw input.
pub fn input_len() -> usize {
    // SAFETY: no pointers.
    unsafe { sys::input_len() as usize }
}

/// A vector of the `len` bytes that `fill` writes to the pointer it gets.
/// (Not `vec![0; len]` first: zeroing brings a second allocation path
/// into every contract.)
///
/// # Safety
/// `fill` must write exactly `len` bytes.
unsafe fn filled(len: usize, fill: impl FnOnce(*mut u8)) -> Vec<u8> {
    let mut buffer = Vec::new();
    crate::codec::reserve(&mut buffer, len);
    fill(buffer.as_mut_ptr());
    // SAFETY: the caller's `fill` wrote `len` bytes into the capacity.
    unsafe { buffer.set_len(len) };
    buffer
}

/// The `N` bytes that `fill` writes to the pointer it gets, without
/// zeroing them first.
///
/// # Safety
/// `fill` must write exactly `N` bytes.
unsafe fn written<const N: usize>(fill: impl FnOnce(*mut u8)) -> [u8; N] {
    let mut bytes = core::mem::MaybeUninit::<[u8; N]>::uninit();
    fill(bytes.as_mut_ptr().cast());
    // SAFETY: the caller's `fill` wrote all `N` bytes.
    unsafe { bytes.assume_init() }
}

/// The call's raw input.
pub fn input() -> Vec<u8> {
    // SAFETY: the host writes exactly `input_len` bytes.
    unsafe { filled(input_len(), |dst| sys::input_read(dst)) }
}

/// Sets the call's raw return data.
pub fn set_return(data: &[u8]) {
    // SAFETY: the host only reads `data`.
    unsafe { sys::return_set(data.as_ptr(), data.len() as i32) }
}

/// Stops the call with `message`; its writes are rolled back and the
/// message reaches the caller.
pub fn abort(message: &str) -> ! {
    let message = &message.as_bytes()[..message.len().min(limits::ABORT_MESSAGE_BYTES_MAX)];
    // SAFETY: the host only reads `message`, and never returns.
    unsafe { sys::abort(message.as_ptr(), message.len() as i32) };
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Writes a debug line (never consensus-relevant; shown by the testkit).
pub fn log(message: &str) {
    // SAFETY: the host only reads `message`.
    unsafe { sys::log(message.as_ptr(), message.len() as i32) }
}

/// Reads a raw storage value.
pub fn storage_read(key: &[u8]) -> Option<Vec<u8>> {
    // Not zeroed: the host writes what is read back.
    let mut buffer = core::mem::MaybeUninit::<[u8; 256]>::uninit();
    // SAFETY: the host writes at most `cap` bytes to `dst`.
    let len = unsafe {
        sys::storage_read(
            key.as_ptr(),
            key.len() as i32,
            buffer.as_mut_ptr().cast(),
            256,
        )
    };
    if len < 0 {
        return None;
    }
    let len = len as usize;
    if len <= 256 {
        // SAFETY: a value that fits was written whole: `len` bytes.
        let value = unsafe { core::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), len) };
        return Some(crate::codec::copy(value));
    }
    // SAFETY: the host writes the whole value into a buffer of its size.
    let value = unsafe {
        filled(len, |dst| {
            sys::storage_read(key.as_ptr(), key.len() as i32, dst, len as i32);
        })
    };
    Some(value)
}

/// Writes a raw storage value.
pub fn storage_write(key: &[u8], value: &[u8]) {
    // SAFETY: the host only reads both buffers.
    unsafe {
        sys::storage_write(
            key.as_ptr(),
            key.len() as i32,
            value.as_ptr(),
            value.len() as i32,
        )
    }
}

/// Removes a raw storage entry; returns whether it existed.
pub fn storage_remove(key: &[u8]) -> bool {
    // SAFETY: the host only reads `key`.
    unsafe { sys::storage_remove(key.as_ptr(), key.len() as i32) == status::TRUE }
}

/// Whether a raw storage entry exists.
pub fn storage_has(key: &[u8]) -> bool {
    // SAFETY: the host only reads `key`.
    unsafe { sys::storage_has(key.as_ptr(), key.len() as i32) == status::TRUE }
}

/// The first entry whose key starts with `prefix` and is `>= start`.
pub fn storage_next(prefix: &[u8], start: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    // SAFETY: the host writes at most `cap` bytes to `dst`.
    let next = |dst: *mut u8, cap: usize| unsafe {
        sys::storage_next(
            prefix.as_ptr(),
            prefix.len() as i32,
            start.as_ptr(),
            start.len() as i32,
            dst,
            cap as i32,
        )
    };
    let mut stack = [0u8; 512];
    let len = usize::try_from(next(stack.as_mut_ptr(), stack.len())).ok()?;
    let heap;
    let entry = match stack.get(..len) {
        Some(entry) => entry,
        None => {
            // SAFETY: with room for the whole entry the host writes it all
            // (the same entry: nothing changes storage in between).
            heap = unsafe {
                filled(len, |dst| {
                    next(dst, len);
                })
            };
            &heap[..]
        }
    };
    // `key_len (u32 LE) ‖ key ‖ value`, as the host writes it.
    let (key_len, rest) = entry.split_first_chunk::<4>()?;
    let (key, value) = rest.split_at_checked(u32::from_le_bytes(*key_len) as usize)?;
    Some((crate::codec::copy(key), crate::codec::copy(value)))
}

/// The address that called this contract: an account, or another contract.
pub fn caller() -> Address {
    // SAFETY: the host writes exactly 32 bytes.
    Address(unsafe { written(|dst| sys::caller(dst)) })
}

/// This contract's own address.
pub fn self_address() -> Address {
    // SAFETY: the host writes exactly 32 bytes.
    Address(unsafe { written(|dst| sys::self_address(dst)) })
}

/// The account that signed the transaction.
pub fn origin() -> Address {
    // SAFETY: the host writes exactly 32 bytes.
    Address(unsafe { written(|dst| sys::origin(dst)) })
}

/// Hash of the transaction being executed.
pub fn tx_hash() -> [u8; 32] {
    // SAFETY: the host writes exactly 32 bytes.
    unsafe { written(|dst| sys::tx_hash(dst)) }
}

/// Height of the block being executed.
pub fn block_height() -> u64 {
    // SAFETY: no pointers.
    unsafe { sys::block_height() as u64 }
}

/// Block time, milliseconds since the Unix epoch.
pub fn block_time_ms() -> u64 {
    // SAFETY: no pointers.
    unsafe { sys::block_time() as u64 }
}

/// Gas left for this call.
pub fn gas_left() -> u64 {
    // SAFETY: no pointers.
    unsafe { sys::gas_left() as u64 }
}

/// Emits a raw event.
pub fn emit_raw(topics: &[[u8; 32]], data: &[u8]) {
    // SAFETY: the host only reads both buffers.
    unsafe {
        sys::event_emit(
            topics.as_ptr().cast(),
            topics.len() as i32,
            data.as_ptr(),
            data.len() as i32,
        )
    }
}

/// Emits a typed event.
pub fn emit<E: Event>(event: &E) {
    event.publish();
}

/// Calls `method` of `contract` with raw `input`, forwarding at most `gas`
/// (0: all that is left). A failed callee's writes are already rolled back.
pub fn call_raw(
    contract: &Address,
    method: &str,
    input: &[u8],
    gas: u64,
) -> Result<Vec<u8>, CallError> {
    // SAFETY: the host only reads the buffers.
    let status = unsafe {
        sys::contract_call(
            contract.0.as_ptr(),
            method.as_ptr(),
            method.len() as i32,
            input.as_ptr(),
            input.len() as i32,
            gas as i64,
        )
    };
    // SAFETY: a zero-capacity read only asks for the length.
    let len = unsafe { sys::call_result_read(core::ptr::null_mut(), 0) } as usize;
    // SAFETY: the host writes the whole result into a buffer of its size.
    let result = unsafe {
        filled(len, |dst| {
            sys::call_result_read(dst, len as i32);
        })
    };
    if status >= 0 {
        Ok(result)
    } else {
        let message = if crate::codec::is_utf8(&result) {
            // SAFETY: just checked.
            unsafe { String::from_utf8_unchecked(result) }
        } else {
            crate::codec::string("(message is not UTF-8)")
        };
        Err(CallError { status, message })
    }
}

/// Native balance of an account.
pub fn balance(account: &Address) -> u128 {
    // SAFETY: the host reads 32 bytes and writes 16.
    u128::from_le_bytes(unsafe { written(|dst| sys::balance(account.0.as_ptr(), dst)) })
}

/// Sends native coin from this contract; `false` if its balance is short.
pub fn transfer(to: &Address, amount: u128) -> bool {
    let amount = amount.to_le_bytes();
    // SAFETY: the host reads 32 and 16 bytes.
    unsafe { sys::transfer(to.0.as_ptr(), amount.as_ptr()) == status::OK }
}

/// BLAKE3 hash of `data` (computed natively outside wasm, so events can
/// be built in native tests).
pub fn blake3(data: &[u8]) -> [u8; 32] {
    #[cfg(not(target_arch = "wasm32"))]
    return *::blake3::hash(data).as_bytes();
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: the host reads `data` and writes 32 bytes.
        unsafe { written(|dst| sys::blake3(data.as_ptr(), data.len() as i32, dst)) }
    }
}

/// Strict ed25519 verification (canonical `S`, no small-order keys).
pub fn ed25519_verify(public_key: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> bool {
    // SAFETY: the host reads 32, 64 and `message.len()` bytes.
    unsafe {
        sys::ed25519_verify(
            public_key.as_ptr(),
            signature.as_ptr(),
            message.as_ptr(),
            message.len() as i32,
        ) == status::TRUE
    }
}

/// Replaces this contract's code once the current call returns; the new
/// code's `#[migrate]` method then runs with `migrate_args` (borsh).
pub fn upgrade(code: &[u8], migrate_args: &[u8]) {
    // SAFETY: the host only reads both buffers.
    unsafe {
        sys::code_upgrade(
            code.as_ptr(),
            code.len() as i32,
            migrate_args.as_ptr(),
            migrate_args.len() as i32,
        )
    }
}
