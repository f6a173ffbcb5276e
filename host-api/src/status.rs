//! Status codes returned by host functions.
//!
//! Non-negative values are lengths or booleans; negative values say why a
//! function has nothing to return. Guest bugs (bad pointers, broken limits)
//! are not status codes: they trap.

/// Success.
pub const OK: i32 = 0;
/// Boolean false (`storage_has`, `storage_remove`, `ed25519_verify`).
pub const FALSE: i32 = 0;
/// Boolean true.
pub const TRUE: i32 = 1;
/// The storage key is absent, or the iteration is over.
pub const NOT_FOUND: i32 = -1;
/// The callee trapped or aborted; its writes were rolled back and its
/// message is available through `call_result_read`.
pub const CALLEE_FAILED: i32 = -2;
/// The callee is already on the call stack; re-entrancy is refused.
pub const REENTRANCY_REFUSED: i32 = -3;
/// The call would exceed `CALL_DEPTH_MAX` nested contracts.
pub const CALL_DEPTH_EXCEEDED: i32 = -4;
/// No contract is deployed at the callee address.
pub const NOT_A_CONTRACT: i32 = -5;
/// The callee has no such callable method.
pub const METHOD_NOT_FOUND: i32 = -6;
/// The sender's native balance is too small.
pub const INSUFFICIENT_BALANCE: i32 = -7;

/// A readable name for a status code, for messages and logs.
pub fn name(status: i32) -> &'static str {
    match status {
        OK => "ok",
        TRUE => "true",
        NOT_FOUND => "not found",
        CALLEE_FAILED => "callee failed",
        REENTRANCY_REFUSED => "re-entrancy refused",
        CALL_DEPTH_EXCEEDED => "call depth exceeded",
        NOT_A_CONTRACT => "not a contract",
        METHOD_NOT_FOUND => "method not found",
        INSUFFICIENT_BALANCE => "insufficient balance",
        _ => "unknown status",
    }
}
