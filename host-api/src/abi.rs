//! Import names and exact signatures of every host function.
//!
//! A contract imports host functions from the module [`MODULE`]. The runtime
//! refuses a module that imports anything not listed in [`IMPORTS`], or
//! imports a listed name with a different signature.
//!
//! Conventions shared by every function:
//! * pointers and lengths are `i32` values that the host reinterprets as
//!   `u32` offsets into the contract's exported memory; a range that does
//!   not fit in memory traps before the host reads or allocates anything;
//! * fixed-size values (addresses, hashes, amounts) are written to or read
//!   from a pointer with no length: their size is in [`crate::limits`];
//! * functions that return a length return it as a non-negative `i32`, and a
//!   negative [`crate::status`] code when there is nothing to return;
//! * a call that breaks a limit traps, and the gas used so far is charged.

/// The wasm import module every host function lives in.
pub const MODULE: &str = "stele";

/// Export name of the contract's linear memory; every contract exports it.
pub const MEMORY_EXPORT: &str = "memory";
/// Export run once when a contract is deployed (if the deployer asks for it).
/// It cannot be called afterwards.
pub const INIT_EXPORT: &str = "init";
/// Export run right after a contract replaced its own code with
/// `code_upgrade`. It cannot be called any other way.
pub const MIGRATE_EXPORT: &str = "migrate";
/// Exports starting with this prefix are reserved for the runtime; a
/// contract may not define them.
pub const RESERVED_EXPORT_PREFIX: &str = "__stele";
/// Name of the custom section in which the SDK embeds a contract's spec
/// (methods, events, errors), borsh-encoded.
pub const SPEC_SECTION: &str = "stele.spec";

/// A wasm value type used by the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValType {
    /// 32-bit integer: pointers, lengths, status codes.
    I32,
    /// 64-bit integer: heights, times, gas.
    I64,
}

/// One host function: its import name and exact wasm signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFunction {
    /// Import name inside [`MODULE`].
    pub name: &'static str,
    /// Parameter types, in order.
    pub params: &'static [ValType],
    /// Result types (zero or one).
    pub results: &'static [ValType],
}

use ValType::{I32, I64};

