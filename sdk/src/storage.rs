//! Storage collections: [`Item`], [`Map`], [`Vector`] and [`Set`].
//!
//! Each collection owns a key prefix (given by `#[contract]`: the field's
//! index) and costs one host call per access, whatever the collection's
//! size: values are encoded ([`crate::codec`], the borsh wire format) under
//! `prefix ‖ encode(key)`, never in a
//! tree the contract has to walk. Iteration goes in order of the encoded
//! keys and pages with a cursor, so a page costs one host call per entry.

use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::codec::{self, Decode, Encode};
use crate::env;

#[inline(always)]
fn decode<T: Decode>(bytes: &[u8]) -> T {
    match codec::from_slice(bytes) {
        Some(value) => value,
        None => undecodable(),
    }
}

// `read` and `write` are one copy per value type, shared by every
// collection holding that type. Their buffers are leaked rather than
// dropped: a contract's allocator never frees (each call runs in a fresh
// instance), so a drop is a call that does nothing, and leaving it out
// keeps its code out of every copy. (Outside wasm the host functions do
// not exist, so nothing reaches here.)

/// The value stored under `key`, decoded.
#[inline(never)]
fn read<T: Decode>(key: &[u8]) -> Option<T> {
    env::storage_read(key).map(|bytes| decode(bytes.leak()))
}

/// Stores `value` under `key`.
#[inline(never)]
fn write<T: Encode + ?Sized>(key: &[u8], value: &T) {
    env::storage_write(key, codec::to_vec(value).leak());
}

#[inline(never)]
fn undecodable() -> ! {
    env::abort("storage: stored value does not decode")
}

fn key_with(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut full = Vec::new();
    codec::reserve(&mut full, prefix.len() + key.len());
    codec::put(&mut full, prefix);
    codec::put(&mut full, key);
    full
}

/// One value under a fixed key, read when asked for.
pub struct Item<T> {
    key: &'static [u8],
    _value: PhantomData<T>,
}

impl<T: Encode + Decode> Item<T> {
    /// An item stored under `key`.
    pub const fn new(key: &'static [u8]) -> Self {
        Item {
            key,
            _value: PhantomData,
        }
    }

    /// The value, if set.
    pub fn get(&self) -> Option<T> {
        read(self.key)
    }

    /// The value; aborts with `message` if unset.
    pub fn expect(&self, message: &str) -> T {
        self.get().unwrap_or_else(|| env::abort(message))
    }

    /// Sets the value.
    pub fn set(&self, value: &T) {
        write(self.key, value);
    }

    /// Removes the value; returns whether it was set.
    pub fn remove(&self) -> bool {
        env::storage_remove(self.key)
    }

    /// Whether the value is set.
    pub fn exists(&self) -> bool {
        env::storage_has(self.key)
    }
}

/// A map from keys to values.
pub struct Map<K, V> {
    prefix: &'static [u8],
    _types: PhantomData<(K, V)>,
}

impl<K: Encode + Decode, V: Encode + Decode> Map<K, V> {
    /// A map stored under `prefix`.
    pub const fn new(prefix: &'static [u8]) -> Self {
        Map {
            prefix,
            _types: PhantomData,
        }
    }

    /// `prefix ‖ encode(key)`, leaked like `read`'s buffers.
    fn full_key(&self, key: &K) -> &'static [u8] {
        let mut full = codec::copy(self.prefix);
        key.encode(&mut full);
        full.leak()
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        read(self.full_key(key))
    }

    /// Sets the value under `key`.
    pub fn insert(&self, key: &K, value: &V) {
        write(self.full_key(key), value);
    }

    /// Removes the value under `key`; returns whether there was one.
    pub fn remove(&self, key: &K) -> bool {
        env::storage_remove(self.full_key(key))
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        env::storage_has(self.full_key(key))
    }

    /// Up to `limit` entries in key order, starting after `start_after`.
    pub fn page(&self, start_after: Option<&K>, limit: usize) -> Vec<(K, V)> {
        self.page_raw(&[], start_after.map(codec::to_vec), limit)
    }

    /// Up to `limit` entries whose encoded key starts with the encoding of
    /// `prefix` (for tuple keys `(A, B)`, pass an `A`), in key order, after
    /// `start_after`.
    pub fn page_prefix<P: Encode>(
        &self,
        prefix: &P,
        start_after: Option<&K>,
        limit: usize,
    ) -> Vec<(K, V)> {
        self.page_raw(
            &codec::to_vec(prefix),
            start_after.map(codec::to_vec),
            limit,
        )
    }

    fn page_raw(
        &self,
        sub_prefix: &[u8],
        start_after: Option<Vec<u8>>,
        limit: usize,
    ) -> Vec<(K, V)> {
        let prefix = key_with(self.prefix, sub_prefix);
        let mut start = match start_after {
            Some(mut after) => {
                codec::put(&mut after, &[0]);
                key_with(self.prefix, &after)
            }
            None => prefix.clone(),
        };
        let mut entries = Vec::new();
        while entries.len() < limit {
            let Some((key, value)) = env::storage_next(&prefix, &start) else {
                break;
            };
            // The host returns only keys under `prefix`.
            let Some((_, encoded_key)) = key.split_at_checked(self.prefix.len()) else {
                break;
            };
            codec::push(&mut entries, (decode(encoded_key), decode(&value)));
            start = key;
            codec::put(&mut start, &[0]);
        }
        entries
    }
}

