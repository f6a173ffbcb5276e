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
//!
//! Buffers grow through [`put`], [`push`], [`copy`] and [`string`] rather than `Vec`'s
//! own `push`, `extend_from_slice` and `to_vec`: those reach `alloc`'s
//! allocation-failure handler, which formats the failed size with
//! `core::fmt` (about 3 KB in every contract, and stable Rust cannot
//! replace the handler). Here a failed allocation aborts the call with the
//! static message "out of memory". Hand-written `Encode` impls should use
//! them too.

use alloc::alloc::Layout;
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
        let mut items = Vec::new();
        reserve(
            &mut items,
            len.min(4096 / core::mem::size_of::<Self>().max(1)),
        );
        for _ in 0..len {
            push(&mut items, Self::decode(input)?);
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
                put(out, &self.to_le_bytes());
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
        put(out, &[*self]);
    }

    fn encode_all(items: &[Self], out: &mut Vec<u8>) {
        put(out, items);
    }
}

impl Decode for u8 {
    fn decode(input: &mut Input<'_>) -> Option<Self> {
        let [byte] = input.array()?;
        Some(byte)
    }

    fn decode_all(input: &mut Input<'_>, len: usize) -> Option<Vec<Self>> {
        Some(copy(input.take(len)?))
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
        put(out, &[u8::from(*self)]);
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
        Some(unsafe { String::from_utf8_unchecked(copy(bytes)) })
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
            None => put(out, &[0]),
            Some(value) => {
                put(out, &[1]);
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
                put(out, &[0]);
                error.encode(out);
            }
            Ok(value) => {
                put(out, &[1]);
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
                put(out, &self.0);
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

/// Appends `bytes` to `out` (what `out.extend_from_slice(bytes)` does,
/// without `alloc`'s growth and failure code).
pub fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    reserve(out, bytes.len());
    let len = out.len();
    // SAFETY: `reserve` made room for `bytes` after the first `len` bytes,
    // and `bytes` cannot overlap `out`'s spare capacity.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().add(len), bytes.len());
        out.set_len(len + bytes.len());
    }
}

/// Appends `item` to `items` (what `items.push(item)` does, without
/// `alloc`'s growth and failure code).
pub fn push<T>(items: &mut Vec<T>, item: T) {
    reserve(items, 1);
    let len = items.len();
    // SAFETY: `reserve` made room for one more element.
    unsafe {
        items.as_mut_ptr().add(len).write(item);
        items.set_len(len + 1);
    }
}

/// A vector holding a copy of `bytes` (what `bytes.to_vec()` does, without
/// `alloc`'s failure code).
pub fn copy(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, bytes);
    out
}

/// A `String` holding a copy of `text` (what `String::from(text)` does,
/// without `alloc`'s failure code).
pub fn string(text: &str) -> String {
    // SAFETY: a copy of a `str` is UTF-8.
    unsafe { String::from_utf8_unchecked(copy(text.as_bytes())) }
}

/// Makes room for `extra` more elements in `items`, at least doubling its
/// capacity when it grows.
pub fn reserve<T>(items: &mut Vec<T>, extra: usize) {
    // (Wrapping, not checked: the length never exceeds the capacity, and
    // a panic path would bring its location text into every contract.)
    let spare = items.capacity().wrapping_sub(items.len());
    if extra > spare {
        grow(items, extra);
    }
}

#[inline(never)]
fn grow<T>(items: &mut Vec<T>, extra: usize) {
    // A zero-sized `T` never gets here: its capacity is `usize::MAX`.
    let size = core::mem::size_of::<T>();
    let align = core::mem::align_of::<T>();
    let old_capacity = items.capacity();
    let capacity = items
        .len()
        .checked_add(extra)
        .map(|needed| needed.max(old_capacity.saturating_mul(2)).max(8));
    let layout = capacity
        .and_then(|capacity| capacity.checked_mul(size))
        .and_then(|bytes| Layout::from_size_align(bytes, align).ok());
    let (Some(capacity), Some(layout)) = (capacity, layout) else {
        out_of_memory()
    };
    let mut old = core::mem::ManuallyDrop::new(core::mem::take(items));
    // SAFETY: a non-zero capacity was allocated by the global allocator
    // with `old_capacity * size` bytes at `align` (the `Vec` contract, so
    // the product does not overflow);
    // `layout` is non-zero-sized (capacity ≥ 8, size > 0).
    let pointer = unsafe {
        if old_capacity == 0 {
            alloc::alloc::alloc(layout)
        } else {
            alloc::alloc::realloc(
                old.as_mut_ptr().cast(),
                Layout::from_size_align_unchecked(old_capacity.wrapping_mul(size), align),
                layout.size(),
            )
        }
    };
    if pointer.is_null() {
        out_of_memory();
    }
    // SAFETY: `pointer` holds `capacity` elements' worth of bytes from the
    // global allocator at `T`'s alignment, the first `len` of them moved
    // from the old buffer, which is no longer used.
    *items = unsafe { Vec::from_raw_parts(pointer.cast(), old.len(), capacity) };
}

#[cold]
fn out_of_memory() -> ! {
    #[cfg(target_arch = "wasm32")]
    crate::env::abort("out of memory");
    #[cfg(not(target_arch = "wasm32"))]
    panic!("out of memory");
}
