//! Inclusion and exclusion proofs, and their standalone verifier.
//!
//! A proof is the list of binary siblings on the path of `blake3(key)` from
//! the root down to where the path ends — a leaf or an empty slot — plus
//! that terminal. The verifier needs only the root, the key, the claimed
//! value (or `None` for absence) and the proof: it runs without RocksDB, so
//! clients can use it with `default-features = false`.
//!
//! On the wire a proof is compact: the number of siblings, a bitmap of
//! those that are not [`EMPTY`], the non-empty ones, and the terminal.

use crate::tree::{EMPTY, Hash, bit, internal_hash, key_hash, leaf_hash, value_hash};

/// Most siblings a proof can have: one per bit of a key hash.
pub const PROOF_SIBLINGS_MAX: usize = 256;

/// Where a proof's path ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// An empty slot: the key is absent.
    Empty,
    /// A leaf: the key itself (inclusion), or another key occupying the
    /// slot where this one would be (exclusion).
    Leaf {
        /// The leaf's key hash.
        key_hash: Hash,
        /// The leaf's value hash.
        value_hash: Hash,
    },
}

/// A proof for one key at one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Binary siblings from the root down, one per bit of the path.
    pub siblings: Vec<Hash>,
    /// Where the path ends.
    pub terminal: Terminal,
}

/// Why a proof does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The recomputed root differs from the trusted one.
    #[error("the proof leads to another root")]
    RootMismatch,
    /// The terminal does not show what was claimed (the value, or absence).
    #[error("the proof's terminal does not prove the claim")]
    WrongTerminal,
    /// The proof's path is not a whole number of nodes, or too long.
    #[error("the proof has {0} siblings; expected a multiple of 4, at most 256")]
    BadLength(usize),
    /// The encoding is malformed.
    #[error("malformed proof encoding")]
    Malformed,
}

impl Proof {
    /// Checks that `key` has `value` (or, for `None`, is absent) in the
    /// tree with root `root`.
    pub fn verify(&self, root: &Hash, key: &[u8], value: Option<&[u8]>) -> Result<(), ProofError> {
        let n_bits = self.siblings.len();
        if !n_bits.is_multiple_of(4) || n_bits > PROOF_SIBLINGS_MAX {
            return Err(ProofError::BadLength(n_bits));
        }
        let key_hash = key_hash(key);
        let shares_path =
            |other: &Hash| (0..n_bits).all(|idx| bit(other, idx) == bit(&key_hash, idx));
        let mut hash = match (&self.terminal, value) {
            (Terminal::Empty, None) => EMPTY,
            (
                Terminal::Leaf {
                    key_hash: leaf_key,
                    value_hash: leaf_value,
                },
                Some(value),
            ) if *leaf_key == key_hash && *leaf_value == value_hash(value) => {
                leaf_hash(leaf_key, leaf_value)
            }
            (
                Terminal::Leaf {
                    key_hash: leaf_key,
                    value_hash: leaf_value,
                },
                None,
            ) if *leaf_key != key_hash && shares_path(leaf_key) => leaf_hash(leaf_key, leaf_value),
            _ => return Err(ProofError::WrongTerminal),
        };
        for idx in (0..n_bits).rev() {
            let sibling = &self.siblings[idx];
            hash = if bit(&key_hash, idx) {
                internal_hash(sibling, &hash)
            } else {
                internal_hash(&hash, sibling)
            };
        }
        if hash == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }

    /// The compact encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n_bits = self.siblings.len();
        let mut bitmap = vec![0u8; n_bits.div_ceil(8)];
        let mut hashes = Vec::new();
        for (idx, sibling) in self.siblings.iter().enumerate() {
            if *sibling != EMPTY {
                bitmap[idx / 8] |= 0x80 >> (idx % 8);
                hashes.extend_from_slice(sibling);
            }
        }
        let mut bytes = Vec::with_capacity(2 + bitmap.len() + hashes.len() + 65);
        bytes.extend_from_slice(&(n_bits as u16).to_be_bytes());
        bytes.extend_from_slice(&bitmap);
        bytes.extend_from_slice(&hashes);
        match &self.terminal {
            Terminal::Empty => bytes.push(0),
            Terminal::Leaf {
                key_hash,
                value_hash,
            } => {
                bytes.push(1);
                bytes.extend_from_slice(key_hash);
                bytes.extend_from_slice(value_hash);
            }
        }
        bytes
    }

    /// Decodes [`Proof::to_bytes`]'s output, refusing anything longer than
    /// a proof can be before allocating for it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Proof, ProofError> {
        let n_bits = u16::from_be_bytes(
            bytes
                .get(..2)
                .ok_or(ProofError::Malformed)?
                .try_into()
                .expect("2 bytes"),
        ) as usize;
        if !n_bits.is_multiple_of(4) || n_bits > PROOF_SIBLINGS_MAX {
            return Err(ProofError::BadLength(n_bits));
        }
        let bitmap = bytes
            .get(2..2 + n_bits.div_ceil(8))
            .ok_or(ProofError::Malformed)?;
        let mut rest = &bytes[2 + bitmap.len()..];
        let mut siblings = Vec::with_capacity(n_bits);
        for idx in 0..n_bits {
            if bitmap[idx / 8] & (0x80 >> (idx % 8)) == 0 {
                siblings.push(EMPTY);
            } else {
                let hash: Hash = rest
                    .get(..32)
                    .ok_or(ProofError::Malformed)?
                    .try_into()
                    .expect("32 bytes");
                siblings.push(hash);
                rest = &rest[32..];
            }
        }
        let terminal = match rest {
            [0] => Terminal::Empty,
            [1, tail @ ..] if tail.len() == 64 => Terminal::Leaf {
                key_hash: tail[..32].try_into().expect("32 bytes"),
                value_hash: tail[32..].try_into().expect("32 bytes"),
            },
            _ => return Err(ProofError::Malformed),
        };
        Ok(Proof { siblings, terminal })
    }
}

/// Builds the proof for `key` by walking the tree whose root is `root`,
/// reading nodes from `reader`.
pub fn prove<R: crate::tree::NodeReader>(
    reader: &R,
    root: Option<&crate::tree::Child>,
    key: &[u8],
) -> Result<Proof, R::Error> {
    use crate::tree::{Child, NodeKey, nibble};
    let key_hash = key_hash(key);
    let mut siblings = Vec::new();
    let mut path = Vec::new();
    let mut child = root.cloned();
    loop {
        match child {
            None => {
                return Ok(Proof {
                    siblings,
                    terminal: Terminal::Empty,
                });
            }
            Some(Child::Leaf {
                key_hash,
                value_hash,
                ..
            }) => {
                return Ok(Proof {
                    siblings,
                    terminal: Terminal::Leaf {
                        key_hash,
                        value_hash,
                    },
                });
            }
            Some(Child::Node { version, .. }) => {
                let node = reader.node(&NodeKey::new(version, &path))?;
                let idx = nibble(&key_hash, path.len());
                siblings.extend_from_slice(&node.siblings(idx));
                child = node.children[idx as usize].clone();
                path.push(idx);
            }
        }
    }
}
