//! Versioned authenticated state for Stele, on RocksDB.
//!
//! * [`tree`] — the sparse Merkle tree: domain-separated BLAKE3 hashing,
//!   16-ary nodes holding four binary levels, a canonical shape so the root
//!   depends only on the contents, batch updates from a sorted write set.
//! * [`proof`] — inclusion and exclusion proofs and their standalone
//!   verifier (no RocksDB: build with `default-features = false`).
//! * `db` (feature `db`, on by default) — [`StateDb`]: values by version
//!   (a read at the latest version or a past one is one RocksDB get, no
//!   tree walk), versioned tree nodes kept young so that pruning goes by
//!   age (no per-node deletes), and one atomic write batch per block, with
//!   a byte-bounded cache of latest values in front; and [`Overlay`] for
//!   the block being executed.
//!
//! The crate knows nothing of wasm, contracts or consensus: keys and values
//! are bytes, versions are block heights.
#![deny(missing_docs)]

#[cfg(feature = "db")]
mod cache;
#[cfg(feature = "db")]
mod commit_log;
#[cfg(feature = "db")]
mod db;
#[cfg(feature = "db")]
mod node_cache;
pub mod proof;
pub mod tree;

#[cfg(feature = "db")]
pub use db::{
    HISTORY_LOW_STEP, KeyValue, NODE_AGE_MAX, NODE_SWEEP_VERSIONS, Overlay, Retention,
    STATE_FORMAT, StateConfig, StateDb, StateError, WriteSet,
};
pub use proof::{Proof, ProofError, Terminal};
pub use tree::{EMPTY, Hash};
