//! Genesis: the chain's identity and its state at height 0.

use serde::{Deserialize, Serialize};
use stele_host_api::Address;
use stele_runtime::storage::{encode_balance, keys};
use stele_types::{limits::CHAIN_ID_BYTES_MAX, parse_address};

use crate::ChainError;
use crate::keys as chain_keys;

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// `stele1…` address.
    pub address: String,
    /// Balance in the native coin, as a decimal string (it is a u128).
    pub balance: String,
}

/// The genesis file (`genesis.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain id every transaction names.
    pub chain_id: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Lowest gas price accepted, as a decimal string (`"0"` on a
    /// permissioned chain without fees).
    pub gas_price_min: String,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// When present, only these accounts may deploy or upgrade contracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_allow_list: Option<Vec<String>>,
    /// The nodes of a cluster and their keys; absent on a solo chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<GenesisConsensus>,
}

/// Most nodes a genesis lists.
pub const GENESIS_NODES_MAX: usize = 64;

/// Most bytes of a node's peer address.
pub const NODE_ADDR_BYTES_MAX: usize = 256;

/// The cluster section of a genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisConsensus {
    /// The ordering engine (`"raft"`).
    pub engine: String,
    /// Every node that may ever take part: only these keys are accepted
    /// by peers, and only these ids by membership changes.
    pub nodes: Vec<GenesisNode>,
}

/// A node listed in genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisNode {
    /// Its id, above zero, unique.
    pub id: u64,
    /// Its ed25519 node key (public), 64 hex digits.
    pub key: String,
    /// Its peer address (`host:port`) at genesis.
    pub addr: String,
    /// Whether it votes from genesis (otherwise it joins later as a
    /// learner through `stele cluster add`).
    #[serde(default)]
    pub member: bool,
}

/// A cluster section checked and parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusSpec {
    /// The ordering engine.
    pub engine: String,
    /// The listed nodes.
    pub nodes: Vec<NodeSpec>,
}

/// A listed node, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its id.
    pub id: u64,
    /// Its ed25519 public key.
    pub key: [u8; 32],
    /// Its peer address at genesis.
    pub addr: String,
    /// Whether it votes from genesis.
    pub member: bool,
}

/// The engines a genesis may name.
pub const ENGINES: &[&str] = &["raft"];

impl GenesisConsensus {
    fn parse(&self) -> Result<ConsensusSpec, ChainError> {
        let fail = |message: String| Err(ChainError::Genesis(message));
        if !ENGINES.contains(&self.engine.as_str()) {
            return fail(format!(
                "consensus.engine is `{}`, expected one of {ENGINES:?}",
                self.engine
            ));
        }
        if self.nodes.is_empty() || self.nodes.len() > GENESIS_NODES_MAX {
            return fail(format!(
                "consensus.nodes lists {} nodes, must be 1 to GENESIS_NODES_MAX = {GENESIS_NODES_MAX}",
                self.nodes.len()
            ));
        }
        let mut nodes: Vec<NodeSpec> = Vec::with_capacity(self.nodes.len());
        for (index, node) in self.nodes.iter().enumerate() {
            let field = format!("consensus.nodes[{index}]");
            if node.id == 0 {
                return fail(format!("{field}.id must be above zero"));
            }
            if nodes.iter().any(|seen| seen.id == node.id) {
                return fail(format!("{field}.id {} appears twice", node.id));
            }
            let key = parse_node_key(&node.key)
                .map_err(|error| ChainError::Genesis(format!("{field}.key: {error}")))?;
            if nodes.iter().any(|seen| seen.key == key) {
                return fail(format!("{field}.key appears twice"));
            }
            if node.addr.is_empty() || node.addr.len() > NODE_ADDR_BYTES_MAX {
                return fail(format!(
                    "{field}.addr must be 1 to NODE_ADDR_BYTES_MAX = {NODE_ADDR_BYTES_MAX} bytes, is {}",
                    node.addr.len()
                ));
            }
            nodes.push(NodeSpec {
                id: node.id,
                key,
                addr: node.addr.clone(),
                member: node.member,
            });
        }
        if !nodes.iter().any(|node| node.member) {
            return fail("consensus.nodes has no member (`\"member\": true`) to start with".into());
        }
        Ok(ConsensusSpec {
            engine: self.engine.clone(),
            nodes,
        })
    }
}

