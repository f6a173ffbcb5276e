//! The contract spec: what a contract's methods, events and errors look
//! like, embedded in its wasm as the custom section [`SPEC_SECTION`].
//!
//! The SDK writes one record per item (the contract, each method, event
//! and error enum); the linker concatenates them in any order. A record is
//! a little-endian `u32` length followed by a borsh-encoded [`SpecEntry`].
//! [`ContractSpec::parse`] reads them back, sorted, so the spec of a given
//! code is the same on every node.
//!
//! [`SPEC_SECTION`]: crate::abi::SPEC_SECTION

use alloc::string::String;
use alloc::vec::Vec;
use borsh::{BorshDeserialize, BorshSerialize};

/// How a method may be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum MethodKind {
    /// Runs once, at deployment.
    Init,
    /// Reads state only.
    View,
    /// May change state.
    Call,
    /// Runs after the contract upgraded its own code.
    Migrate,
}

/// A named, typed value: a method argument or an event field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Param {
    /// Rust name.
    pub name: String,
    /// Rust type, as written in the source.
    pub ty: String,
}

/// One callable method.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct MethodSpec {
    /// Export name (`init` and `migrate` for those kinds).
    pub name: String,
    /// How it may be called.
    pub kind: MethodKind,
    /// Arguments, borsh-encoded as a tuple in this order.
    pub args: Vec<Param>,
    /// The borsh-encoded return type (`()` for none).
    pub returns: String,
    /// The error enum it may fail with, if any.
    pub error: Option<String>,
    /// Its documentation.
    pub doc: String,
}

/// One event type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct EventSpec {
    /// Name; the first topic is the BLAKE3 hash of it.
    pub name: String,
    /// Fields marked as topics, in order, after the name topic.
    pub topics: Vec<Param>,
    /// The other fields, borsh-encoded in order as the event's data.
    pub data: Vec<Param>,
}

/// One error variant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct ErrorVariant {
    /// Stable numeric code.
    pub code: u32,
    /// Variant name.
    pub name: String,
    /// The message a caller receives.
    pub message: String,
}

/// An error enum.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct ErrorSpec {
    /// Enum name.
    pub name: String,
    /// Its variants.
    pub variants: Vec<ErrorVariant>,
}

/// One record of the spec section.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum SpecEntry {
    /// The contract's name.
    Contract(String),
    /// A method.
    Method(MethodSpec),
    /// An event.
    Event(EventSpec),
    /// An error enum.
    Error(ErrorSpec),
}

impl SpecEntry {
    /// The record as it sits in the section: length prefix and borsh.
    pub fn to_record(&self) -> Vec<u8> {
        let body = borsh::to_vec(self).expect("spec entries always encode");
        let mut record = Vec::with_capacity(4 + body.len());
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        record.extend_from_slice(&body);
        record
    }
}

/// A whole contract spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ContractSpec {
    /// The contract's name.
    pub name: String,
    /// Methods, sorted by name.
    pub methods: Vec<MethodSpec>,
    /// Events, sorted by name.
    pub events: Vec<EventSpec>,
    /// Error enums, sorted by name.
    pub errors: Vec<ErrorSpec>,
}

/// Why a spec section could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// Byte offset in the section.
    pub offset: usize,
}

impl core::fmt::Display for SpecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "malformed spec record at offset {}", self.offset)
    }
}

impl ContractSpec {
    /// Reads the concatenated records of a spec section.
    pub fn parse(mut section: &[u8]) -> Result<ContractSpec, SpecError> {
        let total = section.len();
        let mut spec = ContractSpec::default();
        while !section.is_empty() {
            let offset = total - section.len();
            let error = SpecError { offset };
            let len_bytes: [u8; 4] = section
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(error.clone())?;
            let len = u32::from_le_bytes(len_bytes) as usize;
            let body = section.get(4..4 + len).ok_or(error.clone())?;
            match SpecEntry::try_from_slice(body).map_err(|_| error)? {
                SpecEntry::Contract(name) => spec.name = name,
                SpecEntry::Method(method) => spec.methods.push(method),
                SpecEntry::Event(event) => spec.events.push(event),
                SpecEntry::Error(error) => spec.errors.push(error),
            }
            section = &section[4 + len..];
        }
        spec.methods.sort();
        spec.events.sort();
        spec.errors.sort();
        Ok(spec)
    }

    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.iter().find(|method| method.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn records_parse_back_in_any_order() {
        let method = SpecEntry::Method(MethodSpec {
            name: "transfer".to_string(),
            kind: MethodKind::Call,
            args: vec![Param {
                name: "to".to_string(),
                ty: "Address".to_string(),
            }],
            returns: "()".to_string(),
            error: None,
            doc: "Moves tokens.".to_string(),
        });
        let contract = SpecEntry::Contract("Token".to_string());
        let method_record = method.to_record();
        let section = [method_record.clone(), contract.to_record()].concat();
        let spec = ContractSpec::parse(&section).unwrap();
        assert_eq!(spec.name, "Token");
        assert_eq!(spec.method("transfer").unwrap().args[0].ty, "Address");
        // A cut record is reported at its own offset.
        let cut = ContractSpec::parse(&section[..section.len() - 1]).unwrap_err();
        assert_eq!(cut.offset, method_record.len());
    }
}
