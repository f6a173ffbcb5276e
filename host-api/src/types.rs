//! ABI value types, encoded with borsh.

use alloc::vec::Vec;
use borsh::{BorshDeserialize, BorshSerialize};
use core::fmt;

use crate::limits::{ADDRESS_BYTES, HASH_BYTES, TOPIC_BYTES};

/// An account or contract address: 32 bytes.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; ADDRESS_BYTES]);

/// The BLAKE3 hash of a contract's original wasm code.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct CodeHash(pub [u8; HASH_BYTES]);

/// An event topic: 32 bytes, typically a hash or an address.
pub type Topic = [u8; TOPIC_BYTES];

/// An event emitted by a contract.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Event {
    /// The contract that emitted it.
    pub contract: Address,
    /// Indexed topics, at most `EVENT_TOPICS_MAX`.
    pub topics: Vec<Topic>,
    /// Free-form data, at most `EVENT_DATA_BYTES_MAX` bytes.
    pub data: Vec<u8>,
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl From<[u8; ADDRESS_BYTES]> for Address {
    fn from(bytes: [u8; ADDRESS_BYTES]) -> Self {
        Address(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn event_round_trips_through_borsh() {
        let event = Event {
            contract: Address([7; 32]),
            topics: alloc::vec![[1; 32]],
            data: alloc::vec![1, 2, 3],
        };
        let bytes = borsh::to_vec(&event).unwrap();
        assert_eq!(Event::try_from_slice(&bytes).unwrap(), event);
        assert_eq!(bytes.len(), 32 + 4 + 32 + 4 + 3);
    }

    #[test]
    fn address_displays_as_hex() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        assert!(Address(bytes).to_string().starts_with("ab00"));
        assert_eq!(Address(bytes).to_string().len(), 64);
    }
}
