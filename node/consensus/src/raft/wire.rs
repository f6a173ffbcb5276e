//! The engine's encodings: borsh mirrors of openraft's types (for the log on
//! disk and for messages between nodes) and the peer protocol's messages.
//!
//! openraft's own types carry serde derives only; consensus-relevant bytes
//! in Stele are borsh, so each type here converts to and from its openraft
//! twin by moving (a block in an entry is never copied).

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use openraft::{EntryPayload, LeaderId};
use stele_types::SignedTransaction;

use super::types::{
    Entry, LogId, Membership, NodeId, NodeInfo, Request, SnapshotMeta, StoredMembership, Vote,
};

/// A log position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireLogId {
    /// The leader's term.
    pub term: u64,
    /// The leader's id.
    pub node: NodeId,
    /// The index in the log.
    pub index: u64,
}

/// Bytes of an encoded [`WireLogId`].
pub const LOG_ID_BYTES: usize = 24;

impl From<&LogId> for WireLogId {
    fn from(log_id: &LogId) -> Self {
        WireLogId {
            term: log_id.leader_id.term,
            node: log_id.leader_id.node_id,
            index: log_id.index,
        }
    }
}

impl From<WireLogId> for LogId {
    fn from(wire: WireLogId) -> Self {
        LogId::new(LeaderId::new(wire.term, wire.node), wire.index)
    }
}

/// Optional log ids, both ways.
pub fn wire_log_id(log_id: &Option<LogId>) -> Option<WireLogId> {
    log_id.as_ref().map(WireLogId::from)
}

/// [`wire_log_id`] back.
pub fn log_id(wire: Option<WireLogId>) -> Option<LogId> {
    wire.map(LogId::from)
}

/// A vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireVote {
    /// Its term.
    pub term: u64,
    /// Who it is for.
    pub node: NodeId,
    /// Whether a quorum granted it.
    pub committed: bool,
}

impl From<&Vote> for WireVote {
    fn from(vote: &Vote) -> Self {
        WireVote {
            term: vote.leader_id.term,
            node: vote.leader_id.node_id,
            committed: vote.committed,
        }
    }
}

impl From<WireVote> for Vote {
    fn from(wire: WireVote) -> Self {
        if wire.committed {
            Vote::new_committed(wire.term, wire.node)
        } else {
            Vote::new(wire.term, wire.node)
        }
    }
}

/// A membership: the voter sets (two during a joint change) and every
/// node's address (those in no voter set are learners).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireMembership {
    /// Voter sets.
    pub configs: Vec<Vec<NodeId>>,
    /// Every node, voters and learners.
    pub nodes: Vec<(NodeId, NodeInfo)>,
}

impl From<&Membership> for WireMembership {
    fn from(membership: &Membership) -> Self {
        WireMembership {
            configs: membership
                .get_joint_config()
                .iter()
                .map(|set| set.iter().copied().collect())
                .collect(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect(),
        }
    }
}

impl From<WireMembership> for Membership {
    fn from(wire: WireMembership) -> Self {
        let configs: Vec<BTreeSet<NodeId>> = wire
            .configs
            .into_iter()
            .map(|set| set.into_iter().collect())
            .collect();
        let nodes: BTreeMap<NodeId, NodeInfo> = wire.nodes.into_iter().collect();
        Membership::new(configs, nodes)
    }
}

/// A membership and the log position that set it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireStoredMembership {
    /// Where it was set (`None`: the empty initial membership).
    pub log_id: Option<WireLogId>,
    /// The membership.
    pub membership: WireMembership,
}

impl From<&StoredMembership> for WireStoredMembership {
    fn from(stored: &StoredMembership) -> Self {
        WireStoredMembership {
            log_id: wire_log_id(stored.log_id()),
            membership: stored.membership().into(),
        }
    }
}

