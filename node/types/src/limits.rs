//! Limits of the chain's data, units last.

use stele_host_api::limits::{CODE_BYTES_MAX, INPUT_BYTES_MAX, METHOD_NAME_BYTES_MAX};

/// Largest encoded signed transaction.
pub const TX_BYTES_MAX: usize = 1_536 * 1024;
/// Most actions in one transaction.
pub const ACTIONS_PER_TX_MAX: usize = 16;
/// Most transactions in one block.
pub const BLOCK_TRANSACTIONS_MAX: usize = 100_000;
/// Largest encoded block.
pub const BLOCK_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Longest chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 64;

// A transaction can carry the largest contract or the largest input.
const _: () = assert!(TX_BYTES_MAX > CODE_BYTES_MAX + INPUT_BYTES_MAX);
const _: () = assert!(METHOD_NAME_BYTES_MAX < TX_BYTES_MAX);
const _: () = assert!(BLOCK_BYTES_MAX >= 8 * TX_BYTES_MAX);
