//! The authenticated tree: a sparse Merkle tree over BLAKE3-hashed keys.
//!
//! Conceptually a binary tree of depth 256 indexed by the bits of
//! `blake3(key)`. It is stored as 16-ary nodes, each holding the four
//! binary levels below it, and *compressed*: a key's leaf sits at the
//! shallowest node where no other key shares its prefix, and a node left
//! with a single leaf collapses into its parent. That shape depends only on
//! the set of keys, so the root does not depend on insertion order or
//! batching.
//!
//! Hashing is domain-separated by BLAKE3 keys, so that each hash of a pair
//! is one 64-byte block, one compression:
//! * leaf: `keyed_blake3(LEAF_KEY, key_hash ‖ value_hash)`, with
//!   `value_hash = blake3(value)`;
//! * internal: `keyed_blake3(INTERNAL_KEY, left ‖ right)`, except that two
//!   empty children give [`EMPTY`], the constant for empty subtrees.
//!
//! Nodes are immutable and versioned: an update writes new nodes under the
//! new version and reports the nodes it replaced as stale, so older
//! versions stay readable until they are pruned.

use std::sync::{Arc, Mutex};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// The hash of an empty subtree.
pub const EMPTY: Hash = [0; 32];

/// Nibbles (4-bit steps) in a key hash: the deepest a node can be.
pub const DEPTH_NIBBLES_MAX: usize = 64;

/// Hash of a key, which decides its position.
pub fn key_hash(key: &[u8]) -> Hash {
    *blake3::hash(key).as_bytes()
}

/// Hash of a value, which its leaf commits to.
pub fn value_hash(value: &[u8]) -> Hash {
    *blake3::hash(value).as_bytes()
}

/// BLAKE3 key of leaf hashes: `blake3::derive_key("stele state tree v2 leaf", b"")`.
pub const LEAF_KEY: Hash = [
    0x2c, 0x2e, 0xdf, 0x19, 0x76, 0xba, 0xd7, 0x03, 0x1c, 0x5f, 0xff, 0xc1, 0x3f, 0x6e, 0x30, 0x56,
    0xbb, 0x4b, 0xdf, 0x6b, 0x0b, 0x67, 0x47, 0xb3, 0xcf, 0x08, 0xf7, 0xb9, 0x35, 0x28, 0xef, 0x47,
];

/// BLAKE3 key of internal hashes: `blake3::derive_key("stele state tree v2
/// internal", b"")`.
pub const INTERNAL_KEY: Hash = [
    0x00, 0x74, 0x05, 0xee, 0x5b, 0xea, 0xa5, 0x7e, 0xa0, 0xfa, 0xa2, 0x2a, 0xc5, 0x3d, 0x1f, 0x63,
    0x39, 0x6c, 0xf8, 0x1f, 0x13, 0xb9, 0x87, 0x14, 0x5d, 0x9e, 0x71, 0xc3, 0xbc, 0x29, 0xfc, 0x74,
];

/// Hash of a leaf: keyed BLAKE3 of `key_hash ‖ value_hash` under
/// [`LEAF_KEY`].
pub fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    keyed_pair(&LEAF_KEY, key_hash, value_hash)
}

/// Keyed BLAKE3 of `left ‖ right`: 64 bytes, one block, one compression.
/// The key separates the domains (leaf, internal).
fn keyed_pair(key: &Hash, left: &Hash, right: &Hash) -> Hash {
    let mut input = [0u8; 64];
    input[..32].copy_from_slice(left);
    input[32..].copy_from_slice(right);
    *blake3::keyed_hash(key, &input).as_bytes()
}

/// Hash of an internal binary node: keyed BLAKE3 of `left ‖ right` under
/// [`INTERNAL_KEY`], except that two empty children give [`EMPTY`].
pub fn internal_hash(left: &Hash, right: &Hash) -> Hash {
    if *left == EMPTY && *right == EMPTY {
        return EMPTY;
    }
    keyed_pair(&INTERNAL_KEY, left, right)
}

/// The `depth`-th nibble of a key hash.
pub fn nibble(hash: &Hash, depth: usize) -> u8 {
    let byte = hash[depth / 2];
    if depth.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

/// The `idx`-th bit of a key hash, most significant first.
pub fn bit(hash: &Hash, idx: usize) -> bool {
    hash[idx / 8] & (0x80 >> (idx % 8)) != 0
}

/// A child slot of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Child {
    /// A key, stored in its parent.
    Leaf {
        /// `blake3(key)`.
        key_hash: Hash,
        /// `blake3(value)`.
        value_hash: Hash,
        /// `leaf_hash(key_hash, value_hash)`, computed once (not stored).
        leaf_hash: Hash,
    },
    /// A node written at `version`.
    Node {
        /// Its hash.
        hash: Hash,
        /// The version it was written at (part of its storage key).
        version: u64,
    },
}

impl Child {
    /// A leaf, with its hash computed once.
    pub fn leaf(key_hash: Hash, value_hash: Hash) -> Child {
        let leaf_hash = leaf_hash(&key_hash, &value_hash);
        Child::Leaf {
            key_hash,
            value_hash,
            leaf_hash,
        }
    }

    /// Bytes of the child in [`Node::encode`] for a node written at
    /// `version`: a leaf's two hashes, or a node's hash and age.
    fn encoded_len(&self, version: u64) -> usize {
        match self {
            Child::Leaf { .. } => 64,
            Child::Node { version: child, .. } => 32 + varint_len(age(*child, version)),
        }
    }

    /// The hash this child contributes to its parent.
    pub fn hash(&self) -> Hash {
        match self {
            Child::Leaf { leaf_hash, .. } => *leaf_hash,
            Child::Node { hash, .. } => *hash,
        }
    }
}

/// How many versions older than its parent, written at `version`, a child
/// node written at `child` is, as [`Node::encode`] stores it.
fn age(child: u64, version: u64) -> u64 {
    version
        .checked_sub(child)
        .expect("a child is never newer than its node")
}

/// A 16-ary node: four binary levels.
///
/// Equality compares the children and the chain, not the hashes the tree's
/// updater keeps.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Children by nibble. (The tree's updater changes them through
    /// `Node::set`, which marks what [`Node::rehash`] recomputes; the
    /// hashes [`Node::hash`] and [`Node::siblings`] give are computed from
    /// the children each time.)
    pub children: [Option<Child>; 16],
    /// The stored entries the node is assembled from (not hashed, not
    /// encoded): decides how its next version is stored.
    pub chain: Chain,
    /// Slots an update changed since the node was loaded or stored: what a
    /// delta of its next version holds, and the hashes above them are what
    /// [`Node::rehash`] recomputes.
    dirty: u16,
    /// Those of the `dirty` slots that hold a leaf of the same key as when
    /// the node was loaded or stored, only its value changed: a delta
    /// stores just their value hashes.
    kept: u16,
    /// The node's fifteen binary hashes above its slots, as a heap (0 the
    /// node's hash, 1 and 2 below it, ..., 7 to 14 the pairs of slots),
    /// when `inner_valid`: kept by [`Node::rehash`] so that an update of a
    /// few slots rehashes only their paths (4 compressions a slot, not 15).
    inner: [Hash; 15],
    inner_valid: bool,
}

/// Most stored entries a node is assembled from: one whole encoding and
/// the deltas written over it since.
pub const CHAIN_ENTRIES_MAX: usize = 20;

/// How a node is stored: the versions of the entries at its path that make
/// it up — one whole encoding ([`StoredNode::Whole`]), then the deltas over
/// it ([`StoredNode::Delta`]), oldest first, the last one the node's own —
/// and the bytes of those deltas.
///
/// A node whose update changed few slots is stored as a delta (the changed
/// slots, a leaf that keeps its key by its new value hash alone, and the
/// version of the entry below it) while the delta is at most half the
/// whole encoding, the chain stays within [`CHAIN_ENTRIES_MAX`] entries and
/// its deltas within three times the node's whole encoding; otherwise
/// whole, which ends the chain: every entry of the old chain is then stale.
/// So a block that changes one leaf's value in a node with fifteen children
/// writes some 45 bytes, not 500, and a read from disk is at most
/// [`CHAIN_ENTRIES_MAX`] gets and about four times the node's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    versions: [u64; CHAIN_ENTRIES_MAX],
    len: u8,
    delta_bytes: u32,
}

