//! The storage seam: what the runtime needs from state, and the key layout
//! it keeps there.
//!
//! The runtime only *reads* through [`Storage`]; every write of a call is
//! buffered in the runtime's own overlay and handed back as a [`WriteSet`]
//! in the outcome, for the caller to apply (or drop). A node backs
//! [`Storage`] with its state store plus the overlay of the block being
//! executed; tests use [`MemoryStorage`].

use std::collections::BTreeMap;

use stele_host_api::limits::AMOUNT_BYTES;
use stele_host_api::{Address, CodeHash};
use thiserror::Error;

/// The writes of one call: key → new value, or `None` for a removal.
/// Ordered by key, so applying it is deterministic.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A failure of the storage backend (I/O, corruption). It is a host fault:
/// the call's outcome must not be committed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("storage backend failed: {0}")]
pub struct StorageError(pub String);

/// Read access to state, as the runtime needs it.
pub trait Storage {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// The first entry whose key is `>= start` and starts with `prefix`.
    fn next(&self, start: &[u8], prefix: &[u8])
    -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError>;
}

/// An in-memory [`Storage`] for tests, benchmarks and the testkit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryStorage {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a call's writes.
    pub fn apply(&mut self, writes: &WriteSet) {
        for (key, value) in writes {
            match value {
                Some(value) => self.entries.insert(key.clone(), value.clone()),
                None => self.entries.remove(key),
            };
        }
    }

    /// Sets one raw entry (for genesis-like setup in tests).
    pub fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, value);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.entries.iter()
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.entries.get(key).cloned())
    }

    fn next(
        &self,
        start: &[u8],
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        let start = start.max(prefix);
        Ok(self
            .entries
            .range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .next()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone())))
    }
}

/// Where the runtime keeps its data in the key space. Other layers (the
/// chain's nonces, blocks, ...) must use first bytes of
/// [`keys::FOREIGN_PREFIX_MIN`] and above.
pub mod keys {
    use super::*;

    /// `0x00 ‖ address` → native balance, 16-byte little-endian `u128`.
    pub const BALANCE_PREFIX: u8 = 0x00;
    /// `0x01 ‖ address` → the contract's code hash (32 bytes).
    pub const CONTRACT_PREFIX: u8 = 0x01;
    /// `0x02 ‖ code hash` → original wasm code.
    pub const CODE_PREFIX: u8 = 0x02;
    /// `0x03 ‖ address ‖ key` → a contract's own storage.
    pub const CONTRACT_STORAGE_PREFIX: u8 = 0x03;
    /// Smallest first byte the runtime never uses.
    pub const FOREIGN_PREFIX_MIN: u8 = 0x80;

    fn with_prefix(prefix: u8, body: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + body.len());
        key.push(prefix);
        key.extend_from_slice(body);
        key
    }

    /// Key of an account's native balance.
    pub fn balance(address: &Address) -> Vec<u8> {
        with_prefix(BALANCE_PREFIX, &address.0)
    }

    /// Key of the code hash deployed at `address`.
    pub fn contract(address: &Address) -> Vec<u8> {
        with_prefix(CONTRACT_PREFIX, &address.0)
    }

    /// Key of the code with hash `code_hash`.
    pub fn code(code_hash: &CodeHash) -> Vec<u8> {
        with_prefix(CODE_PREFIX, &code_hash.0)
    }

    /// Key of `key` in the storage of contract `address`.
    pub fn contract_storage(address: &Address, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(1 + address.0.len() + key.len());
        full.push(CONTRACT_STORAGE_PREFIX);
        full.extend_from_slice(&address.0);
        full.extend_from_slice(key);
        full
    }

    /// Length of the part of a contract-storage key before the contract's
    /// own key.
    pub const CONTRACT_STORAGE_HEADER_BYTES: usize = 1 + stele_host_api::limits::ADDRESS_BYTES;
}

/// Encodes a native balance as stored.
pub fn encode_balance(amount: u128) -> Vec<u8> {
    amount.to_le_bytes().to_vec()
}

/// Decodes a stored native balance; a value of the wrong size is a corrupt
/// state, reported as a storage error.
pub fn decode_balance(bytes: &[u8]) -> Result<u128, StorageError> {
    let bytes: [u8; AMOUNT_BYTES] = bytes.try_into().map_err(|_| {
        StorageError(format!(
            "balance entry has {} bytes, expected 16",
            bytes.len()
        ))
    })?;
    Ok(u128::from_le_bytes(bytes))
}

/// Reads an account's native balance (0 when absent).
pub fn balance_of(storage: &dyn Storage, address: &Address) -> Result<u128, StorageError> {
    match storage.get(&keys::balance(address))? {
        Some(bytes) => decode_balance(&bytes),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_respects_start_and_prefix() {
        let mut storage = MemoryStorage::new();
        for key in [&b"a1"[..], b"b1", b"b2", b"c1"] {
            storage.insert(key.to_vec(), key.to_vec());
        }
        let first = storage.next(b"", b"b").unwrap().unwrap();
        assert_eq!(first.0, b"b1");
        let second = storage.next(b"b1\0", b"b").unwrap().unwrap();
        assert_eq!(second.0, b"b2");
        assert_eq!(storage.next(b"b2\0", b"b").unwrap(), None);
        assert_eq!(storage.next(b"z", b"").unwrap(), None);
    }

    #[test]
    fn balances_round_trip_and_reject_bad_sizes() {
        assert_eq!(
            decode_balance(&encode_balance(u128::MAX)).unwrap(),
            u128::MAX
        );
        assert!(
            decode_balance(&[1, 2, 3])
                .unwrap_err()
                .0
                .contains("3 bytes")
        );
    }
}
