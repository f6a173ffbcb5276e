//! Decoding untrusted bytes against limits.
//!
//! The size is checked before anything is decoded; borsh then refuses
//! trailing bytes and non-canonical tags, and never preallocates more than
//! a few KiB for a length prefix it has not seen the data of; counts are
//! checked after. Decoding then re-encoding gives the same bytes.

use borsh::BorshDeserialize;

use crate::block::Block;
use crate::limits::{ACTIONS_PER_TX_MAX, BLOCK_BYTES_MAX, BLOCK_TRANSACTIONS_MAX, TX_BYTES_MAX};
use crate::tx::SignedTransaction;

/// Why bytes are not a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than any transaction may be; refused before decoding.
    #[error("transaction is {size} bytes, over the limit TX_BYTES_MAX = {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a borsh-encoded transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// A block larger than any block may be.
    #[error("block is {size} bytes, over the limit BLOCK_BYTES_MAX = {limit}")]
    BlockTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A block with too many transactions, or whose header does not match them.
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// Too many actions.
    #[error("transaction has {count} actions, over the limit ACTIONS_PER_TX_MAX = {limit}")]
    TooManyActions {
        /// Its action count.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// Decodes a signed transaction from untrusted bytes.
pub fn decode_transaction(bytes: &[u8]) -> Result<SignedTransaction, DecodeError> {
    if bytes.len() > TX_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: TX_BYTES_MAX,
        });
    }
    let tx = SignedTransaction::try_from_slice(bytes)
        .map_err(|error| DecodeError::Malformed(error.to_string()))?;
    if tx.tx.actions.len() > ACTIONS_PER_TX_MAX {
        return Err(DecodeError::TooManyActions {
            count: tx.tx.actions.len(),
            limit: ACTIONS_PER_TX_MAX,
        });
    }
    Ok(tx)
}

/// Encodes a signed transaction (the inverse of [`decode_transaction`]).
pub fn encode_transaction(tx: &SignedTransaction) -> Vec<u8> {
    borsh::to_vec(tx).expect("writing to a Vec cannot fail")
}

/// Decodes a block from untrusted bytes (a peer, or the node's own store).
pub fn decode_block(bytes: &[u8]) -> Result<Block, DecodeError> {
    if bytes.len() > BLOCK_BYTES_MAX {
        return Err(DecodeError::BlockTooLarge {
            size: bytes.len(),
            limit: BLOCK_BYTES_MAX,
        });
    }
    let block =
        Block::try_from_slice(bytes).map_err(|error| DecodeError::Malformed(error.to_string()))?;
    if block.transactions.len() > BLOCK_TRANSACTIONS_MAX {
        return Err(DecodeError::InvalidBlock(format!(
            "{} transactions, over the limit BLOCK_TRANSACTIONS_MAX = {BLOCK_TRANSACTIONS_MAX}",
            block.transactions.len()
        )));
    }
    for tx in &block.transactions {
        if tx.tx.actions.len() > ACTIONS_PER_TX_MAX {
            return Err(DecodeError::TooManyActions {
                count: tx.tx.actions.len(),
                limit: ACTIONS_PER_TX_MAX,
            });
        }
    }
    if !block.is_consistent() {
        return Err(DecodeError::InvalidBlock(
            "the header's transaction root or count does not match its transactions".into(),
        ));
    }
    Ok(block)
}