impl Chain {
    /// The chain of a node stored whole at `version`.
    pub fn whole(version: u64) -> Chain {
        let mut versions = [0; CHAIN_ENTRIES_MAX];
        versions[0] = version;
        Chain {
            versions,
            len: 1,
            delta_bytes: 0,
        }
    }

    /// This chain with a delta of `bytes` bytes stored at `version` on
    /// top; `None` if the chain is already [`CHAIN_ENTRIES_MAX`] long, or
    /// empty, or `version` is not above its last entry.
    pub fn then(&self, version: u64, bytes: usize) -> Option<Chain> {
        let len = self.len as usize;
        if len == 0 || len >= CHAIN_ENTRIES_MAX || version <= self.versions[len - 1] {
            return None;
        }
        let mut chain = *self;
        chain.versions[len] = version;
        chain.len += 1;
        chain.delta_bytes = self
            .delta_bytes
            .saturating_add(bytes.min(u32::MAX as usize) as u32);
        Some(chain)
    }

    /// Versions of the entries, the whole one first (empty for a node
    /// never stored).
    pub fn versions(&self) -> &[u64] {
        &self.versions[..self.len as usize]
    }

    /// Bytes of the chain's deltas.
    pub fn delta_bytes(&self) -> usize {
        self.delta_bytes as usize
    }
}

/// A node's stored entry, as [`StoredNode::decode`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredNode {
    /// The whole node.
    Whole(Node),
    /// The slots that changed since the entry at the same path written at
    /// `base`.
    Delta {
        /// The version of the entry below.
        base: u64,
        /// The changed slots (a bit per nibble, lowest first).
        changed: u16,
        /// Those of them whose leaf keeps its key, with a new value.
        kept: u16,
        /// The new contents of the changed slots outside `kept` (the
        /// others are empty).
        slots: Node,
        /// The new value hashes of the `kept` leaves, in slot order.
        values: Vec<Hash>,
    },
}

/// Rebuilds the node at `key` from its stored entries: its own, and if
/// that is a delta, the entries below it down to a whole one. `entry`
/// fetches the entry at a key (an error if it is missing); an entry that
/// does not decode, or a chain longer than [`CHAIN_ENTRIES_MAX`], is
/// `Err(corrupt(what))`.
pub fn assemble<B, E>(
    key: &NodeKey,
    mut entry: impl FnMut(&NodeKey) -> Result<B, E>,
    corrupt: impl Fn(String) -> E,
) -> Result<Node, E>
where
    B: AsRef<[u8]>,
{
    let mut deltas = Vec::new();
    let mut at = *key;
    let mut node = loop {
        let bytes = entry(&at)?;
        let bytes = bytes.as_ref();
        match StoredNode::decode(bytes, at.version) {
            Some(StoredNode::Whole(node)) => break node,
            Some(StoredNode::Delta {
                base,
                changed,
                kept,
                slots,
                values,
            }) if deltas.len() + 1 < CHAIN_ENTRIES_MAX => {
                deltas.push((at.version, bytes.len(), changed, kept, slots, values));
                at.version = base;
            }
            Some(StoredNode::Delta { .. }) => {
                return Err(corrupt(format!(
                    "tree node {key:?} is more than {CHAIN_ENTRIES_MAX} entries deep"
                )));
            }
            None => return Err(corrupt(format!("tree node {at:?}"))),
        }
    };
    let mut chain = Chain::whole(at.version);
    for (version, len, changed, kept, slots, values) in deltas.into_iter().rev() {
        node.apply_delta(changed, kept, slots, &values)
            .ok_or_else(|| {
                corrupt(format!(
                    "tree node {:?}: a kept leaf over an empty or node slot",
                    NodeKey { version, ..*key }
                ))
            })?;
        chain = chain
            .then(version, len)
            .expect("within the bound, versions increasing");
    }
    node.chain = chain;
    Ok(node)
}

const STORED_WHOLE: u8 = 0;
const STORED_DELTA: u8 = 1;
const STORED_DELTA_KEPT: u8 = 2;

impl StoredNode {
    /// Decodes an entry of a node written at `version`: a tag byte, then
    /// for a whole node (tag 0) [`Node::encode`]; for a delta (tag 1), how
    /// many versions below `version` its base is (LEB128, at least 1), the
    /// changed-slot bitmap (big-endian) and [`Node::encode`] of the changed
    /// slots alone; for a delta with kept leaves (tag 2), the same with the
    /// kept-slot bitmap after the changed one, [`Node::encode`] of the other
    /// changed slots, and the kept leaves' value hashes. `None` unless it
    /// is exactly what [`Node::encode_stored`] writes.
    pub fn decode(bytes: &[u8], version: u64) -> Option<StoredNode> {
        let (tag, mut rest) = bytes.split_first()?;
        match *tag {
            STORED_WHOLE => Node::decode(rest, version).map(StoredNode::Whole),
            STORED_DELTA | STORED_DELTA_KEPT => {
                let age = take_varint(&mut rest)?;
                let base = version.checked_sub(age).filter(|_| age > 0)?;
                let (changed, mut rest) = rest.split_first_chunk::<2>()?;
                let changed = u16::from_be_bytes(*changed);
                let mut kept = 0;
                if *tag == STORED_DELTA_KEPT {
                    let (bitmap, tail) = rest.split_first_chunk::<2>()?;
                    kept = u16::from_be_bytes(*bitmap);
                    rest = tail;
                    if kept == 0 || kept & !changed != 0 {
                        return None;
                    }
                }
                let values_len = 32 * kept.count_ones() as usize;
                let (rest, values) = rest.split_at(rest.len().checked_sub(values_len)?);
                let slots = Node::decode(rest, version)?;
                let outside = slots
                    .children
                    .iter()
                    .enumerate()
                    .any(|(idx, child)| child.is_some() && (changed & !kept) & (1 << idx) == 0);
                let values = values
                    .chunks_exact(32)
                    .map(|hash| hash.try_into().expect("32 bytes"))
                    .collect();
                (changed != 0 && !outside).then_some(StoredNode::Delta {
                    base,
                    changed,
                    kept,
                    slots,
                    values,
                })
            }
            _ => None,
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.children == other.children && self.chain == other.chain
    }
}

impl Eq for Node {}

impl Node {
    fn slot_hashes(&self) -> [Hash; 16] {
        std::array::from_fn(|idx| self.children[idx].as_ref().map_or(EMPTY, Child::hash))
    }

    /// The node's hash: the root of its four binary levels.
    pub fn hash(&self) -> Hash {
        let mut level = self.slot_hashes();
        let mut width = 16;
        while width > 1 {
            width /= 2;
            for idx in 0..width {
                level[idx] = internal_hash(&level[2 * idx], &level[2 * idx + 1]);
            }
        }
        level[0]
    }

    /// [`Node::hash`], recomputing only the binary hashes above the slots
    /// changed since the last call (all of them the first time), and
    /// keeping them for the next.
    pub fn rehash(&mut self) -> Hash {
        let mut below = if self.inner_valid {
            self.dirty
        } else {
            u16::MAX
        };
        let slots = self.slot_hashes();
        // Levels of the heap from the bottom: where each starts and how
        // wide it is; the level below starts at `2 * start + 1`.
        for (start, width) in [(7, 8), (3, 4), (1, 2), (0, 1)] {
            let mut changed = 0u16;
            for idx in 0..width {
                if below & (0b11 << (2 * idx)) == 0 {
                    continue;
                }
                let (left, right) = if start == 7 {
                    (&slots[2 * idx], &slots[2 * idx + 1])
                } else {
                    let child = 2 * (start + idx) + 1;
                    (&self.inner[child], &self.inner[child + 1])
                };
                self.inner[start + idx] = internal_hash(left, right);
                changed |= 1 << idx;
            }
            below = changed;
        }
        self.inner_valid = true;
        self.inner[0]
    }

    /// The four binary siblings on the way from the top of the node down to
    /// slot `nibble`, top first.
    pub fn siblings(&self, nibble: u8) -> [Hash; 4] {
        let mut level = self.slot_hashes();
        let mut siblings = [EMPTY; 4];
        let mut position = nibble as usize & 15;
        let mut width = 16;
        for sibling in siblings.iter_mut().rev() {
            *sibling = level[position ^ 1];
            width /= 2;
            for idx in 0..width {
                level[idx] = internal_hash(&level[2 * idx], &level[2 * idx + 1]);
            }
            position /= 2;
        }
        siblings
    }

