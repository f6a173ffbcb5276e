//! The chain's data: transactions, blocks, receipts and addresses.
//!
//! Everything that reaches consensus is borsh-encoded. Untrusted bytes are
//! decoded only through [`codec::decode_transaction`] and friends, which
//! check the total size before decoding and every count after, against the
//! named limits in [`limits`]; cheap checks (size, action count, chain id)
//! come before the signature check.

pub mod address;
pub mod block;
pub mod codec;
pub mod limits;
pub mod tx;

pub use address::{AddressError, format_address, parse_address};
pub use block::{
    Block, BlockHash, BlockHeader, Receipt, ReceiptStatus, transactions_root, transactions_root_of,
};
pub use codec::{DecodeError, decode_block, decode_transaction, encode_transaction};
pub use stele_host_api::Address;
pub use tx::{Action, SignedTransaction, Transaction, TxError, TxHash, tx_hash_of};
