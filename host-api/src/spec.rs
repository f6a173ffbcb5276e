//! The contract spec: what a contract's methods, events and errors look
//! like, embedded in its wasm as the custom section [`SPEC_SECTION`].
//!
//! The SDK writes one record per item (the contract, each method, event
//! and error enum); the linker concatenates them in any order.
//! [`ContractSpec::parse`] reads them back, sorted, so the spec of a given
//! code is the same on every node.
//!
//! The section ships inside every contract, so records are compact: a
//! record is its body's length then the body, and every length, count and
//! error code is a LEB128 varint (one byte for anything under 128) rather
//! than borsh's four bytes. A body is a tag (0 contract, 1 method, 2 event,
//! 3 error enum) and the entry's fields in declaration order: strings as
//! length and UTF-8, lists as count and items, `MethodKind` as one byte in
//! declaration order, `Option` as 0 or 1 then the value.
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
    /// The record as it sits in the section: body length, then body.
    pub fn to_record(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        let mut record = Vec::with_capacity(5 + body.len());
        put_len(&mut record, body.len());
        record.extend_from_slice(&body);
        record
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            SpecEntry::Contract(name) => {
                out.push(0);
                put_str(out, name);
            }
            SpecEntry::Method(method) => {
                out.push(1);
                put_str(out, &method.name);
                out.push(method.kind as u8);
                put_params(out, &method.args);
                put_str(out, &method.returns);
                match &method.error {
                    None => out.push(0),
                    Some(error) => {
                        out.push(1);
                        put_str(out, error);
                    }
                }
                put_str(out, &method.doc);
            }
            SpecEntry::Event(event) => {
                out.push(2);
                put_str(out, &event.name);
                put_params(out, &event.topics);
                put_params(out, &event.data);
            }
            SpecEntry::Error(error) => {
                out.push(3);
                put_str(out, &error.name);
                put_len(out, error.variants.len());
                for variant in &error.variants {
                    put_len(out, variant.code as usize);
                    put_str(out, &variant.name);
                    put_str(out, &variant.message);
                }
            }
        }
    }

    fn decode_body(input: &mut Reader<'_>) -> Option<SpecEntry> {
        Some(match input.byte()? {
            0 => SpecEntry::Contract(input.string()?),
            1 => SpecEntry::Method(MethodSpec {
                name: input.string()?,
                kind: match input.byte()? {
                    0 => MethodKind::Init,
                    1 => MethodKind::View,
                    2 => MethodKind::Call,
                    3 => MethodKind::Migrate,
                    _ => return None,
                },
                args: input.params()?,
                returns: input.string()?,
                error: match input.byte()? {
                    0 => None,
                    1 => Some(input.string()?),
                    _ => return None,
                },
                doc: input.string()?,
            }),
            2 => SpecEntry::Event(EventSpec {
                name: input.string()?,
                topics: input.params()?,
                data: input.params()?,
            }),
            3 => {
                let name = input.string()?;
                let count = input.len()?;
                let mut variants = Vec::new();
                for _ in 0..count {
                    variants.push(ErrorVariant {
                        code: u32::try_from(input.varint()?).ok()?,
                        name: input.string()?,
                        message: input.string()?,
                    });
                }
                SpecEntry::Error(ErrorSpec { name, variants })
            }
            _ => return None,
        })
    }
}

