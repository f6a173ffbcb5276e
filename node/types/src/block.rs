//! Blocks and receipts.
//!
//! A block orders transactions; it does not wait for them to execute. Its
//! header carries the state root after the *previous* block, so ordering
//! never sits behind execution, and every node checks that root against the
//! one it computed itself.

use borsh::{BorshDeserialize, BorshSerialize};
use stele_host_api::{Address, Event};

use crate::tx::{SignedTransaction, TxHash};

/// A block hash: BLAKE3 of [`BLOCK_DOMAIN`] and the borsh header.
pub type BlockHash = [u8; 32];

/// Domain separation of block hashes.
pub const BLOCK_DOMAIN: &[u8] = b"stele-block-v1";

/// What a block commits to.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    /// Height; the first block is 1 (0 is genesis state).
    pub height: u64,
    /// Hash of the previous header (zeros for height 1).
    pub parent_hash: BlockHash,
    /// Milliseconds since the Unix epoch, never below the parent's.
    pub time_ms: u64,
    /// The node that ordered the block; it receives the fees.
    pub proposer: Address,
    /// [`transactions_root`] of the block's transactions.
    pub transactions_root: [u8; 32],
    /// Number of transactions.
    pub transaction_count: u32,
    /// State root after executing the previous block (genesis state for
    /// height 1).
    pub state_root: [u8; 32],
}

impl BlockHeader {
    /// The header's hash.
    pub fn hash(&self) -> BlockHash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(BLOCK_DOMAIN);
        hasher.update(&borsh::to_vec(self).expect("writing to a Vec cannot fail"));
        *hasher.finalize().as_bytes()
    }
}

/// A header and the transactions it orders.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Transactions, in execution order.
    pub transactions: Vec<SignedTransaction>,
}

impl Block {
    /// Whether the header's root and count match the transactions.
    pub fn is_consistent(&self) -> bool {
        self.is_consistent_with(&self.transaction_hashes())
    }

    /// [`Block::is_consistent`] given the transactions' hashes, in order
    /// (from [`Block::transaction_hashes`]).
    pub fn is_consistent_with(&self, hashes: &[TxHash]) -> bool {
        self.header.transaction_count as usize == self.transactions.len()
            && hashes.len() == self.transactions.len()
            && self.header.transactions_root == transactions_root_of(hashes)
    }

    /// The hash of every transaction, in order.
    pub fn transaction_hashes(&self) -> Vec<TxHash> {
        self.transactions
            .iter()
            .map(SignedTransaction::hash)
            .collect()
    }
}

/// Binary Merkle root over transaction hashes, with domain-separated leaf
/// and inner hashing (an odd node is promoted unchanged); all zeros for no
/// transactions.
pub fn transactions_root(transactions: &[SignedTransaction]) -> [u8; 32] {
    let hashes: Vec<TxHash> = transactions.iter().map(SignedTransaction::hash).collect();
    transactions_root_of(&hashes)
}

/// [`transactions_root`] from the transactions' hashes, in order.
pub fn transactions_root_of(hashes: &[TxHash]) -> [u8; 32] {
    let mut level: Vec<[u8; 32]> = hashes
        .iter()
        .map(|hash| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(&[0]);
            hasher.update(hash);
            *hasher.finalize().as_bytes()
        })
        .collect();
    if level.is_empty() {
        return [0; 32];
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut hasher = blake3::Hasher::new();
                    hasher.update(&[1]);
                    hasher.update(left);
                    hasher.update(right);
                    *hasher.finalize().as_bytes()
                }
                [single] => *single,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    level[0]
}

/// How a transaction ended.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ReceiptStatus {
    /// Every action succeeded; its writes are committed.
    Success,
    /// An action failed: nothing of the transaction is committed but the
    /// fee and the nonce.
    Failed {
        /// Index of the failing action.
        action: u32,
        /// The trap kind, readable (`out of gas`, `contract abort`, ...).
        kind: String,
        /// The message (a contract's own error text for an abort).
        message: String,
    },
    /// Refused at execution (nonce, balance for fees, permission): no fee,
    /// no nonce change, no writes.
    Invalid {
        /// Why.
        reason: String,
    },
}

/// The result of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    /// The transaction.
    pub tx_hash: TxHash,
    /// Its block.
    pub height: u64,
    /// Its position in the block.
    pub index: u32,
    /// How it ended.
    pub status: ReceiptStatus,
    /// Gas charged.
    pub gas_used: u64,
    /// Fee paid: `gas_used × gas_price`.
    pub fee: u128,
    /// What the last action returned (empty on failure).
    pub return_data: Vec<u8>,
    /// Events of every action, in order (empty on failure).
    pub events: Vec<Event>,
    /// Addresses of contracts the transaction deployed.
    pub deployed: Vec<Address>,
}

impl Receipt {
    /// Whether the transaction succeeded.
    pub fn is_success(&self) -> bool {
        self.status == ReceiptStatus::Success
    }
}
