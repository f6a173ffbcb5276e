//! Raft's log and vote in RocksDB (`<data dir>/raft`), openraft's
//! `RaftLogStorage`: every append, truncation, purge and vote is a synced
//! write batch, durable before openraft is told it is done (and so before
//! this node acknowledges anything to a leader or a candidate).
//!
//! Column family `log` maps an index (8 bytes, big-endian) to a borsh
//! [`WireEntry`]; `meta` holds the vote, the committed position, the last
//! purged position, and the state machine's applied position and
//! membership (see [`super::state_machine`]).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use borsh::BorshDeserialize;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{RaftLogId, StorageIOError};
use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use super::wire::{LOG_ID_BYTES, WireEntry, WireLogId, WireVote};

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const META_VOTE: &[u8] = b"vote";
const META_COMMITTED: &[u8] = b"committed";
const META_PURGED: &[u8] = b"purged";

/// Keys of the state machine's own entries in `meta`.
pub(crate) const META_APPLIED: &[u8] = b"sm-applied";
pub(crate) const META_MEMBERSHIP: &[u8] = b"sm-membership";

/// The engine's RocksDB: the log, the vote, and the state machine's
/// position.
#[derive(Clone)]
pub struct RaftDb {
    db: Arc<DB>,
}

fn read_error(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::read(openraft::AnyError::error(error.to_string())).into()
}

fn write_error(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write(openraft::AnyError::error(error.to_string())).into()
}

impl RaftDb {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<RaftDb, String> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [CF_LOG, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|error| format!("cannot open the Raft log at {}: {error}", path.display()))?;
        Ok(RaftDb { db: Arc::new(db) })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn synced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(write_error)
    }

    /// A `meta` value.
    pub(crate) fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(CF_META), key).map_err(read_error)
    }

    /// Writes `meta` values in one batch, synced when `sync`.
    pub(crate) fn put_meta(
        &self,
        entries: &[(&[u8], Vec<u8>)],
        sync: bool,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            batch.put_cf(self.cf(CF_META), key, value);
        }
        if sync {
            self.synced(batch)
        } else {
            self.db.write(batch).map_err(write_error)
        }
    }

    fn decode_meta<T: BorshDeserialize>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.meta(key)? {
            None => Ok(None),
            Some(bytes) => T::try_from_slice(&bytes)
                .map(Some)
                .map_err(|error| read_error(format!("corrupt Raft meta entry: {error}"))),
        }
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut iterator = self.db.iterator_cf(self.cf(CF_LOG), IteratorMode::End);
        match iterator.next() {
            None => Ok(None),
            Some(entry) => {
                let (_, value) = entry.map_err(read_error)?;
                let head = value
                    .get(..LOG_ID_BYTES)
                    .ok_or_else(|| read_error("a log entry is shorter than its log id"))?;
                let wire = WireLogId::try_from_slice(head).map_err(read_error)?;
                Ok(Some(wire.into()))
            }
        }
    }

    /// The log's entries with indexes in `range`, in order.
    fn entries(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StorageError> {
        let mut entries = Vec::new();
        let iterator = self.db.iterator_cf(
            self.cf(CF_LOG),
            IteratorMode::From(&start.to_be_bytes(), Direction::Forward),
        );
        for item in iterator {
            let (key, value) = item.map_err(read_error)?;
            let index = key
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| read_error("a log key is not 8 bytes"))?;
            if end.is_some_and(|end| index >= end) {
                break;
            }
            let wire = WireEntry::try_from_slice(&value).map_err(|error| {
                read_error(format!("log entry {index} does not decode: {error}"))
            })?;
            entries.push(wire.into());
        }
        Ok(entries)
    }

    /// Removes log entries from `index` on (for tests that lose a node's
    /// unflushed tail: what a crash before the sync would have lost).
    pub fn cut_log_from(&self, index: u64) -> Result<(), String> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_LOG), index.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(self.cf(CF_LOG), u64::MAX.to_be_bytes());
        self.synced(batch).map_err(|error| error.to_string())
    }

    /// The index of the last entry in the log, if any (for tests).
    pub fn last_index(&self) -> Result<Option<u64>, String> {
        self.last_entry_id()
            .map(|id| id.map(|id| id.index))
            .map_err(|error| error.to_string())
    }
}

/// The log store openraft uses (and its readers: clones of it).
#[derive(Clone)]
pub struct LogStore {
    db: RaftDb,
}

impl LogStore {
    /// The store over `db`.
    pub fn new(db: RaftDb) -> Self {
        LogStore { db }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(start) => *start,
            Bound::Excluded(start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(end) => Some(end.saturating_add(1)),
            Bound::Excluded(end) => Some(*end),
            Bound::Unbounded => None,
        };
        self.db.entries(start, end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let purged: Option<WireLogId> = self.db.decode_meta(META_PURGED)?;
        let purged: Option<LogId> = purged.map(Into::into);
        let last = self.db.last_entry_id()?.or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = borsh::to_vec(&WireVote::from(vote)).map_err(write_error)?;
        self.db.put_meta(&[(META_VOTE, bytes)], true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let vote: Option<WireVote> = self.db.decode_meta(META_VOTE)?;
        Ok(vote.map(Into::into))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let wire = committed.as_ref().map(WireLogId::from);
        let bytes = borsh::to_vec(&wire).map_err(write_error)?;
        // Not synced: after a crash the committed position is learnt again
        // from the leader; it only saves re-applying entries at restart.
        self.db.put_meta(&[(META_COMMITTED, bytes)], false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<WireLogId>> = self.db.decode_meta(META_COMMITTED)?;
        Ok(committed.flatten().map(Into::into))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let index = entry.get_log_id().index;
            let bytes = borsh::to_vec(&WireEntry::from(entry)).map_err(write_error)?;
            batch.put_cf(self.db.cf(CF_LOG), index.to_be_bytes(), bytes);
        }
        // Durable before openraft hears it is done.
        let result = self.db.synced(batch);
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|error| std::io::Error::other(error.to_string())),
        );
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.db.cf(CF_LOG),
            log_id.index.to_be_bytes(),
            u64::MAX.to_be_bytes(),
        );
        batch.delete_cf(self.db.cf(CF_LOG), u64::MAX.to_be_bytes());
        self.db.synced(batch)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let bytes = borsh::to_vec(&WireLogId::from(&log_id)).map_err(write_error)?;
        batch.put_cf(self.db.cf(CF_META), META_PURGED, bytes);
        batch.delete_range_cf(
            self.db.cf(CF_LOG),
            0u64.to_be_bytes(),
            log_id.index.saturating_add(1).to_be_bytes(),
        );
        self.db.synced(batch)
    }
}
