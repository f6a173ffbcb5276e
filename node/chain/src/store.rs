//! The block store: blocks (each with the ordering mark it was executed
//! with), the transaction index, receipts and the event index, in their own
//! RocksDB next to the state.
//!
//! A block and its mark are written (synced, one batch) before it executes;
//! its receipts are written (synced) before the state commits it. After a
//! crash, every stored block above the state's version is executed again,
//! which rewrites the same receipts, so the store and the state always agree
//! on restart. A snapshot's block is written with a pending marker that
//! the state's commit of the snapshot clears (see [`BlockStore::snapshot_pending`]).

use std::path::Path;

use borsh::BorshDeserialize;
use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};
use stele_host_api::{Address, Event};
use stele_types::{Block, Receipt, ReceiptStatus, TxHash, decode_block};

use crate::ChainError;

const BLOCKS: &str = "blocks";
const TXS: &str = "txs";
const RECEIPTS: &str = "receipts";
const EVENTS: &str = "events";
const MARKS: &str = "marks";
const META: &str = "meta";
/// `meta` key: the height of a snapshot being installed.
const SNAPSHOT_PENDING: &[u8] = b"snapshot-pending";

/// Most index entries one event query scans.
pub const EVENT_SCAN_MAX: usize = 10_000;

/// Where a transaction sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

/// One indexed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedEvent {
    /// Block height.
    pub height: u64,
    /// Transaction index in the block.
    pub tx_index: u32,
    /// Event index in the transaction.
    pub event_index: u32,
    /// The event.
    pub event: Event,
}

/// Blocks, receipts and indexes on RocksDB.
pub struct BlockStore {
    db: DB,
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> ChainError {
    ChainError::Store(format!("corrupt {what}: {error}"))
}

fn store_error(error: rocksdb::Error) -> ChainError {
    ChainError::Store(error.to_string())
}

fn receipt_key(height: u64, index: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&height.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

fn event_key(contract: &Address, height: u64, tx_index: u32, event_index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(&contract.0);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(&tx_index.to_be_bytes());
    key.extend_from_slice(&event_index.to_be_bytes());
    key
}

impl BlockStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<BlockStore, ChainError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [BLOCKS, TXS, RECEIPTS, EVENTS, MARKS, META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|error| {
            ChainError::Store(format!("cannot open {}: {error}", path.display()))
        })?;
        Ok(BlockStore { db })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created on open")
    }

