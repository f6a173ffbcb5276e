//! Typed events.
//!
//! `#[event]` on a struct implements [`Event`]: the first topic is the
//! BLAKE3 hash of the struct's name, then one topic per field marked
//! `#[topic]` (an `Address` or 32-byte array as is, anything else as the
//! hash of its borsh encoding), and the data is the borsh encoding of the
//! other fields, in order.

use alloc::vec::Vec;

/// An event a contract can emit with [`crate::env::emit`].
pub trait Event {
    /// The event's name.
    const NAME: &'static str;
    /// Its topics, the name's hash first.
    fn topics(&self) -> Vec<[u8; 32]>;
    /// Its data.
    fn data(&self) -> Vec<u8>;
    /// Emits it: what [`crate::env::emit`] does, with the topics and the
    /// data written into one buffer.
    fn publish(&self);
}

/// Turns a field marked `#[topic]` into a 32-byte topic.
pub trait Topic {
    /// The topic.
    fn to_topic(&self) -> [u8; 32];

    /// Appends the topic to `out`. (Types whose topic is their own 32
    /// bytes override it to append them directly: through `to_topic`'s
    /// copy the fungible token is 86 bytes larger.)
    fn put_topic(&self, out: &mut Vec<u8>) {
        crate::codec::put(out, &self.to_topic());
    }
}

impl Topic for crate::Address {
    fn to_topic(&self) -> [u8; 32] {
        self.0
    }

    fn put_topic(&self, out: &mut Vec<u8>) {
        crate::codec::put(out, &self.0);
    }
}

impl Topic for [u8; 32] {
    fn to_topic(&self) -> [u8; 32] {
        *self
    }

    fn put_topic(&self, out: &mut Vec<u8>) {
        crate::codec::put(out, self);
    }
}

/// Emits an event written as `topics` 32-byte topics followed by its data
/// (what [`Event::publish`] builds).
#[doc(hidden)]
pub fn publish_encoded(encoded: &[u8], topics: usize) {
    match topics
        .checked_mul(32)
        .and_then(|len| encoded.split_at_checked(len))
    {
        Some((topics, data)) => crate::env::emit_raw(topics.as_chunks().0, data),
        None => crate::env::abort("event: shorter than its topics"),
    }
}

macro_rules! hashed_topic {
    ($($ty:ty),*) => {$(
        impl Topic for $ty {
            fn to_topic(&self) -> [u8; 32] {
                crate::env::blake3(&crate::codec::to_vec(self))
            }
        }
    )*};
}
hashed_topic!(u8, u16, u32, u64, u128, i32, i64, alloc::string::String);
