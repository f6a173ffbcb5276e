//! A Stele chain: the node's deterministic core, between ordering and RPC.
//!
//! [`Chain`] opens the state ([`stele_state::StateDb`]) and the
//! [`store::BlockStore`] under a data directory, writes genesis on first
//! start, and executes each ordered block: transactions run through the
//! [`stele_runtime::Runtime`] over the state's block overlay (the runtime's
//! storage trait), fees and nonces are applied, receipts are stored, and the
//! state commits one version per height. It also implements the ordering
//! seam's [`stele_consensus::Application`]: admission to its
//! [`mempool::Mempool`] and proposals from it.
//!
//! Each block header carries the state root after the previous block; the
//! chain checks it against the root it computed and halts loudly on a
//! mismatch, refusing every later block.

#![deny(missing_docs)]

mod chain;
mod execute;
pub mod genesis;
pub mod mempool;
pub mod snapshot;
pub mod store;

pub use chain::{Chain, ChainConfig, ExecutedBlock, Metrics};
pub use execute::{TX_BASE_GAS, TX_BYTE_GAS, TX_GAS_LIMIT_MAX, contract_address, intrinsic_gas};
pub use genesis::{
    ChainSpec, ConsensusSpec, Genesis, GenesisAccount, GenesisConsensus, GenesisNode, NodeSpec,
    parse_node_key,
};

/// Chain-level keys in the runtime's foreign key range (`>= 0x80`).
pub mod keys {
    use stele_host_api::Address;

    /// Prefix of account nonces (value: u64 little-endian).
    pub const NONCE: u8 = 0x80;
    /// Prefix of contract admins, the accounts that may upgrade them.
    pub const ADMIN: u8 = 0x81;
    /// The genesis hash, so the state root commits to the genesis.
    pub const GENESIS_HASH: &[u8] = &[0x82];

    /// Key of `account`'s nonce.
    pub fn nonce(account: &Address) -> Vec<u8> {
        let mut key = Vec::with_capacity(33);
        key.push(NONCE);
        key.extend_from_slice(&account.0);
        key
    }

    /// Key of `contract`'s admin.
    pub fn admin(contract: &Address) -> Vec<u8> {
        let mut key = Vec::with_capacity(33);
        key.push(ADMIN);
        key.extend_from_slice(&contract.0);
        key
    }
}

/// Stable error codes for refused transactions (also the JSON-RPC codes).
pub mod codes {
    /// Bytes that are not a transaction.
    pub const TX_MALFORMED: i32 = -32001;
    /// Larger than `TX_BYTES_MAX`.
    pub const TX_TOO_LARGE: i32 = -32002;
    /// Another chain's transaction.
    pub const TX_WRONG_CHAIN: i32 = -32003;
    /// The signature or public key does not verify strictly.
    pub const TX_BAD_SIGNATURE: i32 = -32004;
    /// The nonce was already used.
    pub const TX_NONCE_USED: i32 = -32005;
    /// The nonce is too far ahead.
    pub const TX_NONCE_AHEAD: i32 = -32006;
    /// Already pending.
    pub const TX_DUPLICATE: i32 = -32007;
    /// The mempool is full.
    pub const MEMPOOL_FULL: i32 = -32008;
    /// The account holds as many pending transactions as allowed.
    pub const ACCOUNT_FULL: i32 = -32009;
    /// Gas limit or gas price out of range.
    pub const TX_GAS: i32 = -32010;
    /// The balance cannot pay the most the transaction may cost.
    pub const TX_FUNDS: i32 = -32011;
    /// Another limit of the transaction's content is broken.
    pub const TX_INVALID: i32 = -32012;
    /// The node halted (state root mismatch or host fault).
    pub const NODE_HALTED: i32 = -32013;
}

/// What can go wrong in the chain. Every variant stops the block at hand;
/// none is ever committed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The genesis file is invalid; the message names the field.
    #[error("invalid genesis: {0}")]
    Genesis(String),
    /// The block store failed.
    #[error("block store: {0}")]
    Store(String),
    /// The state failed.
    #[error("state: {0}")]
    State(#[from] stele_state::StateError),
    /// The runtime could not start.
    #[error("runtime: {0}")]
    Runtime(#[from] stele_runtime::RuntimeError),
    /// The runtime faulted while executing (never a guest's doing).
    #[error("host fault executing transaction {tx}: {fault}")]
    HostFault {
        /// Hex hash of the transaction.
        tx: String,
        /// The fault.
        fault: stele_runtime::HostFault,
    },
    /// A block does not follow the executed tip.
    #[error("block {height} does not follow the chain: {reason}")]
    BadBlock {
        /// Its height.
        height: u64,
        /// Why.
        reason: String,
    },
    /// The node halted earlier and refuses to go on.
    #[error("the node has halted: {0}")]
    Halted(String),
}