fn put_len(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn put_params(out: &mut Vec<u8>, params: &[Param]) {
    put_len(out, params.len());
    for param in params {
        put_str(out, &param.name);
        put_str(out, &param.ty);
    }
}

/// Reads record fields; every length is checked against what remains.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(byte)
    }

    /// A LEB128 varint of at most 32 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return (value <= u64::from(u32::MAX)).then_some(value);
            }
        }
        None
    }

    /// A length or count: no larger than the bytes left (every item takes
    /// at least one), so a hostile length allocates nothing.
    fn len(&mut self) -> Option<usize> {
        let len = usize::try_from(self.varint()?).ok()?;
        (len <= self.bytes.len()).then_some(len)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<String> {
        let len = self.len()?;
        core::str::from_utf8(self.take(len)?).ok().map(String::from)
    }

    fn params(&mut self) -> Option<Vec<Param>> {
        let count = self.len()?;
        let mut params = Vec::new();
        for _ in 0..count {
            params.push(Param {
                name: self.string()?,
                ty: self.string()?,
            });
        }
        Some(params)
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
    pub fn parse(section: &[u8]) -> Result<ContractSpec, SpecError> {
        let mut input = Reader { bytes: section };
        let mut spec = ContractSpec::default();
        while !input.bytes.is_empty() {
            let error = SpecError {
                offset: section.len() - input.bytes.len(),
            };
            let entry = input
                .len()
                .and_then(|len| input.take(len))
                .and_then(|body| {
                    let mut body = Reader { bytes: body };
                    let entry = SpecEntry::decode_body(&mut body)?;
                    body.bytes.is_empty().then_some(entry)
                })
                .ok_or(error)?;
            match entry {
                SpecEntry::Contract(name) => spec.name = name,
                SpecEntry::Method(method) => spec.methods.push(method),
                SpecEntry::Event(event) => spec.events.push(event),
                SpecEntry::Error(error) => spec.errors.push(error),
            }
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

    #[test]
    fn every_entry_kind_round_trips_compactly() {
        let entries = [
            SpecEntry::Contract("Token".to_string()),
            SpecEntry::Method(MethodSpec {
                name: "mint".to_string(),
                kind: MethodKind::Migrate,
                args: vec![Param {
                    name: "amount".to_string(),
                    ty: "u128".to_string(),
                }],
                returns: "Option<(Address, u128)>".to_string(),
                error: Some("TokenError".to_string()),
                doc: "x".repeat(300),
            }),
            SpecEntry::Event(EventSpec {
                name: "Transfer".to_string(),
                topics: vec![Param {
                    name: "from".to_string(),
                    ty: "Address".to_string(),
                }],
                data: vec![],
            }),
            SpecEntry::Error(ErrorSpec {
                name: "TokenError".to_string(),
                variants: vec![ErrorVariant {
                    code: 70_000,
                    name: "Overflow".to_string(),
                    message: "too much".to_string(),
                }],
            }),
        ];
        let section: Vec<u8> = entries.iter().flat_map(SpecEntry::to_record).collect();
        let spec = ContractSpec::parse(&section).unwrap();
        assert_eq!(spec.name, "Token");
        assert_eq!(SpecEntry::Method(spec.methods[0].clone()), entries[1]);
        assert_eq!(SpecEntry::Event(spec.events[0].clone()), entries[2]);
        assert_eq!(SpecEntry::Error(spec.errors[0].clone()), entries[3]);
        // One-byte lengths: the contract record is 1 + 1 + 1 + 5 bytes.
        assert_eq!(entries[0].to_record().len(), 8);
    }

    #[test]
    fn malformed_records_are_refused_at_their_offset() {
        let good = SpecEntry::Contract("Token".to_string()).to_record();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("length beyond the section", vec![9, 0, 1, b'a']),
            ("unknown tag", vec![2, 9, 0]),
            ("string beyond the record", vec![3, 0, 5, b'a']),
            ("trailing bytes in a record", vec![4, 0, 1, b'a', 7]),
            ("invalid UTF-8", vec![3, 0, 1, 0xff]),
            (
                "varint over 32 bits",
                vec![6, 0, 0xff, 0xff, 0xff, 0xff, 0x7f],
            ),
            ("unknown method kind", vec![4, 1, 0, 9, 0]),
        ];
        for (what, bad) in cases {
            let section = [good.clone(), bad].concat();
            let error = ContractSpec::parse(&section).unwrap_err();
            assert_eq!(error.offset, good.len(), "{what}");
        }
    }
}
