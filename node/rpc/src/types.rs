//! The JSON shapes of the API. Bytes are lower-case hex, addresses
//! `stele1…`, amounts (u128) decimal strings.

use serde::{Deserialize, Serialize};
use stele_host_api::Event;
use stele_types::{Receipt, ReceiptStatus, format_address};

/// `chain_getInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// Chain id.
    pub chain_id: String,
    /// Executed height.
    pub height: u64,
    /// Hash of the last executed block.
    pub block_hash: String,
    /// State root after it.
    pub state_root: String,
    /// Genesis hash.
    pub genesis_hash: String,
    /// Lowest gas price accepted.
    pub gas_price_min: String,
    /// Ordering engine.
    pub engine: String,
}

/// `consensus_status`: the ordering engine's view of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// `solo` or `raft`.
    pub engine: String,
    /// This node's id.
    pub node_id: u64,
    /// `leader`, `follower`, `learner` or `candidate`.
    pub role: String,
    /// The leader's id, when known.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// Voting members' ids.
    pub members: Vec<u64>,
    /// Learners' ids.
    pub learners: Vec<u64>,
    /// The last committed log index (solo: the executed height).
    pub commit_index: u64,
}

impl From<stele_consensus::EngineStatus> for ConsensusStatus {
    fn from(status: stele_consensus::EngineStatus) -> Self {
        ConsensusStatus {
            engine: status.engine.into(),
            node_id: status.node_id,
            role: status.role.into(),
            leader: status.leader,
            term: status.term,
            members: status.members,
            learners: status.learners,
            commit_index: status.commit_index,
        }
    }
}

/// `chain_getHealth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// False once the node halted.
    pub healthy: bool,
    /// Executed height.
    pub height: u64,
    /// Why the node halted.
    pub halted: Option<String>,
    /// Transactions waiting.
    pub mempool_transactions: usize,
}

/// A block header and its transaction hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Height.
    pub height: u64,
    /// Header hash.
    pub hash: String,
    /// Parent header hash.
    pub parent_hash: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Proposer address.
    pub proposer: String,
    /// Transactions root.
    pub transactions_root: String,
    /// State root after the previous block.
    pub state_root: String,
    /// Transaction hashes, in order.
    pub transactions: Vec<String>,
}

/// An event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventInfo {
    /// Emitting contract.
    pub contract: String,
    /// Topics, hex.
    pub topics: Vec<String>,
    /// Data, hex.
    pub data: String,
    /// Block height (absent in simulations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Transaction index in the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_index: Option<u32>,
    /// Event index in the transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_index: Option<u32>,
}

impl EventInfo {
    /// Converts an event; `position` is `(height, tx index, event index)`.
    pub fn new(event: &Event, position: Option<(u64, u32, u32)>) -> Self {
        EventInfo {
            contract: format_address(&event.contract),
            topics: event.topics.iter().map(hex::encode).collect(),
            data: hex::encode(&event.data),
            height: position.map(|p| p.0),
            tx_index: position.map(|p| p.1),
            event_index: position.map(|p| p.2),
        }
    }
}

/// A receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiptInfo {
    /// Transaction hash.
    pub tx_hash: String,
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
    /// `success`, `failed` or `invalid`.
    pub status: String,
    /// The error, when not a success.
    pub error: Option<String>,
    /// Gas used.
    pub gas_used: u64,
    /// Fee paid.
    pub fee: String,
    /// Return data of the last action, hex.
    pub return_data: String,
    /// Events.
    pub events: Vec<EventInfo>,
    /// Contracts deployed.
    pub deployed: Vec<String>,
}

impl From<&Receipt> for ReceiptInfo {
    fn from(receipt: &Receipt) -> Self {
        let (status, error) = match &receipt.status {
            ReceiptStatus::Success => ("success", None),
            ReceiptStatus::Failed {
                action,
                kind,
                message,
            } => (
                "failed",
                Some(format!("action {action} failed: {kind}: {message}")),
            ),
            ReceiptStatus::Invalid { reason } => ("invalid", Some(reason.clone())),
        };
        ReceiptInfo {
            tx_hash: hex::encode(receipt.tx_hash),
            height: receipt.height,
            index: receipt.index,
            status: status.into(),
            error,
            gas_used: receipt.gas_used,
            fee: receipt.fee.to_string(),
            return_data: hex::encode(&receipt.return_data),
            events: receipt
                .events
                .iter()
                .enumerate()
                .map(|(n, event)| {
                    EventInfo::new(event, Some((receipt.height, receipt.index, n as u32)))
                })
                .collect(),
            deployed: receipt.deployed.iter().map(format_address).collect(),
        }
    }
}

/// How long `tx_send` waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Until the mempool admitted it (not durable: a crash loses it).
    #[default]
    None,
    /// Until a block includes it.
    Included,
    /// Until it executed (its receipt is stored and the state committed).
    Executed,
    /// Until its block is final (solo: the same as executed).
    Final,
}

/// `tx_send` and `tx_get`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxStatus {
    /// Transaction hash.
    pub hash: String,
    /// `pending`, `executed` or `unknown`.
    pub status: String,
    /// The receipt once executed.
    pub receipt: Option<ReceiptInfo>,
}

/// `contract_call`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallResult {
    /// Returned bytes, hex.
    pub return_data: String,
    /// Gas it used.
    pub gas_used: u64,
    /// Events it would emit.
    pub events: Vec<EventInfo>,
    /// The trap, when it failed.
    pub error: Option<String>,
}

/// `contract_getCode`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeInfo {
    /// BLAKE3 of the code.
    pub code_hash: String,
    /// The wasm, hex.
    pub code: String,
}

/// `state_get`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateValue {
    /// The key, hex.
    pub key: String,
    /// The value, hex; absent when the key is not set.
    pub value: Option<String>,
    /// Compact inclusion or exclusion proof, hex.
    pub proof: String,
    /// The state root the proof is against.
    pub root: String,
    /// The height (state version).
    pub height: u64,
}

/// One entry of `state_list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateEntry {
    /// Key, hex.
    pub key: String,
    /// Value, hex.
    pub value: String,
}

/// `state_list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatePage {
    /// Entries in key order.
    pub entries: Vec<StateEntry>,
    /// Where the next page starts, when there may be more.
    pub next_cursor: Option<String>,
}

/// `account_get`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Address.
    pub address: String,
    /// Native balance.
    pub balance: String,
    /// Next nonce.
    pub nonce: u64,
    /// Code hash, for a contract.
    pub code_hash: Option<String>,
    /// Who may upgrade it, for a contract.
    pub admin: Option<String>,
}

/// `event_query` and `event_subscribe` filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// The contract (required for `event_query`; optional for subscriptions).
    pub contract: Option<String>,
    /// Leading topics to match, hex.
    #[serde(default)]
    pub topics: Vec<String>,
    /// First height (default 0).
    #[serde(default)]
    pub from_height: Option<u64>,
    /// Last height (default: the tip).
    #[serde(default)]
    pub to_height: Option<u64>,
    /// Cursor from a previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1,000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `event_query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// Events in chain order.
    pub events: Vec<EventInfo>,
    /// Where the next page starts, when there may be more.
    pub next_cursor: Option<String>,
}

/// `node_getVersion`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Node version.
    pub version: String,
    /// Ordering engine.
    pub engine: String,
    /// Gas schedule version.
    pub gas_schedule: u32,
}
