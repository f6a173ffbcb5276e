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
