//! The SDK's value encoding: the borsh wire format, written for contract
//! size.
//!
//! Arguments, return values, stored values, event data and cross-contract
//! replies are all borsh bytes, so every borsh implementation (the node's
//! JSON encoder, the CLI, a client in another language) reads and writes
//! them. The `borsh` crate itself is not used inside contracts: its
//! decoder goes through an `io`-style reader and reports errors with
//! formatted text, which pulls `core::fmt` and a copy of the reading code
//! per type into every contract. Here a failure is just `None`, and a
//! caller turns it into one static abort message.
//!
//! The wire format, as borsh: integers little-endian (`usize` as `u64`),
//! `bool` as one byte 0 or 1, `Option` and enums as a one-byte tag then the
//! fields, `String`, `Vec` and maps as a `u32` length then the elements
//! (maps in ascending key order), fixed arrays and tuples as their elements
//! in order, structs as their fields in order. Decoding is strict: a value
//! must use every byte it is given ([`from_slice`]), a `bool` or tag must
//! be in range, text must be UTF-8, map keys must be strictly ascending, and
//! a length may not exceed the bytes that remain (so a hostile length never
//! allocates; a `Vec` of zero-sized values, which no contract needs, is
//! refused if non-empty).
//!
//! `#[data]` implements both traits for a contract's own structs and enums.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::{Address, CodeHash};

/// A value that can be written in the borsh wire format.
pub trait Encode {
    /// Appends the value's encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Appends the encoding of each of `items` (one copy for bytes).
    #[doc(hidden)]
    fn encode_all(items: &[Self], out: &mut Vec<u8>)
    where
        Self: Sized,
    {
        for item in items {
            item.encode(out);
        }
    }
}

/// A value that can be read from the borsh wire format.
pub trait Decode: Sized {
    /// Reads one value from the front of `input`; `None` if the bytes are
    /// not a valid encoding.
    fn decode(input: &mut Input<'_>) -> Option<Self>;

    /// Reads `len` values (one copy for bytes). `len` is at most the bytes
    /// left in `input`.
    #[doc(hidden)]
    fn decode_all(input: &mut Input<'_>, len: usize) -> Option<Vec<Self>> {
        // A length is checked against the bytes left, but an element can
        // take more room in memory than in the input: reserve no more than
        // 4 KiB up front and let a genuine long list grow.
        let mut items = Vec::with_capacity(len.min(4096 / core::mem::size_of::<Self>().max(1)));
        for _ in 0..len {
            items.push(Self::decode(input)?);
        }
        Some(items)
    }
}

/// The bytes still to be decoded.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// Input over `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    /// Bytes not read yet.
    pub const fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Takes the next `len` bytes, if there are that many.
    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.bytes.split_at_checked(len)?;
        self.bytes = tail;
        Some(head)
    }

    /// Takes the next `N` bytes as an array.
    #[inline(always)]
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Reads a `u32` length prefix that is no larger than what remains.
    pub fn length(&mut self) -> Option<usize> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        (len <= self.remaining()).then_some(len)
    }
}

/// The encoding of `value`.
#[inline(always)]
pub fn to_vec<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes `bytes` as one `T`; `None` unless they are exactly one valid
/// encoding.
#[inline(always)]
pub fn from_slice<T: Decode>(bytes: &[u8]) -> Option<T> {
    let mut input = Input::new(bytes);
    let value = T::decode(&mut input)?;
    (input.remaining() == 0).then_some(value)
}

macro_rules! integers {
    ($($ty:ty),*) => {$(
        impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }

        impl Decode for $ty {
            fn decode(input: &mut Input<'_>) -> Option<Self> {
                Some(<$ty>::from_le_bytes(input.array()?))
            }
        }
    )*};
}
integers!(u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl Encode for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }

    fn encode_all(items: &[Self], out: &mut Vec<u8>) {
        out.extend_from_slice(items);
    }
}

impl Decode for u8 {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let [byte] = input.array()?;
        Some(byte)
    }

    fn decode_all(input: &mut Input<'_>, len: usize) -> Option<Vec<Self>> {
        Some(input.take(len)?.to_vec())
    }
}

impl Encode for usize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
}

impl Decode for usize {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        usize::try_from(u64::decode(input)?).ok()
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        match u8::decode(input)? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl Encode for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
}

impl Decode for () {
    fn decode(_input: &mut Input<'_>) -> Option<Self> {
        Some(())
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_bytes().encode(out);
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
    }
}