    fn synced(&self, batch: WriteBatch) -> Result<(), ChainError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(store_error)
    }

    /// Stores an ordered block and the ordering mark it executes with
    /// (synced, one batch) before it executes.
    pub fn put_block(&self, block: &Block, mark: &[u8]) -> Result<(), ChainError> {
        let mut batch = WriteBatch::default();
        self.put_block_into(&mut batch, block, mark);
        self.synced(batch)
    }

    fn put_block_into(&self, batch: &mut WriteBatch, block: &Block, mark: &[u8]) {
        let key = block.header.height.to_be_bytes();
        let bytes = borsh::to_vec(block).expect("writing to a Vec cannot fail");
        batch.put_cf(self.cf(BLOCKS), key, bytes);
        if mark.is_empty() {
            batch.delete_cf(self.cf(MARKS), key);
        } else {
            batch.put_cf(self.cf(MARKS), key, mark);
        }
    }

    /// The ordering mark the block at `height` was executed with (`None`
    /// when it had none).
    pub fn mark(&self, height: u64) -> Result<Option<Vec<u8>>, ChainError> {
        self.db
            .get_cf(self.cf(MARKS), height.to_be_bytes())
            .map_err(store_error)
    }

    /// Stores the block of a snapshot being installed, with its mark and a
    /// marker saying the state has not committed the snapshot yet (synced).
    pub fn put_snapshot_block(
        &self,
        block: Option<&Block>,
        height: u64,
        mark: &[u8],
    ) -> Result<(), ChainError> {
        let mut batch = WriteBatch::default();
        if let Some(block) = block {
            self.put_block_into(&mut batch, block, mark);
        }
        batch.put_cf(self.cf(META), SNAPSHOT_PENDING, height.to_be_bytes());
        self.synced(batch)
    }

    /// The height of a snapshot whose block is stored but whose state may
    /// not be committed (a crash during its installation).
    pub fn snapshot_pending(&self) -> Result<Option<u64>, ChainError> {
        let Some(bytes) = self
            .db
            .get_cf(self.cf(META), SNAPSHOT_PENDING)
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("snapshot marker", "length"))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Ends a snapshot's installation: with `keep_block` false (its state
    /// never committed), its block goes too (synced).
    pub fn finish_snapshot(&self, height: u64, keep_block: bool) -> Result<(), ChainError> {
        let mut batch = WriteBatch::default();
        if !keep_block {
            batch.delete_cf(self.cf(BLOCKS), height.to_be_bytes());
            batch.delete_cf(self.cf(MARKS), height.to_be_bytes());
        }
        batch.delete_cf(self.cf(META), SNAPSHOT_PENDING);
        self.synced(batch)
    }

    /// Height of the last stored block (0 when none).
    pub fn last_height(&self) -> Result<u64, ChainError> {
        let mut iter = self.db.iterator_cf(self.cf(BLOCKS), IteratorMode::End);
        match iter.next() {
            None => Ok(0),
            Some(entry) => {
                let (key, _) = entry.map_err(store_error)?;
                let bytes: [u8; 8] = key[..]
                    .try_into()
                    .map_err(|_| corrupt("block key", "length"))?;
                Ok(u64::from_be_bytes(bytes))
            }
        }
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, ChainError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(BLOCKS), height.to_be_bytes())
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        decode_block(&bytes)
            .map(Some)
            .map_err(|error| corrupt(&format!("block {height}"), error))
    }

    /// Stores a block's receipts, transaction index and events (synced),
    /// before the state commits the block. A transaction refused at
    /// execution (`Invalid`) whose hash already has a location keeps it: a
    /// transaction ordered twice (its second copy refused for its used
    /// nonce) stays found where it executed.
    pub fn put_receipts(&self, receipts: &[Receipt]) -> Result<(), ChainError> {
        let mut batch = WriteBatch::default();
        for receipt in receipts {
            let key = receipt_key(receipt.height, receipt.index);
            let located = matches!(receipt.status, ReceiptStatus::Invalid { .. })
                && self
                    .locate(&receipt.tx_hash)?
                    .is_some_and(|at| (at.height, at.index) != (receipt.height, receipt.index));
            if !located {
                batch.put_cf(self.cf(TXS), receipt.tx_hash, key);
            }
            batch.put_cf(
                self.cf(RECEIPTS),
                key,
                borsh::to_vec(receipt).expect("writing to a Vec cannot fail"),
            );
            for (event_index, event) in receipt.events.iter().enumerate() {
                batch.put_cf(
                    self.cf(EVENTS),
                    event_key(
                        &event.contract,
                        receipt.height,
                        receipt.index,
                        event_index as u32,
                    ),
                    borsh::to_vec(event).expect("writing to a Vec cannot fail"),
                );
            }
        }
        self.synced(batch)
    }

    /// Where a transaction was included, if it was.
    pub fn locate(&self, hash: &TxHash) -> Result<Option<TxLocation>, ChainError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(TXS), hash)
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        if bytes.len() != 12 {
            return Err(corrupt("transaction index", "length"));
        }
        Ok(Some(TxLocation {
            height: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            index: u32::from_be_bytes(bytes[8..].try_into().expect("4 bytes")),
        }))
    }

    /// The receipt of the transaction at `location`.
    pub fn receipt(&self, location: TxLocation) -> Result<Option<Receipt>, ChainError> {
        let key = receipt_key(location.height, location.index);
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(RECEIPTS), key)
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        Receipt::try_from_slice(&bytes)
            .map(Some)
            .map_err(|error| corrupt("receipt", error))
    }

    /// Every receipt of the block at `height`, in order.
    pub fn receipts(&self, height: u64) -> Result<Vec<Receipt>, ChainError> {
        let start = receipt_key(height, 0);
        let mut receipts = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(RECEIPTS),
            IteratorMode::From(&start, Direction::Forward),
        );
        for entry in iter {
            let (key, value) = entry.map_err(store_error)?;
            if key[..8] != height.to_be_bytes() {
                break;
            }
            receipts
                .push(Receipt::try_from_slice(&value).map_err(|error| corrupt("receipt", error))?);
        }
        Ok(receipts)
    }

    /// Events of `contract` from position `from` (height, transaction,
    /// event) on, up to `to_height`, whose topics start with `topics`: at
    /// most `limit` of them, after scanning at most [`EVENT_SCAN_MAX`]
    /// entries. Also returns where to continue, when there may be more.
    pub fn events(
        &self,
        contract: &Address,
        from: (u64, u32, u32),
        to_height: u64,
        topics: &[[u8; 32]],
        limit: usize,
    ) -> Result<(Vec<IndexedEvent>, Option<(u64, u32, u32)>), ChainError> {
        let start = event_key(contract, from.0, from.1, from.2);
        let iter = self.db.iterator_cf(
            self.cf(EVENTS),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut found = Vec::new();
        for (scanned, entry) in iter.enumerate() {
            let (key, value) = entry.map_err(store_error)?;
            if key.len() != 48 || key[..32] != contract.0 {
                break;
            }
            let position = (
                u64::from_be_bytes(key[32..40].try_into().expect("8 bytes")),
                u32::from_be_bytes(key[40..44].try_into().expect("4 bytes")),
                u32::from_be_bytes(key[44..48].try_into().expect("4 bytes")),
            );
            if position.0 > to_height {
                break;
            }
            if found.len() == limit || scanned == EVENT_SCAN_MAX {
                return Ok((found, Some(position)));
            }
            let event = Event::try_from_slice(&value).map_err(|error| corrupt("event", error))?;
            if event.topics.starts_with(topics) {
                found.push(IndexedEvent {
                    height: position.0,
                    tx_index: position.1,
                    event_index: position.2,
                    event,
                });
            }
        }
        Ok((found, None))
    }
}