    /// Applies a delta (see [`StoredNode::Delta`]): the `changed` slots
    /// outside `kept` take their contents from `slots`, and the leaves in
    /// the `kept` slots take the `values` in turn. `None` if a `kept` slot
    /// holds no leaf here, or `values` are too few.
    pub fn apply_delta(
        &mut self,
        changed: u16,
        kept: u16,
        slots: Node,
        values: &[Hash],
    ) -> Option<()> {
        let mut values = values.iter();
        for (idx, slot) in slots.children.into_iter().enumerate() {
            if kept & (1 << idx) != 0 {
                let Some(Child::Leaf { key_hash, .. }) = self.children[idx] else {
                    return None;
                };
                self.children[idx] = Some(Child::leaf(key_hash, *values.next()?));
            } else if changed & (1 << idx) != 0 {
                self.children[idx] = slot;
            }
        }
        Some(())
    }

    /// Marks slot `idx` as changed by an update and sets it; it stays
    /// `kept` while it holds a leaf of the key it held when the node was
    /// loaded or stored.
    fn set(&mut self, idx: u8, child: Option<Child>) {
        let bit = 1 << idx;
        let same_key = matches!(
            (&self.children[idx as usize], &child),
            (Some(Child::Leaf { key_hash: old, .. }), Some(Child::Leaf { key_hash: new, .. }))
                if old == new
        );
        if same_key && (self.dirty & bit == 0 || self.kept & bit != 0) {
            self.kept |= bit;
        } else {
            self.kept &= !bit;
        }
        self.children[idx as usize] = child;
        self.dirty |= bit;
    }

    /// The stored entry of the node at `version`: whole, or (`delta`
    /// given as `(base, changed, kept)`) a delta of the `changed` slots
    /// over the entry at `base`, of which the `kept` ones (leaves of the
    /// same keys as at `base`) store their value hashes alone; see
    /// [`StoredNode::decode`].
    ///
    /// # Panics
    /// If a `kept` slot is outside `changed` or holds no leaf.
    pub fn encode_stored(&self, version: u64, delta: Option<(u64, u16, u16)>) -> Vec<u8> {
        let len = self.stored_len(version, delta);
        let mut bytes = Vec::with_capacity(len);
        match delta {
            None => {
                bytes.push(STORED_WHOLE);
                self.encode_into(version, &mut bytes);
            }
            Some((base, changed, kept)) => {
                assert_eq!(kept & !changed, 0, "kept slots are changed slots");
                bytes.push(if kept == 0 {
                    STORED_DELTA
                } else {
                    STORED_DELTA_KEPT
                });
                put_varint(&mut bytes, version - base);
                bytes.extend_from_slice(&changed.to_be_bytes());
                if kept != 0 {
                    bytes.extend_from_slice(&kept.to_be_bytes());
                }
                self.encode_slots_into(version, changed & !kept, &mut bytes);
                for (idx, child) in self.children.iter().enumerate() {
                    if kept & (1 << idx) == 0 {
                        continue;
                    }
                    let Some(Child::Leaf { value_hash, .. }) = child else {
                        panic!("kept slot {idx} holds no leaf");
                    };
                    bytes.extend_from_slice(value_hash);
                }
            }
        }
        debug_assert_eq!(bytes.len(), len);
        bytes
    }

    /// Bytes of [`Node::encode_stored`] with the same arguments.
    fn stored_len(&self, version: u64, delta: Option<(u64, u16, u16)>) -> usize {
        match delta {
            None => 1 + self.encoded_len(version, u16::MAX),
            Some((base, changed, kept)) => {
                let kept_len = if kept == 0 {
                    0
                } else {
                    2 + 32 * kept.count_ones() as usize
                };
                1 + varint_len(version - base)
                    + 2
                    + kept_len
                    + self.encoded_len(version, changed & !kept)
            }
        }
    }

    /// Bytes of [`Node::encode`] restricted to the slots in `mask`.
    fn encoded_len(&self, version: u64, mask: u16) -> usize {
        4 + self
            .children
            .iter()
            .enumerate()
            .filter(|(idx, _)| mask & (1 << idx) != 0)
            .filter_map(|(_, child)| child.as_ref())
            .map(|child| child.encoded_len(version))
            .sum::<usize>()
    }

    fn n_children(&self) -> usize {
        self.children.iter().filter(|child| child.is_some()).count()
    }

    /// The node's encoding, for a node written at `version`: a 16-bit
    /// bitmap of present children and one of those that are leaves
    /// (big-endian), then per child a leaf's key hash and value hash, or a
    /// node's hash and how many versions older than this node it is
    /// (LEB128: the rest of its storage key). Child nodes are never newer
    /// than their parent, and mostly not much older, so an age takes a
    /// byte or two.
    ///
    /// # Panics
    /// If a child node is newer than `version`.
    pub fn encode(&self, version: u64) -> Vec<u8> {
        // Allocated at its exact size: most nodes are then small enough for
        // the allocator's fast paths, which a worst-case reservation is not.
        let len = self.encoded_len(version, u16::MAX);
        let mut bytes = Vec::with_capacity(len);
        self.encode_into(version, &mut bytes);
        debug_assert_eq!(bytes.len(), len);
        bytes
    }

    /// [`Node::encode`], appended to `out`.
    pub fn encode_into(&self, version: u64, out: &mut Vec<u8>) {
        self.encode_slots_into(version, u16::MAX, out);
    }

    /// [`Node::encode`] of the slots in `mask` alone (the others as if
    /// empty), appended to `out`.
    fn encode_slots_into(&self, version: u64, mask: u16, out: &mut Vec<u8>) {
        let (mut present, mut leaves) = (0u16, 0u16);
        for (idx, child) in self.children.iter().enumerate() {
            if mask & (1 << idx) == 0 {
                continue;
            }
            match child {
                None => {}
                Some(Child::Leaf { .. }) => {
                    present |= 1 << idx;
                    leaves |= 1 << idx;
                }
                Some(Child::Node { .. }) => present |= 1 << idx,
            }
        }
        out.extend_from_slice(&present.to_be_bytes());
        out.extend_from_slice(&leaves.to_be_bytes());
        let slots = self
            .children
            .iter()
            .enumerate()
            .filter(|(idx, _)| mask & (1 << idx) != 0)
            .filter_map(|(_, child)| child.as_ref());
        for child in slots {
            match child {
                Child::Leaf {
                    key_hash,
                    value_hash,
                    ..
                } => {
                    out.extend_from_slice(key_hash);
                    out.extend_from_slice(value_hash);
                }
                Child::Node {
                    hash,
                    version: child,
                } => {
                    out.extend_from_slice(hash);
                    put_varint(out, age(*child, version));
                }
            }
        }
    }

    /// Decodes [`Node::encode`]'s output for a node written at `version`;
    /// `None` unless it is exactly what [`Node::encode`] writes.
    pub fn decode(bytes: &[u8], version: u64) -> Option<Node> {
        let present = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?);
        let leaves = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
        if leaves & !present != 0 {
            return None;
        }
        let mut rest = &bytes[4..];
        fn take_hash(rest: &mut &[u8]) -> Option<Hash> {
            let (hash, tail) = rest.split_first_chunk::<32>()?;
            *rest = tail;
            Some(*hash)
        }
        let mut node = Node::default();
        for idx in 0..16 {
            if present & (1 << idx) == 0 {
                continue;
            }
            node.children[idx] = Some(if leaves & (1 << idx) != 0 {
                let key_hash = take_hash(&mut rest)?;
                let value_hash = take_hash(&mut rest)?;
                Child::leaf(key_hash, value_hash)
            } else {
                let hash = take_hash(&mut rest)?;
                let child_version = version.checked_sub(take_varint(&mut rest)?)?;
                Child::Node {
                    hash,
                    version: child_version,
                }
            });
        }
        rest.is_empty().then_some(node)
    }
}

/// Longest encoding of a node: bitmaps and sixteen leaves (a child node's
/// hash and longest age, 32 + 10 bytes, are shorter than a leaf's 64).
pub const NODE_ENCODED_BYTES_MAX: usize = 4 + 16 * 64;

