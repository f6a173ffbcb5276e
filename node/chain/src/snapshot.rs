//! The snapshot format: the executed chain at one height, for a replica
//! that fell behind (state sync).
//!
//! ```text
//! magic        16 bytes  "stele-snapshot01"
//! genesis      32 bytes  the chain's genesis hash
//! height        8 bytes  little-endian
//! state root   32 bytes  the root after the block at `height`
//! mark         borsh Option<Vec<u8>>, at most ORDERING_MARK_BYTES_MAX
//! block        u32 length (0: none, at height 0) + borsh Block
//! entries      repeated: 1u8, u32 key length, key, u32 value length, value
//!              (keys strictly ascending); then 0u8
//! checksum     32 bytes  BLAKE3 of everything above
//! ```
//!
//! Reading checks every length against its limit before allocating, the
//! order of the keys and the checksum; the installer then rebuilds the root
//! from the entries and compares it with the one the snapshot claims.

use std::io::{Read, Write};

use stele_consensus::{ORDERING_MARK_BYTES_MAX, SnapshotError};
use stele_host_api::limits::{CODE_BYTES_MAX, STORAGE_KEY_BYTES_MAX, STORAGE_VALUE_BYTES_MAX};
use stele_runtime::storage::keys::CONTRACT_STORAGE_HEADER_BYTES;
use stele_types::limits::BLOCK_BYTES_MAX;
use stele_types::{Block, decode_block};

/// The first bytes of every snapshot (the format's version is the last two).
pub const SNAPSHOT_MAGIC: &[u8; 16] = b"stele-snapshot01";

/// Longest key a snapshot entry may have.
pub const SNAPSHOT_KEY_BYTES_MAX: usize = 2 * 1024;

/// Longest value a snapshot entry may have (contract code is the largest).
pub const SNAPSHOT_VALUE_BYTES_MAX: usize = CODE_BYTES_MAX;

const _: () =
    assert!(STORAGE_KEY_BYTES_MAX + CONTRACT_STORAGE_HEADER_BYTES <= SNAPSHOT_KEY_BYTES_MAX);
const _: () = assert!(STORAGE_VALUE_BYTES_MAX <= SNAPSHOT_VALUE_BYTES_MAX);

fn failed(what: &str, error: impl std::fmt::Display) -> SnapshotError {
    SnapshotError(format!("{what}: {error}"))
}

/// What comes before a snapshot's entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The chain's genesis hash.
    pub genesis_hash: [u8; 32],
    /// The height whose state follows.
    pub height: u64,
    /// The state root after that height.
    pub state_root: [u8; 32],
    /// The ordering mark the block at that height executed with.
    pub mark: Option<Vec<u8>>,
    /// The block at that height (`None` at height 0).
    pub block: Option<Block>,
}

/// Writes a snapshot, hashing what it writes for the checksum.
pub struct SnapshotWriter<'a> {
    out: &'a mut dyn Write,
    hasher: blake3::Hasher,
}

impl<'a> SnapshotWriter<'a> {
    /// Writes the header.
    pub fn new(
        out: &'a mut dyn Write,
        header: &SnapshotHeader,
    ) -> Result<SnapshotWriter<'a>, SnapshotError> {
        let mut writer = SnapshotWriter {
            out,
            hasher: blake3::Hasher::new(),
        };
        writer.put(SNAPSHOT_MAGIC)?;
        writer.put(&header.genesis_hash)?;
        writer.put(&header.height.to_le_bytes())?;
        writer.put(&header.state_root)?;
        let mark = borsh::to_vec(&header.mark).map_err(|error| failed("mark", error))?;
        writer.put(&mark)?;
        match &header.block {
            None => writer.put(&0u32.to_le_bytes())?,
            Some(block) => {
                let bytes = borsh::to_vec(block).map_err(|error| failed("block", error))?;
                writer.put(&(bytes.len() as u32).to_le_bytes())?;
                writer.put(&bytes)?;
            }
        }
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.hasher.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|error| failed("writing", error))
    }

    /// Writes one entry (keys in ascending order).
    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), SnapshotError> {
        self.put(&[1])?;
        self.put(&(key.len() as u32).to_le_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_le_bytes())?;
        self.put(value)
    }

    /// Ends the entries and writes the checksum.
    pub fn finish(mut self) -> Result<(), SnapshotError> {
        self.put(&[0])?;
        let checksum = *self.hasher.finalize().as_bytes();
        self.out
            .write_all(&checksum)
            .and_then(|()| self.out.flush())
            .map_err(|error| failed("writing", error))
    }
}

