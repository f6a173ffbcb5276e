//! The ordering seam: an engine takes transactions in and hands ordered
//! blocks to the node to execute, and knows nothing of execution.
//!
//! The node implements [`Application`]: admission to its mempool, the
//! transactions to propose (and taking back those of a proposal that was
//! not ordered), the executed tip, executing an ordered block, and state
//! snapshots for replicas that fall behind. An engine implements
//! [`Ordering`]: it submits transactions (to the local pool, or to the
//! leader), decides the order of blocks, and calls
//! [`Application::execute`] for each ordered block, in order, on every
//! replica. [`solo`] orders alone (development); [`raft`] replicates the
//! blocks with openraft.
//!
//! Each block is executed together with an [`OrderingMark`], opaque bytes
//! the engine chooses (Raft: the block's log position). The node stores the
//! mark with the block, atomically, so that after a crash the engine learns
//! exactly which ordered block the chain executed last: the executed height
//! and the engine's applied position cannot drift apart.

#![deny(missing_docs)]
pub mod raft;
pub mod solo;

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::Duration;

use stele_types::{Block, BlockHash, SignedTransaction, TxHash};

/// A boxed future, for the seam's asynchronous methods (dyn-compatible).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// Stable codes of [`SubmitError`]s that an engine itself raises (the
/// node's own admission codes live with the node).
pub mod codes {
    /// No leader is known, or it cannot be reached: try again shortly. Apart
    /// from the chain's (-32001 to -32013) and the RPC's own (-32020 to -32023).
    pub const NO_LEADER: i32 = -32030;
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

/// Opaque bytes an engine executes a block with and reads back after a
/// restart (at most [`ORDERING_MARK_BYTES_MAX`]).
pub type OrderingMark = Vec<u8>;

/// Most bytes of an [`OrderingMark`].
pub const ORDERING_MARK_BYTES_MAX: usize = 64;

/// What [`Application::execute`] did with an ordered block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executed {
    /// It followed the tip and executed; the new tip.
    Applied(Tip),
    /// It is already part of the executed chain (the same hash at its
    /// height): nothing was done. An engine replaying its log after a
    /// crash may offer a block twice.
    AlreadyExecuted(Tip),
    /// It does not follow the tip (a proposal built on a tip that another
    /// block replaced, e.g. by a leader that lost its term): skipped, on
    /// every replica alike, since every replica executes the same sequence.
    /// The tip is unchanged.
    Stale(Tip),
}

/// Why the node cannot go on: it halted (a state root mismatch, a host
/// fault, a storage failure) and refuses every further block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the node has halted: {reason}")]
pub struct Halted {
    /// Why, as the node's health reports it.
    pub reason: String,
}

/// A snapshot failed to be written or installed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("snapshot: {0}")]
pub struct SnapshotError(pub String);

/// What a snapshot holds, as [`Application::write_snapshot`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The height whose state it holds.
    pub height: u64,
    /// The root of that state.
    pub state_root: [u8; 32],
    /// The mark the block at that height was executed with.
    pub mark: Option<OrderingMark>,
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

    /// Gives back the transactions of a proposal that was not ordered (its
    /// leader lost its term, it timed out, or it was stale): those that can
    /// still execute return to the pool, in nonce order.
    fn requeue(&self, proposal: Proposal);

    /// How many transactions the pool holds, waiting for a block.
    fn pending(&self) -> usize;

    /// The executed tip.
    fn tip(&self) -> Tip;

    /// Waits until the block at `height` has executed, at most `timeout`;
    /// the tip then, or `None` on timeout.
    fn wait_executed(&self, height: u64, timeout: Duration) -> Option<Tip>;

    /// Executes an ordered block, storing `mark` with it atomically. The
    /// block must follow the tip, else it is [`Executed::Stale`] (or
    /// [`Executed::AlreadyExecuted`]); a block that follows but whose state
    /// root differs from this node's halts the node.
    fn execute(&self, block: Block, mark: &[u8]) -> Result<Executed, Halted>;

    /// The mark stored with the executed tip's block (`None` at genesis or
    /// when it was executed without one).
    fn executed_mark(&self) -> Result<Option<OrderingMark>, Halted>;

    /// Why the node halted, if it did.
    fn halted(&self) -> Option<String>;

    /// Writes a snapshot of the executed chain at `height` (the tip, or a
    /// retained height below it): the block at that height, its mark, the
    /// state root and every state entry.
    fn write_snapshot(
        &self,
        height: u64,
        out: &mut dyn Write,
    ) -> Result<SnapshotInfo, SnapshotError>;

    /// Reads a snapshot written by [`Application::write_snapshot`] (on
    /// another node), verifies it (its entries rebuild the root it
    /// claims, it belongs to this chain) and makes it the executed chain;
    /// returns what it installed.
    fn install_snapshot(&self, input: &mut dyn Read) -> Result<SnapshotInfo, SnapshotError>;
}

/// What an engine reports of itself (`consensus_status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    /// The engine's name (`solo`, `raft`).
    pub engine: &'static str,
    /// This node's id in the cluster.
    pub node_id: u64,
    /// `leader`, `follower`, `learner` or `candidate`.
    pub role: &'static str,
    /// The leader's id, when known.
    pub leader: Option<u64>,
    /// The current term (0 for solo).
    pub term: u64,
    /// Voting members' ids.
    pub members: Vec<u64>,
    /// Learners' ids (non-voting replicas).
    pub learners: Vec<u64>,
    /// The engine's last committed log index (solo: the executed height).
    pub commit_index: u64,
}

/// An ordering engine.
pub trait Ordering: Send + Sync {
    /// The engine's name (`solo`, `raft`, `bft`).
    fn name(&self) -> &'static str;

    /// Submits a transaction for ordering (to the local pool, or forwarded
    /// to the leader); returns its hash.
    fn submit(&self, tx: SignedTransaction) -> BoxFuture<'_, Result<TxHash, SubmitError>>;

    /// What the engine reports of itself.
    fn status(&self) -> EngineStatus;

    /// Asks the engine to stop; blocks executed already stay executed.
    fn stop(&self);
}

/// A change of a cluster's membership, asked by an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a node as a learner (it replicates, it does not vote).
    AddLearner {
        /// Its id (listed in genesis).
        node_id: u64,
        /// Its peer address (`host:port`).
        addr: String,
    },
    /// Make a learner a voting member.
    Promote {
        /// Its id.
        node_id: u64,
    },
    /// Remove a member or learner.
    Remove {
        /// Its id.
        node_id: u64,
    },
}

/// Engines whose membership an operator can change (Raft).
pub trait ClusterAdmin: Send + Sync {
    /// Applies a membership change through the leader; returns once it is
    /// committed.
    fn change_membership(&self, change: MembershipChange) -> BoxFuture<'_, Result<(), String>>;
}