/// Parses a node's public key: 64 hex digits of a valid ed25519 point.
pub fn parse_node_key(text: &str) -> Result<[u8; 32], String> {
    if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(format!("`{text}` is not 64 hex digits"));
    }
    let mut key = [0u8; 32];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16)
            .map_err(|error| error.to_string())?;
    }
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| format!("`{text}` is not an ed25519 public key"))?;
    Ok(key)
}

/// A genesis checked and parsed.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// The chain id.
    pub chain_id: String,
    /// Genesis time.
    pub genesis_time_ms: u64,
    /// Lowest gas price accepted.
    pub gas_price_min: u128,
    /// Funded accounts.
    pub accounts: Vec<(Address, u128)>,
    /// Who may deploy, when restricted.
    pub deploy_allow_list: Option<Vec<Address>>,
    /// The cluster, when the chain has one.
    pub consensus: Option<ConsensusSpec>,
    /// BLAKE3 of the genesis file's canonical JSON.
    pub genesis_hash: [u8; 32],
}

fn amount(field: &str, text: &str) -> Result<u128, ChainError> {
    text.parse().map_err(|_| {
        ChainError::Genesis(format!(
            "{field} is `{text}`, expected a decimal integer below 2^128"
        ))
    })
}

fn address(field: &str, text: &str) -> Result<Address, ChainError> {
    parse_address(text).map_err(|error| ChainError::Genesis(format!("{field}: {error}")))
}

impl Genesis {
    /// Checks every field and parses amounts and addresses.
    pub fn parse(&self) -> Result<ChainSpec, ChainError> {
        if self.chain_id.is_empty() || self.chain_id.len() > CHAIN_ID_BYTES_MAX {
            return Err(ChainError::Genesis(format!(
                "chain_id must be 1 to CHAIN_ID_BYTES_MAX = {CHAIN_ID_BYTES_MAX} bytes, is {}",
                self.chain_id.len()
            )));
        }
        let mut accounts = Vec::with_capacity(self.accounts.len());
        let mut total: u128 = 0;
        for (index, account) in self.accounts.iter().enumerate() {
            let field = format!("accounts[{index}]");
            let balance = amount(&format!("{field}.balance"), &account.balance)?;
            total = total.checked_add(balance).ok_or_else(|| {
                ChainError::Genesis("the balances add up to more than 2^128".into())
            })?;
            let address = address(&format!("{field}.address"), &account.address)?;
            if accounts.iter().any(|(seen, _)| *seen == address) {
                return Err(ChainError::Genesis(format!(
                    "{field}.address {} appears twice",
                    account.address
                )));
            }
            accounts.push((address, balance));
        }
        let deploy_allow_list = match &self.deploy_allow_list {
            None => None,
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(index, text)| address(&format!("deploy_allow_list[{index}]"), text))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let canonical = serde_json::to_vec(self).expect("genesis always serializes");
        Ok(ChainSpec {
            chain_id: self.chain_id.clone(),
            genesis_time_ms: self.genesis_time_ms,
            gas_price_min: amount("gas_price_min", &self.gas_price_min)?,
            accounts,
            deploy_allow_list,
            consensus: self
                .consensus
                .as_ref()
                .map(GenesisConsensus::parse)
                .transpose()?,
            genesis_hash: *blake3::hash(&canonical).as_bytes(),
        })
    }
}

impl ChainSpec {
    /// The state at height 0: balances and the genesis hash.
    pub fn genesis_writes(&self) -> stele_runtime::WriteSet {
        let mut writes = stele_runtime::WriteSet::new();
        for (address, balance) in &self.accounts {
            writes.insert(keys::balance(address), Some(encode_balance(*balance)));
        }
        writes.insert(
            chain_keys::GENESIS_HASH.to_vec(),
            Some(self.genesis_hash.to_vec()),
        );
        writes
    }

    /// Whether `account` may deploy or upgrade code.
    pub fn may_deploy(&self, account: &Address) -> bool {
        self.deploy_allow_list
            .as_ref()
            .is_none_or(|list| list.contains(account))
    }
}