/// Longest LEB128 encoding of a `u64`.
const VARINT_BYTES_MAX: usize = 10;

/// Bytes of `value` in LEB128.
fn varint_len(value: u64) -> usize {
    (64 - value.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Appends `value` in LEB128: seven bits a byte, low first, the high bit
/// set on all bytes but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Takes a LEB128 `u64` from the front of `bytes`; `None` if it is cut
/// short, too long for a `u64`, or not the shortest encoding.
fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (idx, &byte) in bytes.iter().enumerate().take(VARINT_BYTES_MAX) {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * idx as u32;
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            // A zero last byte after others is an overlong encoding.
            if idx > 0 && byte == 0 {
                return None;
            }
            *bytes = &bytes[idx + 1..];
            return Some(value);
        }
    }
    None
}

/// Where a node is stored: the version it was written at and its path of
/// nibbles from the root.
///
/// A plain value (no allocation): the path is kept packed two nibbles to a
/// byte, the unused low nibble of an odd-length path and the bytes past it
/// zero, so that equal paths are equal keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeKey {
    /// Version the node was written at.
    pub version: u64,
    len: u8,
    packed: [u8; DEPTH_NIBBLES_MAX / 2],
}

impl NodeKey {
    /// The key of the node at `path` (nibbles from the root, each below 16,
    /// at most [`DEPTH_NIBBLES_MAX`]) written at `version`.
    pub fn new(version: u64, path: &[u8]) -> NodeKey {
        assert!(path.len() <= DEPTH_NIBBLES_MAX, "node path too long");
        let mut packed = [0; DEPTH_NIBBLES_MAX / 2];
        for (idx, nibble) in path.iter().enumerate() {
            debug_assert!(*nibble < 16, "a nibble is below 16");
            packed[idx / 2] |= (nibble & 0x0f) << if idx % 2 == 0 { 4 } else { 0 };
        }
        NodeKey {
            version,
            len: path.len() as u8,
            packed,
        }
    }

    /// The first nibble of the path (`None` for the root).
    pub fn first_nibble(&self) -> Option<u8> {
        (self.len > 0).then(|| self.packed[0] >> 4)
    }

    /// Nibbles from the root.
    pub fn path(&self) -> Vec<u8> {
        (0..self.len as usize)
            .map(|idx| nibble(&self.packed, idx))
            .collect()
    }

    /// Storage encoding: version (big-endian), path length, packed nibbles.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(9 + DEPTH_NIBBLES_MAX / 2);
        self.encode_into(&mut bytes);
        bytes
    }

    /// [`NodeKey::encode`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        out.push(self.len);
        out.extend_from_slice(&self.packed[..(self.len as usize).div_ceil(2)]);
    }

    /// The order of the encodings (version, then path length, then path),
    /// without encoding.
    pub fn cmp_encoded(&self, other: &NodeKey) -> std::cmp::Ordering {
        (self.version, self.len, &self.packed).cmp(&(other.version, other.len, &other.packed))
    }

    /// Decodes [`NodeKey::encode`]'s output; `None` unless it is exactly
    /// what [`NodeKey::encode`] writes.
    pub fn decode(bytes: &[u8]) -> Option<NodeKey> {
        let version = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = *bytes.get(8)?;
        let packed = bytes.get(9..)?;
        if len as usize > DEPTH_NIBBLES_MAX
            || packed.len() != (len as usize).div_ceil(2)
            || (len % 2 == 1 && packed[packed.len() - 1] & 0x0f != 0)
        {
            return None;
        }
        let mut key = NodeKey {
            version,
            len,
            packed: [0; DEPTH_NIBBLES_MAX / 2],
        };
        key.packed[..packed.len()].copy_from_slice(packed);
        Some(key)
    }
}

/// Reads stored nodes.
pub trait NodeReader {
    /// The error of the storage behind.
    type Error;
    /// The node at `key`; an error if it is missing (a corrupt store).
    fn node(&self, key: &NodeKey) -> Result<Arc<Node>, Self::Error>;

    /// The node at `key`, which an update is about to replace: a reader
    /// with a cache may hand its entry over (remove it), so that the update
    /// changes the node in place rather than copying it. By default,
    /// [`NodeReader::node`].
    fn take_node(&self, key: &NodeKey) -> Result<Arc<Node>, Self::Error> {
        self.node(key)
    }
}

/// A node an update wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNode {
    /// Where it is stored.
    pub key: NodeKey,
    /// The node.
    pub node: Arc<Node>,
    /// Its stored entry ([`Node::encode_stored`] at the key's version,
    /// whole or a delta), made where the node was (on the update's
    /// threads).
    pub bytes: Vec<u8>,
}

/// What one update of the tree produced.
#[derive(Debug, Default)]
pub struct TreeUpdate {
    /// The new root.
    pub root: Option<Child>,
    /// Nodes to write, in the order of their storage keys
    /// ([`NodeKey::cmp_encoded`]), which is the order a write batch should
    /// hold them in.
    pub new_nodes: Vec<NewNode>,
    /// Nodes the new version no longer uses.
    pub stale_nodes: Vec<NodeKey>,
    /// Hashes of the keys that existed and were updated or removed, in
    /// key-hash order.
    pub replaced: Vec<Hash>,
}

impl TreeUpdate {
    /// The new root hash.
    pub fn root_hash(&self) -> Hash {
        self.root.as_ref().map_or(EMPTY, Child::hash)
    }
}

/// Below this many updates a tree update runs on one thread: splitting
/// costs more than it saves.
pub const PARALLEL_UPDATES_MIN: usize = 512;

/// What an update also rewrites, besides what its writes change, to keep
/// every stored entry the new tree reaches young: each node whose chain
/// (see [`Chain`]) began at or below `base_at_most` is stored whole at the
/// new version — those the writes change, and those in the swept part of
/// the tree, which the update visits even without writes there. Their
/// parents, up to the root, take the new versions of their children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refresh {
    /// Chains that began at or below this version are ended.
    pub base_at_most: u64,
    /// The swept part of the tree: a bit per first byte of the key hash
    /// (bit `b % 64` of word `b / 64`), each the subtree at the two nibbles
    /// of that byte.
    pub swept: [u64; 4],
}

impl Refresh {
    /// Whether the subtree at `path` (nibbles) holds any swept key hashes.
    fn sweeps(&self, path: &[u8]) -> bool {
        let bit = |byte: usize| self.swept[byte / 64] & (1 << (byte % 64)) != 0;
        match path {
            [] => self.swept.iter().any(|word| *word != 0),
            [first] => (0..16).any(|low| bit(*first as usize * 16 + low)),
            [first, second, ..] => bit(*first as usize * 16 + *second as usize),
        }
    }

    /// Whether `chain` must end.
    fn ends(&self, chain: &Chain) -> bool {
        chain
            .versions()
            .first()
            .is_some_and(|&base| base <= self.base_at_most)
    }
}

/// Applies `updates` — `(key_hash, Some(value_hash))` to set,
/// `(key_hash, None)` to remove; sorted by key hash, each key once — to the
/// tree whose root is `root`, writing new nodes under `version`.
///
/// With at least [`PARALLEL_UPDATES_MIN`] updates under a root node, the
/// root's sixteen subtrees are updated on up to
/// `std::thread::available_parallelism()` threads. The result is the same
/// as on one thread, in the same order: each thread takes the next subtree
/// left whenever it is done with one, and the outputs are joined in subtree
/// order.
pub fn update<R>(
    reader: &R,
    root: Option<Child>,
    version: u64,
    updates: &[(Hash, Option<Hash>)],
) -> Result<TreeUpdate, R::Error>
where
    R: NodeReader + Sync,
    R::Error: Send,
{
    update_refreshing(reader, root, version, updates, None)
}

/// [`update`], also rewriting what `refresh` names. The new tree holds
/// the same keys and values, and has the same root hash, with or without
/// it; only where its nodes are stored differs.
pub fn update_refreshing<R>(
    reader: &R,
    root: Option<Child>,
    version: u64,
    updates: &[(Hash, Option<Hash>)],
    refresh: Option<Refresh>,
) -> Result<TreeUpdate, R::Error>
where
    R: NodeReader + Sync,
    R::Error: Send,
{
    debug_assert!(
        updates.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "updates sorted and unique"
    );
    let mut out = TreeUpdate::default();
    let mut updater = Updater {
        reader,
        version,
        refresh,
        out: &mut out,
    };
    let root = match root {
        Some(Child::Node {
            version: root_version,
            ..
        }) if updates.len() >= PARALLEL_UPDATES_MIN => {
            updater.root_in_parallel(root_version, updates)?
        }
        root => updater.subtree(root, &mut Vec::new(), updates)?,
    };
    out.root = root;
    sort_new_nodes(&mut out.new_nodes);
    Ok(out)
}

