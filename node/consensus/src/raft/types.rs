//! The Raft engine's types for openraft: what a log entry carries, what
//! applying one answers, what a member is, and what a snapshot is on disk.

use std::path::PathBuf;

use borsh::{BorshDeserialize, BorshSerialize};
use stele_types::Block;

/// A node's id in the cluster (listed in genesis with its key).
pub type NodeId = u64;

/// What the cluster knows of a member: where its peers reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NodeInfo {
    /// Its peer address, `host:port`.
    pub addr: String,
}

/// The payload of a normal log entry.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// A block the leader proposed; applying it executes it.
    Block(Block),
}

/// What applying an entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// The block executed; the new height.
    Executed {
        /// The height it executed at.
        height: u64,
    },
    /// The block did not follow the tip and was skipped (on every replica).
    Stale,
    /// Not a block (a blank or membership entry).
    Nothing,
}

/// A snapshot as openraft passes it around: a file, written whole before
/// it is used (see [`super::state_machine`] for its layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
}

openraft::declare_raft_types!(
    /// The engine's openraft configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFile,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log position.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A membership configuration.
pub type Membership = openraft::Membership<NodeId, NodeInfo>;
/// A membership with the log position that set it.
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
/// A snapshot's description.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
/// A storage error as openraft expects it.
pub type StorageError = openraft::StorageError<NodeId>;
/// The openraft node.
pub type Raft = openraft::Raft<TypeConfig>;