/// A set of values.
pub struct Set<T> {
    map: Map<T, ()>,
}

impl<T: Encode + Decode> Set<T> {
    /// A set stored under `prefix`.
    pub const fn new(prefix: &'static [u8]) -> Self {
        Set {
            map: Map::new(prefix),
        }
    }

    /// Adds `value`.
    pub fn insert(&self, value: &T) {
        self.map.insert(value, &());
    }

    /// Removes `value`; returns whether it was there.
    pub fn remove(&self, value: &T) -> bool {
        self.map.remove(value)
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: &T) -> bool {
        self.map.contains_key(value)
    }

    /// Up to `limit` values in encoded order, after `start_after`.
    pub fn page(&self, start_after: Option<&T>, limit: usize) -> Vec<T> {
        self.map
            .page(start_after, limit)
            .into_iter()
            .map(|(value, ())| value)
            .collect()
    }

    /// Up to `limit` values whose encoding starts with `prefix`'s.
    pub fn page_prefix<P: Encode>(
        &self,
        prefix: &P,
        start_after: Option<&T>,
        limit: usize,
    ) -> Vec<T> {
        self.map
            .page_prefix(prefix, start_after, limit)
            .into_iter()
            .map(|(value, ())| value)
            .collect()
    }
}

/// A growable array: `len` under `prefix ‖ 0`, element `i` under
/// `prefix ‖ 1 ‖ i (u32, big-endian)` so that elements iterate in order.
pub struct Vector<T> {
    prefix: &'static [u8],
    _value: PhantomData<T>,
}

impl<T: Encode + Decode> Vector<T> {
    /// A vector stored under `prefix`.
    pub const fn new(prefix: &'static [u8]) -> Self {
        Vector {
            prefix,
            _value: PhantomData,
        }
    }

    fn len_key(&self) -> Vec<u8> {
        key_with(self.prefix, &[0])
    }

    fn element_key(&self, index: u32) -> Vec<u8> {
        let mut key = key_with(self.prefix, &[1]);
        codec::put(&mut key, &index.to_be_bytes());
        key
    }

    /// Number of elements.
    pub fn len(&self) -> u32 {
        read(&self.len_key()).unwrap_or(0)
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `index`.
    pub fn get(&self, index: u32) -> Option<T> {
        read(&self.element_key(index))
    }

    /// Appends `value`; returns its index.
    pub fn push(&self, value: &T) -> u32 {
        let len = self.len();
        write(&self.element_key(len), value);
        write(&self.len_key(), &(len + 1));
        len
    }

    /// Replaces element `index`; aborts if out of range.
    pub fn set(&self, index: u32, value: &T) {
        if index >= self.len() {
            env::abort("storage: vector index out of range");
        }
        write(&self.element_key(index), value);
    }

    /// Removes and returns the last element.
    pub fn pop(&self) -> Option<T> {
        let len = self.len();
        let last = len.checked_sub(1)?;
        let value = self.get(last);
        env::storage_remove(&self.element_key(last));
        write(&self.len_key(), &last);
        value
    }

    /// Up to `limit` elements from index `start`.
    pub fn page(&self, start: u32, limit: usize) -> Vec<T> {
        let prefix = key_with(self.prefix, &[1]);
        let mut cursor = self.element_key(start);
        let mut values = Vec::new();
        while values.len() < limit {
            let Some((key, value)) = env::storage_next(&prefix, &cursor) else {
                break;
            };
            codec::push(&mut values, decode(&value));
            cursor = key;
            codec::put(&mut cursor, &[0]);
        }
        values
    }
}