/// Sorts nodes by storage key. A stable sort: it finds the runs already in
/// order and merges them, so on what `Updater::root_in_parallel` hands it
/// (in order, unless its sweep of the root's children added nodes) it is
/// one pass.
fn sort_new_nodes(nodes: &mut [NewNode]) {
    nodes.sort_by(|a, b| a.key.cmp_encoded(&b.key));
}

/// Appends the nodes of `runs` to `out` in storage-key order, where each
/// run holds the nodes of one subtree of the root in that order, the runs
/// in the order of their subtrees, and every node has the same version.
/// Nodes of one version go by path length, then path, and among paths of
/// one length the subtrees' come in subtree order: so the runs interleave
/// by length, with no comparison of paths.
fn merge_by_length(out: &mut Vec<NewNode>, runs: Vec<Vec<NewNode>>) {
    out.reserve(runs.iter().map(Vec::len).sum());
    let mut runs: Vec<_> = runs
        .into_iter()
        .map(|run| run.into_iter().peekable())
        .collect();
    for len in 0..=DEPTH_NIBBLES_MAX as u8 {
        for run in &mut runs {
            while let Some(new) = run.next_if(|new| new.key.len == len) {
                out.push(new);
            }
        }
    }
    debug_assert!(runs.iter_mut().all(|run| run.peek().is_none()));
}

/// `items` (sorted by key hash) in runs that share the nibble at `depth`,
/// with that nibble.
fn by_nibble<T>(
    items: &[T],
    depth: usize,
    key: impl Fn(&T) -> &Hash,
) -> impl Iterator<Item = (u8, &[T])> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let idx = nibble(key(rest.first()?), depth);
        let (run, tail) =
            rest.split_at(rest.partition_point(|item| nibble(key(item), depth) == idx));
        rest = tail;
        Some((idx, run))
    })
}

/// The updates of one subtree of the root: its nibble, its current child
/// and its slice of the updates.
type Share<'u> = (u8, Option<Child>, &'u [(Hash, Option<Hash>)]);

struct Updater<'a, R> {
    reader: &'a R,
    version: u64,
    refresh: Option<Refresh>,
    out: &'a mut TreeUpdate,
}

impl<R> Updater<'_, R>
where
    R: NodeReader + Sync,
    R::Error: Send,
{
    /// Updates the root node at `root_version`, its subtrees spread over
    /// threads.
    fn root_in_parallel(
        &mut self,
        root_version: u64,
        updates: &[(Hash, Option<Hash>)],
    ) -> Result<Option<Child>, R::Error> {
        let mut node = self.replace(root_version, &[])?;
        // The slots stay as they are until set, which compares keys.
        let mut shares: Vec<Share<'_>> = by_nibble(updates, 0, |(key, _)| key)
            .map(|(idx, run)| (idx, node.children[idx as usize].clone(), run))
            .collect();
        let updated = shares.iter().fold(0u16, |mask, share| mask | 1 << share.0);
        // The threads take subtrees one at a time as they finish the last,
        // the heaviest first — the swept ones (see `Refresh`), then those
        // with the most updates — so that none waits long for the others
        // at the end.
        let refresh = self.refresh;
        let swept = |idx: u8| refresh.is_some_and(|refresh| refresh.sweeps(&[idx]));
        shares.sort_by_key(|(idx, _, run)| std::cmp::Reverse((swept(*idx), run.len())));
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 8)
            .min(shares.len());
        let left = Mutex::new(shares.into_iter());
        let (reader, version, left) = (self.reader, self.version, &left);
        let mut results: Vec<(u8, TreeUpdate, Option<Child>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        let next = || {
                            left.lock()
                                .unwrap_or_else(|poison| poison.into_inner())
                                .next()
                        };
                        while let Some((idx, slot, updates)) = next() {
                            let mut out = TreeUpdate::default();
                            let mut updater = Updater {
                                reader,
                                version,
                                refresh,
                                out: &mut out,
                            };
                            let child = updater.subtree(slot, &mut vec![idx], updates)?;
                            // Sorted here, on the threads, so that the sort
                            // at the end only merges.
                            sort_new_nodes(&mut out.new_nodes);
                            done.push((idx, out, child));
                        }
                        Ok::<_, R::Error>(done)
                    })
                })
                .collect();
            let mut results = Vec::new();
            for handle in handles {
                let done = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                results.extend(done);
            }
            Ok::<_, R::Error>(results)
        })?;
        // Joined in subtree order: the same output as on one thread.
        results.sort_unstable_by_key(|(idx, _, _)| *idx);
        let mut runs = Vec::with_capacity(results.len());
        for (idx, out, child) in results {
            runs.push(out.new_nodes);
            self.out.stale_nodes.extend(out.stale_nodes);
            self.out.replaced.extend(out.replaced);
            Arc::make_mut(&mut node).set(idx, child);
        }
        merge_by_length(&mut self.out.new_nodes, runs);
        // Swept subtrees that no write reached.
        self.sweep_children(&mut node, &mut Vec::new(), updated)?;
        let root = self.finish(&[], node);
        // The root's entry (the shortest path) goes first, so that the
        // sort at the end finds the nodes in order (unless the sweep above
        // added some).
        if self
            .out
            .new_nodes
            .last()
            .is_some_and(|new| new.key.len == 0)
        {
            self.out.new_nodes.rotate_right(1);
        }
        Ok(root)
    }

    /// The stored node at `path` written at `version`, to be changed (in
    /// place when nothing else holds it, see [`Arc::make_mut`]) and stored
    /// anew; its entries become stale when [`Updater::store`] or
    /// [`Updater::finish`] ends its chain.
    fn replace(&mut self, version: u64, path: &[u8]) -> Result<Arc<Node>, R::Error> {
        let node = self.reader.take_node(&NodeKey::new(version, path))?;
        debug_assert_eq!(node.chain.versions().last(), Some(&version));
        Ok(node)
    }

    /// Records every entry of `chain` at `path` as stale.
    fn end_chain(&mut self, path: &[u8], chain: &Chain) {
        self.out.stale_nodes.extend(
            chain
                .versions()
                .iter()
                .map(|&version| NodeKey::new(version, path)),
        );
    }

    fn subtree(
        &mut self,
        child: Option<Child>,
        path: &mut Vec<u8>,
        updates: &[(Hash, Option<Hash>)],
    ) -> Result<Option<Child>, R::Error> {
        if updates.is_empty() {
            if let Some(Child::Node { version, .. }) = child
                && self.refresh.is_some_and(|refresh| refresh.sweeps(path))
                && let Some(swept) = self.sweep(version, path)?
            {
                return Ok(Some(swept));
            }
            return Ok(child);
        }
        let depth = path.len();
        let inserts = || -> Vec<(Hash, Hash)> {
            updates
                .iter()
                .filter_map(|(key, value)| value.map(|value| (*key, value)))
                .collect()
        };
        match child {
            None => Ok(self.build(path, &inserts())),
            Some(Child::Leaf {
                key_hash,
                value_hash,
                ..
            }) => {
                let mut entries = inserts();
                if updates.iter().any(|(key, _)| *key == key_hash) {
                    self.out.replaced.push(key_hash);
                } else {
                    let at = entries.partition_point(|(key, _)| *key < key_hash);
                    entries.insert(at, (key_hash, value_hash));
                }
                Ok(self.build(path, &entries))
            }
            Some(Child::Node { version, .. }) => {
                let mut node = self.replace(version, path)?;
                let mut updated = 0u16;
                for (idx, run) in by_nibble(updates, depth, |(key, _)| key) {
                    path.push(idx);
                    // Left in place until set, which compares keys.
                    let slot = node.children[idx as usize].clone();
                    let child = self.subtree(slot, path, run)?;
                    Arc::make_mut(&mut node).set(idx, child);
                    path.pop();
                    updated |= 1 << idx;
                }
                self.sweep_children(&mut node, path, updated)?;
                Ok(self.finish(path, node))
            }
        }
    }

    /// Sweeps the child nodes of `node` (at `path`) outside `updated` (a
    /// bit per slot the writes already went through), setting those that
    /// the sweep rewrote.
    fn sweep_children(
        &mut self,
        node: &mut Arc<Node>,
        path: &mut Vec<u8>,
        updated: u16,
    ) -> Result<(), R::Error> {
        for (idx, child) in self.swept_children(&node.children, path, updated)? {
            Arc::make_mut(node).set(idx, Some(child));
        }
        Ok(())
    }

    /// The child nodes among `children` (of the node at `path`, outside
    /// `skip`) that the sweep rewrote, with their slots.
    fn swept_children(
        &mut self,
        children: &[Option<Child>; 16],
        path: &mut Vec<u8>,
        skip: u16,
    ) -> Result<Vec<(u8, Child)>, R::Error> {
        let mut rewritten = Vec::new();
        let Some(refresh) = self.refresh else {
            return Ok(rewritten);
        };
        if !refresh.sweeps(path) {
            return Ok(rewritten);
        }
        for (idx, child) in (0..16u8).zip(children) {
            let Some(Child::Node { version, .. }) = child else {
                continue;
            };
            if skip & (1 << idx) != 0 {
                continue;
            }
            path.push(idx);
            let swept = if refresh.sweeps(path) {
                self.sweep(*version, path)?
            } else {
                None
            };
            path.pop();
            if let Some(child) = swept {
                rewritten.push((idx, child));
            }
        }
        Ok(rewritten)
    }

    /// Visits the swept node at `path` written at `version`, which no write
    /// reaches, and its swept children: rewrites it if its chain must end
    /// (see [`Refresh`]) or a child was rewritten; `None` if nothing under
    /// it was. Looks without taking, so that what stays is not copied.
    fn sweep(&mut self, version: u64, path: &mut Vec<u8>) -> Result<Option<Child>, R::Error> {
        let Some(refresh) = self.refresh else {
            return Ok(None);
        };
        let key = NodeKey::new(version, path);
        let node = self.reader.node(&key)?;
        let rewritten = self.swept_children(&node.children, path, 0)?;
        if rewritten.is_empty() && !refresh.ends(&node.chain) {
            return Ok(None);
        }
        // Dropped before the cache hands its entry over, so that the
        // update changes it in place.
        drop(node);
        let mut node = self.replace(version, path)?;
        for (idx, child) in rewritten {
            Arc::make_mut(&mut node).set(idx, Some(child));
        }
        Ok(Some(self.store(path, node)))
    }

    /// A subtree holding exactly `entries` (key hash, value hash; sorted
    /// by key hash).
    fn build(&mut self, path: &mut Vec<u8>, entries: &[(Hash, Hash)]) -> Option<Child> {
        match entries {
            [] => None,
            [(key_hash, value_hash)] => Some(Child::leaf(*key_hash, *value_hash)),
            _ => {
                let depth = path.len();
                assert!(
                    depth < DEPTH_NIBBLES_MAX,
                    "two different key hashes share all 64 nibbles"
                );
                let mut node = Node::default();
                for (idx, run) in by_nibble(entries, depth, |(key, _)| key) {
                    path.push(idx);
                    node.children[idx as usize] = self.build(path, run);
                    path.pop();
                }
                self.finish(path, Arc::new(node))
            }
        }
    }

    /// Stores `node` at `path`, or collapses it: no children means no
    /// subtree, and a single leaf moves up into the parent (either way the
    /// stored entries at `path` are stale).
    fn finish(&mut self, path: &[u8], node: Arc<Node>) -> Option<Child> {
        match node.n_children() {
            0 => {
                self.end_chain(path, &node.chain);
                None
            }
            1 => {
                let only = node.children.iter().flatten().next().expect("one child");
                if let Child::Leaf { .. } = only {
                    self.end_chain(path, &node.chain);
                    return Some(only.clone());
                }
                Some(self.store(path, node))
            }
            _ => Some(self.store(path, node)),
        }
    }

    /// Writes `node` at `path`: as a delta of its changed slots over its
    /// last version while [`Chain`]'s bounds allow, the delta is at most
    /// half the whole encoding and no [`Refresh`] ends the chain; else
    /// whole (ending the old chain).
    fn store(&mut self, path: &[u8], mut node: Arc<Node>) -> Child {
        let version = self.version;
        let stored = Arc::make_mut(&mut node);
        let hash = stored.rehash();
        let changed = std::mem::take(&mut stored.dirty);
        let kept = std::mem::take(&mut stored.kept) & changed;
        let whole_len = stored.stored_len(version, None);
        let young = !self
            .refresh
            .is_some_and(|refresh| refresh.ends(&stored.chain));
        let delta = stored.chain.versions().last().and_then(|&base| {
            let len = stored.stored_len(version, Some((base, changed, kept)));
            let fits = young
                && changed != 0
                && 2 * len <= whole_len
                && stored.chain.delta_bytes() + len <= 3 * whole_len;
            let chain = stored.chain.then(version, len).filter(|_| fits)?;
            Some((base, chain))
        });
        let bytes = match delta {
            Some((base, chain)) => {
                stored.chain = chain;
                stored.encode_stored(version, Some((base, changed, kept)))
            }
            None => {
                let old = std::mem::replace(&mut stored.chain, Chain::whole(version));
                self.end_chain(path, &old);
                stored.encode_stored(version, None)
            }
        };
        self.out.new_nodes.push(NewNode {
            key: NodeKey::new(self.version, path),
            node,
            bytes,
        });
        Child::Node {
            hash,
            version: self.version,
        }
    }
}

