//! The ordering seam: an engine takes transactions in and hands ordered
//! blocks out, and knows nothing of execution.
//!
//! The node implements [`Application`] (admission to its mempool, the
//! transactions to propose, the executed tip); an engine implements
//! [`Ordering`] and sends every committed [`Block`] down a channel that the
//! node's executor drains. [`solo`] orders alone (development); a Raft
//! engine (openraft) or a BFT engine plugs into the same two traits: the
//! leader proposes from [`Application::propose`], every replica receives
//! the committed blocks, and the chain is untouched.

#![deny(missing_docs)]

pub mod solo;

use std::time::Duration;

use stele_types::{BlockHash, SignedTransaction, TxHash};

/// Where the executed chain stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Height of the last executed block (0: genesis).
    pub height: u64,
    /// Hash of its header (zeros at genesis).
    pub hash: BlockHash,
    /// Its time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The state root after executing it.
    pub state_root: [u8; 32],
}

/// Why a transaction was not accepted for ordering.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SubmitError {
    /// A stable code for the reason (the RPC error code).
    pub code: i32,
    /// What was wrong, and the limit where there is one.
    pub message: String,
}

/// Transactions offered for the next block, with their hashes (computed
/// once, at admission) for the header's transactions root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    /// The transactions, in execution order.
    pub transactions: Vec<SignedTransaction>,
    /// `hashes[i]` is `transactions[i].hash()`.
    pub hashes: Vec<TxHash>,
}

/// What an ordering engine needs from the node.
pub trait Application: Send + Sync + 'static {
    /// Checks a transaction (cheap checks first, then the signature) and
    /// admits it to the pool of transactions waiting for a block; returns
    /// its hash.
    fn admit(&self, tx: SignedTransaction) -> Result<TxHash, SubmitError>;

    /// Takes up to `max_transactions` transactions totalling at most
    /// `max_bytes` from the pool, in an order that executes (per-account
    /// nonce order).
    fn propose(&self, max_transactions: usize, max_bytes: usize) -> Proposal;

    /// The executed tip.
    fn tip(&self) -> Tip;

    /// Waits until the block at `height` has executed, at most `timeout`;
    /// the tip then, or `None` on timeout.
    fn wait_executed(&self, height: u64, timeout: Duration) -> Option<Tip>;
}

/// An ordering engine.
pub trait Ordering: Send + Sync {
    /// The engine's name (`solo`, `raft`, `bft`).
    fn name(&self) -> &'static str;

    /// Submits a transaction for ordering (to the local pool, or forwarded
    /// to the leader); returns its hash.
    fn submit(&self, tx: SignedTransaction) -> Result<TxHash, SubmitError>;

    /// Asks the engine to stop; committed blocks already sent stay valid.
    fn stop(&self);
}