impl From<WireStoredMembership> for StoredMembership {
    fn from(wire: WireStoredMembership) -> Self {
        StoredMembership::new(log_id(wire.log_id), wire.membership.into())
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WirePayload {
    /// A new leader's first entry.
    Blank,
    /// A block.
    Normal(Request),
    /// A membership change.
    Membership(WireMembership),
}

/// A log entry. Its log id comes first, so that [`LOG_ID_BYTES`] bytes of
/// an encoded entry say where it sits.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireEntry {
    /// Its position.
    pub log_id: WireLogId,
    /// Its payload.
    pub payload: WirePayload,
}

impl From<Entry> for WireEntry {
    fn from(entry: Entry) -> Self {
        let payload = match entry.payload {
            EntryPayload::Blank => WirePayload::Blank,
            EntryPayload::Normal(request) => WirePayload::Normal(request),
            EntryPayload::Membership(membership) => WirePayload::Membership((&membership).into()),
        };
        WireEntry {
            log_id: (&entry.log_id).into(),
            payload,
        }
    }
}

impl From<WireEntry> for Entry {
    fn from(wire: WireEntry) -> Self {
        let payload = match wire.payload {
            WirePayload::Blank => EntryPayload::Blank,
            WirePayload::Normal(request) => EntryPayload::Normal(request),
            WirePayload::Membership(membership) => EntryPayload::Membership(membership.into()),
        };
        Entry {
            log_id: wire.log_id.into(),
            payload,
        }
    }
}

/// A snapshot's description.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WireSnapshotMeta {
    /// The last entry it includes.
    pub last_log_id: Option<WireLogId>,
    /// The membership as of that entry.
    pub last_membership: WireStoredMembership,
    /// Its id (unique per node and build).
    pub snapshot_id: String,
}

/// Longest snapshot id.
pub const SNAPSHOT_ID_BYTES_MAX: usize = 128;

impl From<&SnapshotMeta> for WireSnapshotMeta {
    fn from(meta: &SnapshotMeta) -> Self {
        WireSnapshotMeta {
            last_log_id: wire_log_id(&meta.last_log_id),
            last_membership: (&meta.last_membership).into(),
            snapshot_id: meta.snapshot_id.clone(),
        }
    }
}

impl From<WireSnapshotMeta> for SnapshotMeta {
    fn from(wire: WireSnapshotMeta) -> Self {
        SnapshotMeta {
            last_log_id: log_id(wire.last_log_id),
            last_membership: wire.last_membership.into(),
            snapshot_id: wire.snapshot_id,
        }
    }
}

/// How an append went, on the follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WireAppendResponse {
    /// Every entry appended.
    Success,
    /// Entries up to the given one appended.
    PartialSuccess(Option<WireLogId>),
    /// The previous entry does not match.
    Conflict,
    /// The follower has seen a higher vote.
    HigherVote(WireVote),
}

/// A membership change an operator asked a follower for, forwarded to the
/// leader.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WireMembershipChange {
    /// Add a learner.
    AddLearner {
        /// Its id.
        node_id: NodeId,
        /// Its peer address.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Its id.
        node_id: NodeId,
    },
    /// Remove a voter or learner.
    Remove {
        /// Its id.
        node_id: NodeId,
    },
}

/// What one node asks another.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum PeerRequest {
    /// Raft's AppendEntries (also the heartbeat).
    AppendEntries {
        /// The leader's vote.
        vote: WireVote,
        /// The entry before `entries`.
        prev_log_id: Option<WireLogId>,
        /// Entries to append.
        entries: Vec<WireEntry>,
        /// The leader's commit position.
        leader_commit: Option<WireLogId>,
    },
    /// Raft's RequestVote.
    Vote {
        /// The candidate's vote.
        vote: WireVote,
        /// The candidate's last log entry.
        last_log_id: Option<WireLogId>,
    },
    /// One piece of a snapshot, in order from offset 0; the last one
    /// (`done`) installs it.
    SnapshotChunk {
        /// The leader's vote.
        vote: WireVote,
        /// The snapshot's id (a new id restarts the transfer).
        snapshot_id: String,
        /// Where `data` starts in the snapshot file.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
        /// Whether this is the last piece.
        done: bool,
    },
    /// Transactions a follower received, for the leader's pool.
    Submit {
        /// The transactions.
        transactions: Vec<SignedTransaction>,
    },
    /// A membership change for the leader to make.
    ChangeMembership(WireMembershipChange),
}

/// A refusal of a submitted transaction: its code and message.
pub type WireRefusal = (i32, String);

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum PeerResponse {
    /// To [`PeerRequest::AppendEntries`].
    AppendEntries(WireAppendResponse),
    /// To [`PeerRequest::Vote`].
    Vote {
        /// The responder's vote.
        vote: WireVote,
        /// Whether it granted the candidate's.
        vote_granted: bool,
        /// The responder's last log entry.
        last_log_id: Option<WireLogId>,
    },
    /// To [`PeerRequest::SnapshotChunk`]: the responder's vote once the last
    /// piece is installed, `None` before.
    Snapshot(Option<WireVote>),
    /// To [`PeerRequest::Submit`]: one result per transaction.
    Submit(Vec<Result<[u8; 32], WireRefusal>>),
    /// To [`PeerRequest::ChangeMembership`].
    ChangeMembership(Result<(), String>),
    /// The request could not be served (this node's Raft stopped, or the
    /// request was out of order); says why.
    Refused(String),
}