impl Decode for String {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let len = input.length()?;
        let bytes = input.take(len)?;
        if !is_utf8(bytes) {
            return None;
        }
        // SAFETY: just checked.
        Some(unsafe { String::from_utf8_unchecked(bytes.to_vec()) })
    }
}

/// Whether `bytes` are UTF-8 (RFC 3629: shortest forms only, no
/// surrogates, nothing above U+10FFFF) — exactly what
/// `core::str::from_utf8` accepts, in a tenth of its code: `core`'s version
/// is built for speed on long text and brings a 256-byte table, about 1 KB
/// in every contract that reads a string.
pub fn is_utf8(mut bytes: &[u8]) -> bool {
    while let Some((&first, rest)) = bytes.split_first() {
        bytes = rest;
        let (extra, min) = match first {
            0x00..=0x7f => continue,
            0xc2..=0xdf => (1, 0x80),
            0xe0..=0xef => (2, 0x800),
            0xf0..=0xf4 => (3, 0x1_0000),
            _ => return false,
        };
        let Some((tail, rest)) = bytes.split_at_checked(extra) else {
            return false;
        };
        bytes = rest;
        let mut code = u32::from(first) & (0x3f >> extra);
        for &byte in tail {
            if byte & 0xc0 != 0x80 {
                return false;
            }
            code = (code << 6) | u32::from(byte & 0x3f);
        }
        if code < min || code > 0x10_ffff || (0xd800..=0xdfff).contains(&code) {
            return false;
        }
    }
    true
}

fn encode_length(len: usize, out: &mut Vec<u8>) {
    // Nothing a contract holds reaches 4 GiB: wasm32 memory ends there.
    (len as u32).encode(out);
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        T::encode_all(self, out);
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_slice().encode(out);
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let len = input.length()?;
        if len > 0 && core::mem::size_of::<T>() == 0 {
            return None;
        }
        T::decode_all(input, len)
    }
}

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        T::encode_all(self, out);
    }
}

impl<T: Decode, const N: usize> Decode for [T; N] {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        if N > input.remaining() {
            return None;
        }
        T::decode_all(input, N)?.try_into().ok()
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        match u8::decode(input)? {
            0 => Some(None),
            1 => Some(Some(T::decode(input)?)),
            _ => None,
        }
    }
}

impl<T: Encode, E: Encode> Encode for Result<T, E> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Err(error) => {
                out.push(0);
                error.encode(out);
            }
            Ok(value) => {
                out.push(1);
                value.encode(out);
            }
        }
    }
}

impl<T: Decode, E: Decode> Decode for Result<T, E> {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        match u8::decode(input)? {
            0 => Some(Err(E::decode(input)?)),
            1 => Some(Ok(T::decode(input)?)),
            _ => None,
        }
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: Encode + ?Sized> Encode for Box<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: Decode> Decode for Box<T> {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        T::decode(input).map(Box::new)
    }
}

impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for (key, value) in self {
            key.encode(out);
            value.encode(out);
        }
    }
}

impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let len = input.length()?;
        let mut map = BTreeMap::new();
        for _ in 0..len {
            let key = K::decode(input)?;
            if map.last_key_value().is_some_and(|(last, _)| *last >= key) {
                return None;
            }
            map.insert(key, V::decode(input)?);
        }
        Some(map)
    }
}

impl<T: Encode> Encode for BTreeSet<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for item in self {
            item.encode(out);
        }
    }
}

impl<T: Decode + Ord> Decode for BTreeSet<T> {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let len = input.length()?;
        let mut set = BTreeSet::new();
        for _ in 0..len {
            let item = T::decode(input)?;
            if set.last().is_some_and(|last| *last >= item) {
                return None;
            }
            set.insert(item);
        }
        Some(set)
    }
}

macro_rules! tuples {
    ($(($($name:ident),+))*) => {$(
        impl<$($name: Encode),+> Encode for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }
        }

        impl<$($name: Decode),+> Decode for ($($name,)+) {
            fn decode(input: &mut Input<'_>) -> Option<Self> {
                Some(($($name::decode(input)?,)+))
            }
        }
    )*};
}
tuples! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
    (A, B, C, D, E, F, G)
    (A, B, C, D, E, F, G, H)
}

macro_rules! hashes {
    ($($ty:ident),*) => {$(
        impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
        }

        impl Decode for $ty {
            fn decode(input: &mut Input<'_>) -> Option<Self> {
                Some($ty(input.array()?))
            }
        }
    )*};
}
hashes!(Address, CodeHash);