macro_rules! host_functions {
    ($( $(#[$doc:meta])* $konst:ident = $name:literal ($($p:ident),*) -> ($($r:ident),*); )*) => {
        $(
            $(#[$doc])*
            pub const $konst: HostFunction = HostFunction {
                name: $name,
                params: &[$($p),*],
                results: &[$($r),*],
            };
        )*
        /// Every host function, in a fixed order.
        pub const IMPORTS: &[HostFunction] = &[$($konst),*];
    };
}

host_functions! {
    /// `input_len() -> len`: length in bytes of the call's input.
    INPUT_LEN = "input_len"() -> (I32);
    /// `input_read(dst)`: copies the whole input to `dst` (`input_len` bytes).
    INPUT_READ = "input_read"(I32) -> ();
    /// `return_set(ptr, len)`: sets the call's return data (replacing any
    /// earlier value); at most `RETURN_BYTES_MAX` bytes.
    RETURN_SET = "return_set"(I32, I32) -> ();
    /// `abort(msg_ptr, msg_len)`: stops the call with a contract error; the
    /// message (UTF-8, at most `ABORT_MESSAGE_BYTES_MAX`) reaches the caller.
    /// Never returns.
    ABORT = "abort"(I32, I32) -> ();
    /// `log(ptr, len)`: a debug line for developers; never consensus-relevant.
    LOG = "log"(I32, I32) -> ();
    /// `storage_read(key_ptr, key_len, dst, dst_cap) -> len | NOT_FOUND`:
    /// returns the value's length and copies it to `dst` when it fits in
    /// `dst_cap` bytes (otherwise copies nothing).
    STORAGE_READ = "storage_read"(I32, I32, I32, I32) -> (I32);
    /// `storage_write(key_ptr, key_len, value_ptr, value_len)`.
    STORAGE_WRITE = "storage_write"(I32, I32, I32, I32) -> ();
    /// `storage_remove(key_ptr, key_len) -> TRUE | FALSE` (whether it existed).
    STORAGE_REMOVE = "storage_remove"(I32, I32) -> (I32);
    /// `storage_has(key_ptr, key_len) -> TRUE | FALSE`.
    STORAGE_HAS = "storage_has"(I32, I32) -> (I32);
    /// `storage_next(prefix_ptr, prefix_len, start_ptr, start_len, dst, dst_cap)
    /// -> len | NOT_FOUND`: finds the smallest key that starts with `prefix`
    /// and is `>= start`, and returns the length of the record
    /// `key_len: u32 LE ‖ key ‖ value`, copying it to `dst` when it fits.
    /// Stateless: iterate by passing the last key followed by a zero byte.
    STORAGE_NEXT = "storage_next"(I32, I32, I32, I32, I32, I32) -> (I32);
    /// `caller(dst)`: the address that called this contract (32 bytes).
    CALLER = "caller"(I32) -> ();
    /// `self_address(dst)`: this contract's own address (32 bytes).
    SELF_ADDRESS = "self_address"(I32) -> ();
    /// `origin(dst)`: the account that signed the transaction (32 bytes).
    ORIGIN = "origin"(I32) -> ();
    /// `tx_hash(dst)`: hash of the transaction being executed (32 bytes).
    TX_HASH = "tx_hash"(I32) -> ();
    /// `block_height() -> height`.
    BLOCK_HEIGHT = "block_height"() -> (I64);
    /// `block_time() -> milliseconds since the Unix epoch`.
    BLOCK_TIME = "block_time"() -> (I64);
    /// `gas_left() -> gas`.
    GAS_LEFT = "gas_left"() -> (I64);
    /// `event_emit(topics_ptr, n_topics, data_ptr, data_len)`: topics are
    /// `n_topics` consecutive 32-byte values.
    EVENT_EMIT = "event_emit"(I32, I32, I32, I32) -> ();
    /// `contract_call(address_ptr, method_ptr, method_len, input_ptr,
    /// input_len, gas) -> len | status`: calls another contract
    /// synchronously, forwarding at most `gas` (0 forwards all that is
    /// left). On success returns the length of the callee's return data;
    /// otherwise a negative status. Either way `call_result_read` then gives
    /// the return data or the callee's error message.
    CONTRACT_CALL = "contract_call"(I32, I32, I32, I32, I32, I64) -> (I32);
    /// `call_result_read(dst, dst_cap) -> len`: the result of the last
    /// `contract_call`, copied to `dst` when it fits.
    CALL_RESULT_READ = "call_result_read"(I32, I32) -> (I32);
    /// `balance(address_ptr, dst)`: native balance of an account, as a
    /// 16-byte little-endian `u128`.
    BALANCE = "balance"(I32, I32) -> ();
    /// `transfer(address_ptr, amount_ptr) -> OK | INSUFFICIENT_BALANCE`:
    /// moves a 16-byte little-endian amount of the native coin from this
    /// contract to an account.
    TRANSFER = "transfer"(I32, I32) -> (I32);
    /// `blake3(data_ptr, data_len, dst)`: writes the 32-byte BLAKE3 hash.
    BLAKE3 = "blake3"(I32, I32, I32) -> ();
    /// `ed25519_verify(public_key_ptr, signature_ptr, message_ptr,
    /// message_len) -> TRUE | FALSE`, with strict verification (canonical
    /// `S`, no small-order keys).
    ED25519_VERIFY = "ed25519_verify"(I32, I32, I32, I32) -> (I32);
    /// `code_upgrade(code_ptr, code_len, input_ptr, input_len)`: replaces
    /// this contract's code. The new code is validated at once (a bad module
    /// traps); when the current call returns, the new code's `migrate`
    /// export runs with `input` if it exists.
    CODE_UPGRADE = "code_upgrade"(I32, I32, I32, I32) -> ();
}

/// Looks up a host function by import name.
pub fn find(name: &str) -> Option<&'static HostFunction> {
    IMPORTS.iter().find(|function| function.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_are_unique_and_findable() {
        for (idx, function) in IMPORTS.iter().enumerate() {
            assert_eq!(find(function.name), Some(function));
            assert!(
                IMPORTS[..idx]
                    .iter()
                    .all(|other| other.name != function.name)
            );
            assert!(
                function.results.len() <= 1,
                "{} has several results",
                function.name
            );
        }
        assert_eq!(find("no_such_function"), None);
    }
}