/// The root hash of a tree holding exactly `entries` (key hash, value
/// hash), in any order: the reference the stored tree must agree with.
pub fn root_of(entries: &[(Hash, Hash)]) -> Hash {
    let mut entries = entries.to_vec();
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    struct Nothing;
    impl NodeReader for Nothing {
        type Error = ();
        fn node(&self, _key: &NodeKey) -> Result<Arc<Node>, ()> {
            Err(())
        }
    }
    let mut out = TreeUpdate::default();
    let root = Updater {
        reader: &Nothing,
        refresh: None,
        version: 0,
        out: &mut out,
    }
    .build(&mut Vec::new(), &entries);
    root.as_ref().map_or(EMPTY, Child::hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Memory(HashMap<NodeKey, Arc<Node>>);

    impl NodeReader for Memory {
        type Error = String;
        fn node(&self, key: &NodeKey) -> Result<Arc<Node>, String> {
            self.0
                .get(key)
                .cloned()
                .ok_or_else(|| format!("missing {key:?}"))
        }
    }

    fn apply(
        memory: &mut Memory,
        root: Option<Child>,
        version: u64,
        updates: &[(Hash, Option<Hash>)],
    ) -> Option<Child> {
        let result = update(memory, root, version, updates).unwrap();
        for new in result.new_nodes {
            memory.0.insert(new.key, new.node);
        }
        result.root
    }

    fn kv(n: u32) -> (Hash, Hash) {
        (
            key_hash(&n.to_le_bytes()),
            value_hash(&(n * 7).to_le_bytes()),
        )
    }

    #[test]
    fn root_depends_only_on_the_set_of_entries() {
        let entries: Vec<(Hash, Hash)> = (0..300).map(kv).collect();
        let expected = root_of(&entries);
        // One batch.
        let mut memory = Memory::default();
        let mut sorted: Vec<(Hash, Option<Hash>)> =
            entries.iter().map(|(k, v)| (*k, Some(*v))).collect();
        sorted.sort();
        let root = apply(&mut memory, None, 1, &sorted);
        assert_eq!(root.as_ref().map_or(EMPTY, Child::hash), expected);
        // One at a time, in another order.
        let mut memory = Memory::default();
        let mut root = None;
        for (version, (key, value)) in entries.iter().rev().enumerate() {
            root = apply(
                &mut memory,
                root,
                version as u64 + 1,
                &[(*key, Some(*value))],
            );
        }
        assert_eq!(root.as_ref().map_or(EMPTY, Child::hash), expected);
        // Adding then removing extra keys comes back to the same root.
        let extra: Vec<(Hash, Option<Hash>)> = {
            let mut extra: Vec<_> = (1000..1100).map(|n| (kv(n).0, Some(kv(n).1))).collect();
            extra.sort();
            extra
        };
        root = apply(&mut memory, root, 1000, &extra);
        assert_ne!(root.as_ref().map_or(EMPTY, Child::hash), expected);
        let removals: Vec<(Hash, Option<Hash>)> = extra.iter().map(|(k, _)| (*k, None)).collect();
        root = apply(&mut memory, root, 1001, &removals);
        assert_eq!(root.as_ref().map_or(EMPTY, Child::hash), expected);
    }

    #[test]
    fn a_large_update_on_threads_equals_the_one_thread_update() {
        let entries: Vec<(Hash, Hash)> = (0..4000).map(kv).collect();
        let mut sorted: Vec<(Hash, Option<Hash>)> =
            entries.iter().map(|(k, v)| (*k, Some(*v))).collect();
        sorted.sort();
        let mut memory = Memory::default();
        let root = apply(&mut memory, None, 1, &sorted);
        // New values for 1,000 keys, 300 removals, 400 new keys.
        let mut changes: Vec<(Hash, Option<Hash>)> = (0..1000)
            .map(|n| (kv(n).0, Some(kv(n + 50_000).1)))
            .chain((1000..1300).map(|n| (kv(n).0, None)))
            .chain((10_000..10_400).map(|n| (kv(n).0, Some(kv(n).1))))
            .collect();
        changes.sort();
        let threaded = threaded_equals_single(&memory, root.clone(), &changes, None);
        assert_eq!(threaded.replaced.len(), 1300);
        // In key-hash order, each key once (the store binary-searches it).
        assert!(threaded.replaced.windows(2).all(|pair| pair[0] < pair[1]));
        // And the root is the root of the resulting set.
        let expected: Vec<(Hash, Hash)> = (0..1000)
            .map(|n| (kv(n).0, kv(n + 50_000).1))
            .chain((1300..4000).map(kv))
            .chain((10_000..10_400).map(kv))
            .collect();
        assert_eq!(threaded.root_hash(), root_of(&expected));

        // Writes under every first nibble but 3, whose subtree is swept:
        // the root's own sweep adds nodes after the threads' runs, and the
        // nodes still come in order, the same as on one thread.
        let elsewhere: Vec<_> = changes
            .iter()
            .filter(|(key, _)| nibble(key, 0) != 3)
            .copied()
            .collect();
        let refresh = Refresh {
            base_at_most: 1,
            swept: [0xffff << 48, 0, 0, 0],
        };
        let threaded = threaded_equals_single(&memory, root, &elsewhere, Some(refresh));
        assert!(
            threaded
                .new_nodes
                .iter()
                .any(|new| new.key.first_nibble() == Some(3)),
            "the swept subtree was rewritten"
        );
    }

    /// Updates `root` at version 2 on threads and on one thread, checks
    /// that both give the same result and that the threaded one has its
    /// new nodes in storage-key order; returns the threaded one.
    fn threaded_equals_single(
        memory: &Memory,
        root: Option<Child>,
        updates: &[(Hash, Option<Hash>)],
        refresh: Option<Refresh>,
    ) -> TreeUpdate {
        assert!(updates.len() >= PARALLEL_UPDATES_MIN);
        let threaded = update_refreshing(memory, root.clone(), 2, updates, refresh).unwrap();
        let mut single = TreeUpdate::default();
        let single_root = Updater {
            reader: memory,
            version: 2,
            refresh,
            out: &mut single,
        }
        .subtree(root, &mut Vec::new(), updates)
        .unwrap();
        assert_eq!(threaded.root, single_root);
        // The update's nodes come in storage-key order.
        assert!(
            threaded
                .new_nodes
                .windows(2)
                .all(|pair| pair[0].key.cmp_encoded(&pair[1].key).is_lt())
        );
        sort_new_nodes(&mut single.new_nodes);
        assert_eq!(threaded.new_nodes, single.new_nodes);
        assert_eq!(threaded.stale_nodes, single.stale_nodes);
        assert_eq!(threaded.replaced, single.replaced);
        threaded
    }

    /// Rebuilds the node at `key` from stored entries alone.
    fn assemble_from(entries: &HashMap<NodeKey, Vec<u8>>, key: &NodeKey) -> Node {
        super::assemble(
            key,
            |at| entries.get(at).ok_or_else(|| format!("entry {at:?} kept")),
            |what| what,
        )
        .unwrap()
    }

    #[test]
    fn stored_entries_rebuild_every_live_node_after_stale_ones_are_dropped() {
        let mut memory = Memory::default();
        let mut entries: HashMap<NodeKey, Vec<u8>> = HashMap::new();
        let (mut wholes, mut deltas, mut kept) = (0, 0, 0);
        let mut root = None;
        for version in 1..=400u64 {
            // Small blocks over 300 keys (some removals), then a large one
            // now and then: deltas, chain ends and collapses all happen.
            let n_writes = if version % 50 == 1 { 200 } else { 3 };
            let mut writes: Vec<(Hash, Option<Hash>)> = (0..n_writes)
                .map(|idx| {
                    let n = ((version * 7919 + idx * 104_729) % 300) as u32;
                    let value = (version % 5 != 0).then(|| kv(n + 1000 * version as u32).1);
                    (kv(n).0, value)
                })
                .collect();
            writes.sort();
            writes.dedup_by(|a, b| a.0 == b.0);
            let result = update(&memory, root, version, &writes).unwrap();
            for stale in &result.stale_nodes {
                assert!(entries.remove(stale).is_some(), "{stale:?} stale twice");
            }
            for new in result.new_nodes {
                match StoredNode::decode(&new.bytes, new.key.version).expect("decodes") {
                    StoredNode::Whole(_) => wholes += 1,
                    StoredNode::Delta { kept: 0, .. } => deltas += 1,
                    StoredNode::Delta { .. } => kept += 1,
                }
                entries.insert(new.key, new.bytes);
                memory.0.insert(new.key, new.node);
            }
            root = result.root;
            // Every node of the latest tree rebuilds from what is kept.
            let mut stack: Vec<(Vec<u8>, Child)> =
                root.clone().map(|c| (vec![], c)).into_iter().collect();
            while let Some((path, child)) = stack.pop() {
                let Child::Node { hash, version } = child else {
                    continue;
                };
                let key = NodeKey::new(version, &path);
                let node = assemble_from(&entries, &key);
                assert_eq!(node.hash(), hash, "{key:?}");
                assert_eq!(node.children, memory.0[&key].children, "{key:?}");
                assert_eq!(node.chain, memory.0[&key].chain, "{key:?}");
                for (idx, child) in node.children.iter().enumerate() {
                    if let Some(child) = child {
                        let mut path = path.clone();
                        path.push(idx as u8);
                        stack.push((path, child.clone()));
                    }
                }
            }
        }
        assert!(
            deltas + kept > wholes && kept > 0 && deltas > 0,
            "{deltas} deltas, {kept} with kept leaves, {wholes} whole entries"
        );
        // The kept entries are the live chains: no more than the chain bound
        // per live node.
        assert!(entries.len() <= CHAIN_ENTRIES_MAX * memory.0.len());
    }

    #[test]
    fn stored_entries_are_strict() {
        let mut node = Node::default();
        node.children[3] = Some(Child::leaf([1; 32], [2; 32]));
        node.children[9] = Some(Child::Node {
            hash: [3; 32],
            version: 7,
        });
        let whole = node.encode_stored(10, None);
        assert_eq!(
            StoredNode::decode(&whole, 10),
            Some(StoredNode::Whole(node.clone()))
        );
        let delta = node.encode_stored(10, Some((8, 1 << 3 | 1 << 4, 0)));
        let mut slots = Node::default();
        slots.children[3] = node.children[3].clone();
        assert_eq!(
            StoredNode::decode(&delta, 10),
            Some(StoredNode::Delta {
                base: 8,
                changed: 1 << 3 | 1 << 4,
                kept: 0,
                slots,
                values: Vec::new(),
            })
        );
        // A kept leaf: its value hash alone, 32 bytes less.
        let kept = node.encode_stored(10, Some((8, 1 << 3 | 1 << 9, 1 << 3)));
        let mut slots = Node::default();
        slots.children[9] = node.children[9].clone();
        assert_eq!(kept.len(), 1 + 1 + 2 + 2 + 4 + 33 + 32);
        assert_eq!(
            StoredNode::decode(&kept, 10),
            Some(StoredNode::Delta {
                base: 8,
                changed: 1 << 3 | 1 << 9,
                kept: 1 << 3,
                slots: slots.clone(),
                values: vec![[2; 32]],
            })
        );
        // It applies over a leaf of the key, and over nothing else.
        let mut below = Node::default();
        below.children[3] = Some(Child::leaf([1; 32], [5; 32]));
        assert_eq!(
            below.apply_delta(1 << 3 | 1 << 9, 1 << 3, slots.clone(), &[[2; 32]]),
            Some(())
        );
        assert_eq!(below.children, node.children);
        let mut empty = Node::default();
        assert_eq!(
            empty.apply_delta(1 << 3 | 1 << 9, 1 << 3, slots, &[[2; 32]]),
            None
        );
        // Kept slots outside the changed ones, or none at all under the
        // kept tag.
        let mut kept_outside = kept.clone();
        kept_outside[4..6].copy_from_slice(&(1u16 << 4).to_be_bytes());
        assert_eq!(StoredNode::decode(&kept_outside, 10), None);
        let mut kept_none = kept.clone();
        kept_none[4..6].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(StoredNode::decode(&kept_none, 10), None);
        // A base at or above the node's own version, no changed slot, a
        // child outside the changed slots, an unknown tag, trailing bytes.
        let mut same = delta.clone();
        same[1] = 0;
        assert_eq!(StoredNode::decode(&same, 10), None);
        assert_eq!(
            StoredNode::decode(&node.encode_stored(10, Some((8, 0, 0))), 10),
            None
        );
        let mut outside = delta.clone();
        outside[3] = 1 << 4;
        assert_eq!(StoredNode::decode(&outside, 10), None);
        let mut tag = whole.clone();
        tag[0] = 3;
        assert_eq!(StoredNode::decode(&tag, 10), None);
        let mut long = delta;
        long.push(0);
        assert_eq!(StoredNode::decode(&long, 10), None);
    }

    #[test]
    fn hash_keys_are_derived_as_documented() {
        assert_eq!(
            LEAF_KEY,
            blake3::derive_key("stele state tree v2 leaf", b"")
        );
        assert_eq!(
            INTERNAL_KEY,
            blake3::derive_key("stele state tree v2 internal", b"")
        );
        assert_ne!(LEAF_KEY, INTERNAL_KEY);
    }

    #[test]
    fn empty_and_single_trees() {
        assert_eq!(root_of(&[]), EMPTY);
        let (k, v) = kv(1);
        assert_eq!(root_of(&[(k, v)]), leaf_hash(&k, &v));
        let memory = Memory::default();
        let replaced = update(&memory, None, 1, &[(k, Some(v))]).unwrap();
        assert!(replaced.replaced.is_empty());
        let root = replaced.root.clone();
        let again = update(&memory, root, 2, &[(k, Some(v))]).unwrap();
        assert_eq!(
            again.replaced,
            vec![k],
            "an update reports the key it replaces"
        );
        let mut memory = Memory::default();
        let root = apply(&mut memory, None, 1, &[(k, Some(v))]);
        let root = apply(&mut memory, root, 2, &[(k, None)]);
        assert_eq!(root, None);
    }

    #[test]
    fn node_and_key_encodings_round_trip() {
        let mut node = Node::default();
        node.children[3] = Some(Child::leaf([1; 32], [2; 32]));
        node.children[15] = Some(Child::Node {
            hash: [3; 32],
            version: 5,
        });
        for version in [99, 100, 227, 1 << 40, u64::MAX] {
            let bytes = node.encode(version);
            assert_eq!(Node::decode(&bytes, version), Some(node.clone()));
            assert_eq!(Node::decode(&bytes[1..], version), None);
            assert_eq!(Node::decode(&bytes[..bytes.len() - 1], version), None);
            // Read as a node of version 0, the child node would be older
            // than version 0.
            assert_eq!(Node::decode(&bytes, 0), None);
        }
        // Ages take a byte below 128: bitmaps, a leaf's 64 bytes, a node's
        // 32 + 1.
        assert_eq!(node.encode(100).len(), 4 + 64 + 33);
        // A leaf bit on an absent child, and trailing bytes, are refused.
        let mut bytes = node.encode(100);
        bytes[3] |= 1;
        assert_eq!(Node::decode(&bytes, 100), None);
        let mut bytes = node.encode(100);
        bytes.push(0);
        assert_eq!(Node::decode(&bytes, 100), None);
        // Appending encodes the same bytes after what is there.
        let mut out = vec![9];
        node.encode_into(100, &mut out);
        assert_eq!(out[1..], node.encode(100)[..]);
        // The longest encoding fits the bound.
        let mut full = Node::default();
        for slot in full.children.iter_mut() {
            *slot = Some(Child::leaf([7; 32], [8; 32]));
        }
        assert_eq!(full.encode(u64::MAX).len(), NODE_ENCODED_BYTES_MAX);
    }

    #[test]
    fn varints_round_trip_and_refuse_overlong_or_cut_encodings() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, value);
            assert_eq!(bytes.len(), varint_len(value), "{value}");
            let mut rest = &bytes[..];
            assert_eq!(take_varint(&mut rest), Some(value));
            assert!(rest.is_empty());
            let mut cut = &bytes[..bytes.len() - 1];
            assert_eq!(take_varint(&mut cut), None, "{value} cut short");
        }
        // 0 as two bytes; 2^64 (a tenth byte above 1); eleven bytes.
        for bad in [
            &[0x80, 0x00][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x80; 11],
        ] {
            let mut rest = bad;
            assert_eq!(take_varint(&mut rest), None, "{bad:?}");
        }
    }

    #[test]
    fn node_keys_round_trip() {
        let key = NodeKey::new(7, &[1, 15, 3]);
        assert_eq!(key.path(), vec![1, 15, 3]);
        assert_eq!(key.first_nibble(), Some(1));
        assert_eq!(NodeKey::new(7, &[]).first_nibble(), None);
        assert_eq!(NodeKey::decode(&key.encode()), Some(key));
        // A stray low nibble after an odd-length path is not an encoding.
        let mut stray = key.encode();
        *stray.last_mut().unwrap() |= 1;
        assert_eq!(NodeKey::decode(&stray), None);
    }

    #[test]
    fn node_keys_compare_as_their_encodings() {
        let mut keys = Vec::new();
        for version in [0u64, 1, 255, 256, u64::MAX] {
            for path in [
                vec![],
                vec![0],
                vec![15],
                vec![0, 0],
                vec![0, 15],
                vec![1, 0],
                vec![15, 15, 15],
                vec![1, 2, 3, 4],
            ] {
                keys.push(NodeKey::new(version, &path));
            }
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(
                    a.cmp_encoded(b),
                    a.encode().cmp(&b.encode()),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn rehash_after_changed_slots_equals_the_whole_hash() {
        let mut node = Node::default();
        assert_eq!(node.rehash(), EMPTY);
        let mut rng = 1u64;
        for step in 0..300u64 {
            // One to three slots set or emptied, then rehashed.
            for _ in 0..1 + step % 3 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let slot = (rng >> 60) as u8;
                let child = !(rng >> 20).is_multiple_of(4);
                let child = child.then(|| Child::leaf([slot; 32], [(rng >> 8) as u8; 32]));
                node.set(slot, child);
            }
            assert_eq!(node.rehash(), node.hash(), "step {step}");
            node.dirty = 0;
        }
    }

    #[test]
    fn siblings_rebuild_the_node_hash() {
        let mut node = Node::default();
        for idx in [0usize, 5, 6, 15] {
            node.children[idx] = Some(Child::leaf([idx as u8; 32], [1; 32]));
        }
        for slot in 0..16u8 {
            let mut hash = node.children[slot as usize]
                .as_ref()
                .map_or(EMPTY, Child::hash);
            let siblings = node.siblings(slot);
            for (level, sibling) in siblings.iter().rev().enumerate() {
                let right = (slot >> level) & 1 == 1;
                hash = if right {
                    internal_hash(sibling, &hash)
                } else {
                    internal_hash(&hash, sibling)
                };
            }
            assert_eq!(hash, node.hash(), "slot {slot}");
        }
    }
}