/// Reads a snapshot, checking lengths, order and the checksum.
pub struct SnapshotReader<'a> {
    input: &'a mut dyn Read,
    hasher: blake3::Hasher,
    last_key: Option<Vec<u8>>,
    done: bool,
}

impl<'a> SnapshotReader<'a> {
    /// Reads the header.
    pub fn new(
        input: &'a mut dyn Read,
    ) -> Result<(SnapshotReader<'a>, SnapshotHeader), SnapshotError> {
        let mut reader = SnapshotReader {
            input,
            hasher: blake3::Hasher::new(),
            last_key: None,
            done: false,
        };
        let magic: [u8; 16] = reader.array()?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError(
                "not a snapshot of this format (bad magic bytes)".into(),
            ));
        }
        let genesis_hash = reader.array()?;
        let height = u64::from_le_bytes(reader.array()?);
        let state_root = reader.array()?;
        let mark = match reader.array::<1>()?[0] {
            0 => None,
            1 => {
                let len = reader.length("mark", ORDERING_MARK_BYTES_MAX)?;
                Some(reader.bytes(len)?)
            }
            tag => return Err(SnapshotError(format!("bad mark tag {tag}"))),
        };
        let block_len = reader.length("block", BLOCK_BYTES_MAX)?;
        let block = match block_len {
            0 => None,
            len => {
                let bytes = reader.bytes(len)?;
                Some(decode_block(&bytes).map_err(|error| failed("its block", error))?)
            }
        };
        let header = SnapshotHeader {
            genesis_hash,
            height,
            state_root,
            mark,
            block,
        };
        Ok((reader, header))
    }

    fn fill(&mut self, buffer: &mut [u8]) -> Result<(), SnapshotError> {
        self.input
            .read_exact(buffer)
            .map_err(|error| failed("reading (truncated?)", error))?;
        self.hasher.update(buffer);
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut buffer = [0; N];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    fn length(&mut self, what: &str, max: usize) -> Result<usize, SnapshotError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > max {
            return Err(SnapshotError(format!(
                "{what} of {len} bytes is over the limit of {max}"
            )));
        }
        Ok(len)
    }

    fn bytes(&mut self, len: usize) -> Result<Vec<u8>, SnapshotError> {
        let mut buffer = vec![0; len];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    /// The next entry, or `None` after the last (the checksum then checked).
    pub fn next_entry(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>, SnapshotError> {
        if self.done {
            return Ok(None);
        }
        match self.array::<1>()?[0] {
            0 => {
                self.done = true;
                let computed = *self.hasher.finalize().as_bytes();
                let mut stored = [0; 32];
                self.input
                    .read_exact(&mut stored)
                    .map_err(|error| failed("reading the checksum", error))?;
                if stored != computed {
                    return Err(SnapshotError(
                        "checksum mismatch: the snapshot is corrupt".into(),
                    ));
                }
                let mut extra = [0; 1];
                if self.input.read(&mut extra).unwrap_or(0) != 0 {
                    return Err(SnapshotError("bytes after the checksum".into()));
                }
                Ok(None)
            }
            1 => {
                let key_len = self.length("a key", SNAPSHOT_KEY_BYTES_MAX)?;
                let key = self.bytes(key_len)?;
                let value_len = self.length("a value", SNAPSHOT_VALUE_BYTES_MAX)?;
                let value = self.bytes(value_len)?;
                if self.last_key.as_ref().is_some_and(|last| *last >= key) {
                    return Err(SnapshotError(
                        "entries are not in strictly ascending key order".into(),
                    ));
                }
                self.last_key = Some(key.clone());
                Ok(Some((key, value)))
            }
            tag => Err(SnapshotError(format!("bad entry tag {tag}"))),
        }
    }
}
