//! The state store on RocksDB.
//!
//! Column families:
//! * `values` — every key's values by version, with RocksDB's user-defined
//!   timestamps (the version, 8 bytes big-endian, after the key; newest
//!   first): a read at the latest version, or at any retained one, is one
//!   RocksDB get, no tree walk; a removal is a tombstone at its version.
//!   Versions below the oldest retained one are dropped by RocksDB's own
//!   flushes and compactions (its `full_history_ts_low`), with no deletes
//!   in the commit;
//! * `nodes` — tree nodes by [`NodeKey`] (version, path), each whole or as
//!   a delta of the slots that changed since its previous version (see
//!   [`tree::Chain`]). No retained version reaches an entry more than
//!   [`NODE_AGE_MAX`] versions older than itself (each commit rewrites the
//!   nodes about to break that, see [`NODE_SWEEP_VERSIONS`]), so the
//!   entries below the oldest retained version minus that are dropped
//!   whole: RocksDB deletes the files that hold only them and its
//!   compactions filter out the rest, with no deletes in the commit;
//! * `roots` — the tree root of every retained version;
//! * `meta` — the last committed version, its root, the oldest version
//!   still readable and since when nodes have been kept young; and the
//!   database's [`STATE_FORMAT`].
//!
//! A commit is one write batch across all of them, so a crash at any point
//! leaves either the previous version or the new one, complete. What it
//! adds to keep pruning bounded (the nodes it rewrites) rides in the same
//! batch and is bounded per commit. The batch goes into RocksDB's memtables
//! without its write-ahead log while the store's own commit log
//! ([`crate::commit_log`]) syncs a copy: RocksDB flushes all the column
//! families together, and the open replays the log's records above the
//! version RocksDB's files end at.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Direction, FlushOptions, IteratorMode,
    Options, ReadOptions, ReadTier, WriteBatch, WriteOptions,
};

use crate::cache::ValueCache;
use crate::commit_log::CommitLog;
use crate::node_cache::NodeCache;
use crate::proof::{Proof, prove};
use crate::tree::{
    self, Child, EMPTY, Hash, Node, NodeKey, NodeReader, Refresh, key_hash, value_hash,
};

const CF_VALUES: &str = "values";
const CF_NODES: &str = "nodes";
const CF_ROOTS: &str = "roots";
const CF_META: &str = "meta";
const COLUMN_FAMILIES: [&str; 4] = [CF_VALUES, CF_NODES, CF_ROOTS, CF_META];
const META_LATEST: &[u8] = b"latest";
const META_FORMAT: &[u8] = b"format";

/// The layout and hashing of the stored data. A database written in
/// another format is refused at open rather than read wrongly: its roots
/// would not match the ones this build computes. Format 1 (no marker) hashed
/// pairs with unkeyed BLAKE3 and stored versions as 8 bytes; format 2 used
/// keyed BLAKE3 and compact nodes ([`Node::encode`]), each stored whole;
/// format 3 stores a node whole or as a delta over its previous version
/// ([`StoredNode`]); format 4 keeps values by version in one column family
/// (`values`) instead of latest values beside a history, and leaves in
/// nodes no longer carry the version of their value; format 5 keeps nodes
/// young ([`NODE_AGE_MAX`]) and prunes them by age, without the lists of
/// superseded nodes (`stale`) that format 4 deleted one by one; format 6
/// stores a leaf that keeps its key, with a new value, by its value hash
/// alone in a delta ([`StoredNode::Delta`]'s `kept` slots), and lets a
/// node's chain of entries grow to 20 ([`CHAIN_ENTRIES_MAX`]; 12 before);
/// format 7 makes commits durable in its own commit log (`commit-log/` in
/// the database's directory, see [`StateDb::commit`]) instead of RocksDB's
/// write-ahead log, which an older build would not replay.
///
/// A format 5 or 6 database holds nothing format 7 reads differently (its
/// commits are in RocksDB's write-ahead log, which RocksDB replays): it
/// opens, and is marked format 7 (which older builds then refuse).
pub const STATE_FORMAT: u32 = 7;

/// The older formats this build opens, marking them [`STATE_FORMAT`].
const STATE_FORMATS_UPGRADED: [u32; 2] = [5, 6];

/// Column families that only older layouts have: `flat` and `history`
/// (formats 1 to 3, latest values apart from their history) and `stale`
/// (formats 1 to 4).
const COLUMN_FAMILIES_OLDER: [&str; 3] = ["flat", "history", "stale"];

/// No retained version reaches a stored node entry more than this many
/// versions older than itself: the tree at version `v` is made of entries
/// written after `v - NODE_AGE_MAX`. So once `oldest` is the oldest
/// retained version, every entry written at or below `oldest -
/// NODE_AGE_MAX` is garbage, and is dropped by its version alone.
pub const NODE_AGE_MAX: u64 = 256;

/// Versions in which a commit's sweep goes once over the whole tree. Each
/// commit visits one slice of it (a `1/NODE_SWEEP_VERSIONS` share of the
/// key hashes, by their first byte) besides what its writes touch, and
/// rewrites whole every node there whose chain began at least
/// `NODE_AGE_MAX - NODE_SWEEP_VERSIONS` versions ago (as does any write
/// that reaches such a node); so no chain gets [`NODE_AGE_MAX`] versions
/// old before a sweep ends it. Divides 256. The sweep peeks at about
/// `1/NODE_SWEEP_VERSIONS` of the live nodes per commit, and rewrites those
/// that no write reached for long (at 1M keys, 10,000 writes a block: some
/// 10-15% more node entries per block).
pub const NODE_SWEEP_VERSIONS: u64 = 64;

/// What a commit of `version` after `latest` rewrites to keep nodes young:
/// the slices of the versions since `latest` (all of them after a jump of
/// a full sweep or more).
fn refresh_for(version: u64, latest: Option<u64>) -> Refresh {
    let first = latest.map_or(version, |latest| latest + 1);
    let per_slice = 256 / NODE_SWEEP_VERSIONS;
    let mut swept = [0u64; 4];
    let slices = (version - first + 1).min(NODE_SWEEP_VERSIONS);
    for at in 0..slices {
        let slice = (version - at) % NODE_SWEEP_VERSIONS;
        for byte in slice * per_slice..(slice + 1) * per_slice {
            swept[byte as usize / 64] |= 1 << (byte % 64);
        }
    }
    Refresh {
        base_at_most: version.saturating_sub(NODE_AGE_MAX - NODE_SWEEP_VERSIONS),
        swept,
    }
}

/// The name of the `values` comparator: RocksDB refuses to open the column
/// family with any other.
const VALUES_COMPARATOR: &str = "stele.key-then-newest-version.v1";

/// Bytes of a version as a `values` timestamp.
const VERSION_BYTES: usize = 8;

/// The `values` timestamp of `version`: big-endian, so that byte order is
/// version order.
fn version_ts(version: u64) -> [u8; VERSION_BYTES] {
    version.to_be_bytes()
}

/// `values` order: by key, then newest version first. `a` and `b` end with
/// their timestamps.
fn compare_values_keys(a: &[u8], b: &[u8]) -> Ordering {
    let (a_key, a_ts) = a.split_at(a.len().saturating_sub(VERSION_BYTES));
    let (b_key, b_ts) = b.split_at(b.len().saturating_sub(VERSION_BYTES));
    a_key.cmp(b_key).then_with(|| b_ts.cmp(a_ts))
}

/// `values` order of two keys without their timestamps (each flag says
/// whether that key still carries one).
fn compare_values_keys_without_ts(a: &[u8], a_has_ts: bool, b: &[u8], b_has_ts: bool) -> Ordering {
    let strip = |key: &'_ [u8], has_ts: bool| -> usize {
        if has_ts {
            key.len().saturating_sub(VERSION_BYTES)
        } else {
            key.len()
        }
    };
    a[..strip(a, a_has_ts)].cmp(&b[..strip(b, b_has_ts)])
}

/// Versions between raises of `values`' `full_history_ts_low` (and
/// deletions of `nodes` files below the node floor). Each is a synced write
/// of RocksDB's manifest, so it is made every this many versions rather
/// than at every commit; until it is, up to this many more versions than
/// the window wait to be dropped.
pub const HISTORY_LOW_STEP: u64 = 16;

/// Read options at `version` of `values`.
fn read_at(version: u64) -> ReadOptions {
    let mut read = ReadOptions::default();
    read.set_timestamp(version_ts(version));
    read
}

/// How long old versions stay readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// The last `n` versions before the latest (and the latest).
    Window(u64),
    /// Every version, forever.
    Archive,
}

/// Configuration of a [`StateDb`].
#[derive(Clone, Debug)]
pub struct StateConfig {
    /// Directory of the database.
    pub path: PathBuf,
    /// Which versions stay readable. Default: the last 1,000.
    pub retention: Retention,
    /// Nodes of the live tree kept in memory (about 2.4 KiB each, with
    /// their binary hashes), plus a sixteenth as many others read from disk
    /// (past versions). Default: 1,000,000 (up to about 2.4 GiB; the live
    /// tree of a 1M-key state is about 350k nodes, some 840 MiB — 65,536 at
    /// depth 4 and one below each of their ~260k slots that two keys share —
    /// and superseded nodes leave the cache at each commit).
    pub node_cache_entries: usize,
    /// RocksDB block cache. Default: 256 MiB.
    pub block_cache_bytes: usize,
    /// Latest values kept in memory in front of `values` (recently
    /// read or written; 0 turns it off). Default: 64 MiB.
    pub value_cache_bytes: usize,
    /// Whether a commit waits for its commit log record to reach the disk.
    /// Default: true (a returned commit survives a power loss).
    pub sync_commits: bool,
    /// Bytes after which a commit log segment is closed; a closed segment
    /// is removed once RocksDB has flushed every version in it. Default:
    /// 64 MiB.
    pub log_segment_bytes: u64,
}

impl StateConfig {
    /// The defaults, at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateConfig {
            path: path.into(),
            retention: Retention::Window(1_000),
            node_cache_entries: 1_000_000,
            block_cache_bytes: 256 * 1024 * 1024,
            value_cache_bytes: 64 * 1024 * 1024,
            sync_commits: true,
            log_segment_bytes: crate::commit_log::SEGMENT_BYTES,
        }
    }

    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<(), StateError> {
        if self.node_cache_entries == 0 {
            return Err(StateError::Config(
                "node_cache_entries must be at least 1".into(),
            ));
        }
        if self.log_segment_bytes == 0 {
            return Err(StateError::Config(
                "log_segment_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// What went wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB failed.
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored data does not decode: the database is corrupt.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A commit's version does not follow the latest.
    #[error("version {version} does not follow the latest committed version {latest}")]
    VersionNotIncreasing {
        /// The version given.
        version: u64,
        /// The latest committed version.
        latest: u64,
    },
    /// A read below the retention window.
    #[error("version {version} is pruned; the oldest readable version is {oldest}")]
    VersionPruned {
        /// The version asked for.
        version: u64,
        /// The oldest readable version.
        oldest: u64,
    },
    /// A read above the latest version, or before any commit.
    #[error("version {version} is not committed (latest: {latest:?})")]
    VersionUnknown {
        /// The version asked for.
        version: u64,
        /// The latest committed version, if any.
        latest: Option<u64>,
    },
    /// A configuration value is out of range.
    #[error("invalid state configuration: {0}")]
    Config(String),
    /// The commit log failed (see [`StateDb::commit`]).
    #[error("commit log: {0}")]
    Log(String),
    /// An earlier commit failed after its batch reached RocksDB or the
    /// commit log: it is committed or not as the next open finds it, and
    /// this store commits nothing more.
    #[error("an earlier commit failed part-way; reopen the state database")]
    Poisoned,
    /// The database was written in a format this build does not read.
    #[error(
        "the state database is in format {found}, this build reads format {expected}; \
         start from a new data directory"
    )]
    Format {
        /// The database's format.
        found: u32,
        /// The format this build reads and writes ([`STATE_FORMAT`]).
        expected: u32,
    },
}

/// The writes of one block: key → new value, or `None` to remove.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A write: its key and new value (`None` to remove).
type Write<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// Below this many writes a commit hashes them on one thread.
const PARALLEL_HASHES_MIN: usize = 1024;

/// The tree's update for each write: `(blake3(key), blake3(value) or
/// None)`, in the order of `writes`.
fn hash_writes(writes: &[Write<'_>]) -> Vec<(Hash, Option<Hash>)> {
    writes
        .iter()
        .map(|(key, value)| (key_hash(key), value.as_deref().map(value_hash)))
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    latest: Option<u64>,
    root: Option<Child>,
    oldest: u64,
    /// The first version of the run of commits, to the latest, that kept
    /// nodes young (see [`NODE_AGE_MAX`]); `u64::MAX` if the last one did
    /// not (archive mode keeps every node, and does not).
    young_since: u64,
}

impl Default for Meta {
    fn default() -> Meta {
        Meta {
            latest: None,
            root: None,
            oldest: 0,
            young_since: u64::MAX,
        }
    }
}

impl Meta {
    /// The lowest node version a retained version may still reach:
    /// entries below it are garbage. 0 (keep everything) until a full
    /// sweep has passed since `young_since`.
    fn node_floor(&self) -> u64 {
        if self.oldest < self.young_since.saturating_add(NODE_SWEEP_VERSIONS) {
            return 0;
        }
        (self.oldest + 1).saturating_sub(NODE_AGE_MAX)
    }
}

/// The root of `version`, encoded as the only child of a node of that
/// version.
fn encode_root(root: &Option<Child>, version: u64) -> Vec<u8> {
    let mut node = Node::default();
    node.children[0] = root.clone();
    node.encode(version)
}

fn decode_root(bytes: &[u8], version: u64) -> Result<Option<Child>, StateError> {
    let mut node =
        Node::decode(bytes, version).ok_or_else(|| StateError::Corrupt("root entry".into()))?;
    Ok(node.children[0].take())
}

/// Versioned authenticated state on RocksDB. Reads take `&self` and may run
/// on many threads; commits are serialized.
pub struct StateDb {
    db: DB,
    config: StateConfig,
    meta: RwLock<Meta>,
    nodes: NodeCache,
    values: ValueCache,
    commit_lock: Mutex<()>,
    /// The oldest version as of the last [`StateDb::release`]: the
    /// `full_history_ts_low` of `values` then set, and the version `nodes`
    /// files were deleted for.
    released: Mutex<u64>,
    /// Node entries below this version are garbage (see [`NODE_AGE_MAX`]):
    /// `nodes`' compaction filter drops them.
    node_floor: Arc<AtomicU64>,
    /// Reads of `values` at the latest version (at the largest timestamp:
    /// a reader sees a commit once RocksDB has it, which is as its commit
    /// log record is being synced).
    read_latest: ReadOptions,
    /// Where commits are made durable (see [`crate::commit_log`]).
    log: Mutex<CommitLog>,
    /// A commit failed part-way: no more commits (see
    /// [`StateError::Poisoned`]).
    poisoned: AtomicBool,
}

/// The directory of the commit log, inside the database's.
const LOG_DIR: &str = "commit-log";

/// Closed commit-log segments after which a commit asks RocksDB to flush
/// its memtables now, rather than when they fill: a bound on the log's
/// bytes (some 256 MiB at the default segment size) whatever the
/// memtables' sizes.
const LOG_SEGMENTS_FLUSH: usize = 4;

/// The version in a `meta` latest entry.
fn latest_version_of(bytes: &[u8]) -> Result<u64, StateError> {
    bytes
        .first_chunk::<8>()
        .map(|word| u64::from_be_bytes(*word))
        .ok_or_else(|| StateError::Corrupt("meta entry too short".into()))
}

/// The format entry's value.
fn decode_format(bytes: &[u8]) -> Result<u32, StateError> {
    bytes
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| StateError::Corrupt("format entry".into()))
}

/// Refuses a database in the column-family layout of an older format,
/// naming its format: it would not open with this build's column families,
/// so its format entry is read with `meta` alone, read-only, and nothing is
/// written.
fn refuse_older_layout(path: &Path) -> Result<(), StateError> {
    let Ok(names) = DB::list_cf(&Options::default(), path) else {
        // No database yet.
        return Ok(());
    };
    if !names
        .iter()
        .any(|name| COLUMN_FAMILIES_OLDER.contains(&name.as_str()))
    {
        return Ok(());
    }
    let old = DB::open_cf_for_read_only(&Options::default(), path, [CF_META], false)?;
    let meta = old
        .cf_handle(CF_META)
        .ok_or_else(|| StateError::Corrupt("no meta column family".into()))?;
    let found = match old.get_cf(meta, META_FORMAT)? {
        None => 1,
        Some(bytes) => decode_format(&bytes)?,
    };
    Err(StateError::Format {
        found,
        expected: STATE_FORMAT,
    })
}

impl StateDb {
    /// Opens (or creates) the store and recovers the last committed version.
    pub fn open(config: StateConfig) -> Result<StateDb, StateError> {
        config.validate()?;
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let node_floor = Arc::new(AtomicU64::new(0));
        let column_family = |name: &str| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            // Point reads find their key in a block by hash, not by a
            // binary search.
            table.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
            let mut options = Options::default();
            options.set_block_based_table_factory(&table);
            // Tree nodes are hashes: compressing them costs CPU for nothing.
            let compression = if name == CF_NODES {
                rocksdb::DBCompressionType::None
            } else {
                rocksdb::DBCompressionType::Lz4
            };
            options.set_compression_type(compression);
            // Memtables: a block's values land all over their key space,
            // and each insert into a skiplist costs more the more it
            // holds, so `values` (and the small ones) flush at 16 MiB;
            // new tree nodes append at the end of `nodes` (their keys start
            // with the version), which stays at 64 MiB to keep level 0
            // small. (Same bench, side by side with jmt: 64 MiB everywhere
            // gave 125-130 ms per block, 16 MiB for the others 108-124 ms;
            // 8 MiB, or 32 MiB for nodes, made blocks slower and noisier.)
            let memtable_mib = if name == CF_NODES { 64 } else { 16 };
            options.set_write_buffer_size(memtable_mib * 1024 * 1024);
            // Room for full memtables to wait for their flush (which runs at
            // the lowest priority, below) without stalling writes.
            options.set_max_write_buffer_number(4);
            if name == CF_VALUES {
                options.set_comparator_with_ts(
                    VALUES_COMPARATOR,
                    VERSION_BYTES,
                    Box::new(compare_values_keys),
                    Box::new(|a: &[u8], b: &[u8]| a.cmp(b)),
                    Box::new(compare_values_keys_without_ts),
                );
            }
            if name == CF_NODES {
                // Entries below the node floor are garbage: compactions
                // drop them (whole files of them go at once, see
                // `release`).
                let floor = node_floor.clone();
                options.set_compaction_filter(
                    "stele.nodes-below-floor.v1",
                    move |_level: u32, key: &[u8], _value: &[u8]| {
                        let version = key
                            .first_chunk::<8>()
                            .map_or(u64::MAX, |bytes| u64::from_be_bytes(*bytes));
                        if version < floor.load(AtomicOrdering::Relaxed) {
                            rocksdb::CompactionDecision::Remove
                        } else {
                            rocksdb::CompactionDecision::Keep
                        }
                    },
                );
            }
            ColumnFamilyDescriptor::new(name, options)
        };
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.increase_parallelism(2);
        // Commits reach RocksDB without its write-ahead log (the commit
        // log makes them durable): every column family's memtables flush
        // together, so that the flushed data ends at one commit.
        options.set_atomic_flush(true);
        // Flushes and compactions write whole files that are read back
        // through the block cache: copying them through the page cache
        // costs a core a good part of its time under a steady commit load.
        options.set_use_direct_io_for_flush_and_compaction(true);
        // Compactions and flushes run at the lowest CPU priority (nice 19),
        // so that on a small machine they take the cores a commit leaves
        // idle (while it waits on its WAL sync) rather than slowing the
        // commit's threads down; up to four memtables of a column family
        // wait for their flush before writes stall. If compactions fall
        // behind, level 0 fills and RocksDB slows writes until they catch
        // up. (The pools belong to the process's default RocksDB
        // environment, shared by every database it opens.)
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        options.set_env(&env);
        refuse_older_layout(&config.path)?;
        let descriptors: Vec<_> = COLUMN_FAMILIES
            .iter()
            .map(|name| column_family(name))
            .collect();
        let db = DB::open_cf_descriptors(&options, &config.path, descriptors)?;
        let meta_cf = db.cf_handle(CF_META).expect("created");
        let mut latest = db.get_cf(meta_cf, META_LATEST)?;
        match db.get_cf(meta_cf, META_FORMAT)? {
            // A new database takes this build's format.
            None if latest.is_none() => {
                let mut options = WriteOptions::default();
                options.set_sync(true);
                db.put_cf_opt(meta_cf, META_FORMAT, STATE_FORMAT.to_be_bytes(), &options)?;
            }
            None => {
                return Err(StateError::Format {
                    found: 1,
                    expected: STATE_FORMAT,
                });
            }
            Some(bytes) => {
                let found = decode_format(&bytes)?;
                if STATE_FORMATS_UPGRADED.contains(&found) {
                    let mut options = WriteOptions::default();
                    options.set_sync(true);
                    db.put_cf_opt(meta_cf, META_FORMAT, STATE_FORMAT.to_be_bytes(), &options)?;
                } else if found != STATE_FORMAT {
                    return Err(StateError::Format {
                        found,
                        expected: STATE_FORMAT,
                    });
                }
            }
        }
        // What RocksDB holds ends at one commit; the commit log has the
        // ones after it.
        let flushed = latest.as_deref().map(latest_version_of).transpose()?;
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        let log = CommitLog::open(
            &config.path.join(LOG_DIR),
            config.sync_commits,
            config.log_segment_bytes,
            flushed,
            |version, batch| {
                db.write_opt(WriteBatch::from_data(batch), &no_wal)
                    .map_err(|error| {
                        StateError::Corrupt(format!(
                            "commit log record of version {version} does not apply: {error}"
                        ))
                    })
            },
        )?;
        latest = db.get_cf(meta_cf, META_LATEST)?;
        let meta = match latest {
            None => Meta::default(),
            Some(bytes) => {
                if bytes.len() < 24 {
                    return Err(StateError::Corrupt("meta entry too short".into()));
                }
                let word =
                    |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                let latest = word(0);
                Meta {
                    latest: Some(latest),
                    root: decode_root(&bytes[24..], latest)?,
                    oldest: word(8),
                    young_since: word(16),
                }
            }
        };
        node_floor.store(meta.node_floor(), AtomicOrdering::Relaxed);
        let values = ValueCache::new(config.value_cache_bytes);
        let nodes = NodeCache::new(config.node_cache_entries);
        let state = StateDb {
            db,
            config,
            meta: RwLock::new(meta),
            nodes,
            values,
            commit_lock: Mutex::new(()),
            released: Mutex::new(0),
            node_floor,
            read_latest: read_at(u64::MAX),
            log: Mutex::new(log),
            poisoned: AtomicBool::new(false),
        };
        // A crash may have come between a commit and the release that
        // would have followed it.
        state.release(&state.meta(), true)?;
        Ok(state)
    }

    /// Lets RocksDB drop what no version from `meta.oldest` on can read:
    /// every key keeps its values from `oldest` on and the newest one
    /// below, and `nodes` files wholly below the node floor go. Done every
    /// [`HISTORY_LOW_STEP`] versions (or whenever `now`); never above what
    /// a retained read needs. Each commit does it for the one before it
    /// (beside its tree update), and [`StateDb::compact`] and
    /// [`StateDb::open`] for the latest.
    fn release(&self, meta: &Meta, now: bool) -> Result<(), StateError> {
        if self.config.retention == Retention::Archive {
            return Ok(());
        }
        let oldest = meta.oldest;
        let mut low = self
            .released
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if oldest <= *low || (!now && oldest < *low + HISTORY_LOW_STEP) {
            return Ok(());
        }
        let values = self.cf(CF_VALUES);
        // What RocksDB already has (after a restart, possibly more than
        // this process set); it refuses to lower it.
        let current = self
            .db
            .get_full_history_ts_low(values)
            .ok()
            .and_then(|bytes| <[u8; VERSION_BYTES]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        if oldest > current {
            self.db
                .increase_full_history_ts_low(values, version_ts(oldest))?;
        }
        let floor = meta.node_floor();
        if floor > 0 {
            // Files whose every key is below `floor` (node keys start with
            // their version, big-endian).
            self.db.delete_file_in_range_cf(
                self.cf(CF_NODES),
                &[][..],
                &floor.to_be_bytes()[..],
            )?;
        }
        *low = oldest.max(current);
        Ok(())
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn meta(&self) -> Meta {
        self.meta
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The last committed version, if any.
    pub fn latest_version(&self) -> Option<u64> {
        self.meta().latest
    }

    /// The oldest version still readable.
    pub fn oldest_version(&self) -> u64 {
        self.meta().oldest
    }

    /// The root hash of the last committed version ([`EMPTY`] before any).
    pub fn root(&self) -> Hash {
        self.meta().root.as_ref().map_or(EMPTY, Child::hash)
    }

    fn check_version(&self, version: u64) -> Result<Meta, StateError> {
        let meta = self.meta();
        match meta.latest {
            Some(latest) if version <= latest => {}
            latest => return Err(StateError::VersionUnknown { version, latest }),
        }
        if version < meta.oldest {
            return Err(StateError::VersionPruned {
                version,
                oldest: meta.oldest,
            });
        }
        Ok(meta)
    }

    fn root_ref_at(&self, version: u64) -> Result<Option<Child>, StateError> {
        let meta = self.check_version(version)?;
        if Some(version) == meta.latest {
            return Ok(meta.root);
        }
        match self.db.get_cf(self.cf(CF_ROOTS), version.to_be_bytes())? {
            Some(bytes) => decode_root(&bytes, version),
            None => Err(StateError::Corrupt(format!(
                "no root for retained version {version}"
            ))),
        }
    }

    /// The root hash at a retained version.
    pub fn root_at(&self, version: u64) -> Result<Hash, StateError> {
        Ok(self
            .root_ref_at(version)?
            .as_ref()
            .map_or(EMPTY, Child::hash))
    }

    /// The latest value of `key`: from the value cache, or one read of
    /// `values`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let generation = match self.values.get(key) {
            Ok(value) => return Ok(value),
            Err(generation) => generation,
        };
        let value = self
            .db
            .get_pinned_cf_opt(self.cf(CF_VALUES), key, &self.read_latest)?;
        if let Some(generation) = generation {
            self.values.fill(key, value.as_deref(), generation);
        }
        Ok(value.map(|value| value.to_vec()))
    }

    /// The value of `key` at a retained version: one read of `values` at
    /// that version.
    pub fn get_at(&self, key: &[u8], version: u64) -> Result<Option<Vec<u8>>, StateError> {
        self.check_version(version)?;
        match self
            .db
            .get_pinned_cf_opt(self.cf(CF_VALUES), key, &read_at(version))
        {
            Ok(value) => Ok(value.map(|value| value.to_vec())),
            // RocksDB refuses a read below what it may have dropped: the
            // version was pruned after the check above.
            Err(error) => {
                self.check_version(version)?;
                Err(error.into())
            }
        }
    }

    /// The first latest entry with key `>= start` that starts with `prefix`.
    pub fn next(&self, start: &[u8], prefix: &[u8]) -> Result<Option<KeyValue>, StateError> {
        let start = start.max(prefix);
        let mut read = read_at(u64::MAX);
        read.set_prefix_same_as_start(false);
        let mut iterator = self.db.iterator_cf_opt(
            self.cf(CF_VALUES),
            read,
            IteratorMode::From(start, Direction::Forward),
        );
        match iterator.next() {
            Some(entry) => {
                let (key, value) = entry?;
                Ok(key
                    .starts_with(prefix)
                    .then(|| (key.to_vec(), value.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// The value of `key` at `version` with its proof against that
    /// version's root.
    pub fn prove(&self, key: &[u8], version: u64) -> Result<(Option<Vec<u8>>, Proof), StateError> {
        let root = self.root_ref_at(version)?;
        let proof = match prove(self, root.as_ref(), key) {
            Ok(proof) => proof,
            // The version may have been pruned (its nodes dropped) since
            // the check above.
            Err(error) => {
                self.check_version(version)?;
                return Err(error);
            }
        };
        let value = self.get_at(key, version)?;
        Ok((value, proof))
    }

    /// Commits `writes` as `version`, which must be above the latest; returns
    /// the new root. One atomic write batch: values, tree nodes (with those
    /// rewritten to keep nodes young), root, metadata, and the deletes of
    /// roots that left the window. RocksDB takes it without its write-ahead
    /// log while a copy is appended to the commit log (`commit-log/` in the
    /// database's directory) and synced (unless
    /// [`StateConfig::sync_commits`] is off); the commit returns once both
    /// are done, and the next open replays the log's records above what
    /// RocksDB flushed. If either half fails, the store is poisoned
    /// ([`StateError::Poisoned`]).
    pub fn commit(&self, version: u64, writes: &WriteSet) -> Result<Hash, StateError> {
        let _serial = self
            .commit_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if self.poisoned.load(AtomicOrdering::Relaxed) {
            return Err(StateError::Poisoned);
        }
        let meta = self.meta();
        if let Some(latest) = meta.latest
            && version <= latest
        {
            return Err(StateError::VersionNotIncreasing { version, latest });
        }
        let archive = self.config.retention == Retention::Archive;
        // Unless archiving, the nodes that would otherwise grow older than
        // `NODE_AGE_MAX` are rewritten, so that pruning can go by age.
        let refresh = (!archive).then(|| refresh_for(version, meta.latest));
        let (values, nodes) = (self.cf(CF_VALUES), self.cf(CF_NODES));
        let ts = version_ts(version);
        // The values go into the batch on a thread of their own while this
        // one hashes the writes and updates the tree: they need nothing
        // from the tree but whether a removed key was there, so removals
        // wait for it (below).
        let listed: Vec<Write<'_>> = writes.iter().collect();
        let (hashed, update, mut batch) = std::thread::scope(|scope| {
            let puts = scope.spawn(|| {
                // Sized up front (the tree's nodes estimated at some 320
                // bytes a write, more than a block of 10,000 writes on a
                // 1M-key state takes): growing a large batch copies it
                // again and again.
                let value_bytes: usize = writes
                    .iter()
                    .map(|(key, value)| key.len() + 32 + value.as_ref().map_or(0, Vec::len))
                    .sum();
                let mut batch =
                    WriteBatch::with_capacity_bytes(value_bytes + 320 * writes.len() + 64 * 1024);
                // Each column family's entries go into the batch in
                // ascending key order: RocksDB's memtable inserts a run of
                // ascending keys far faster than scattered ones (its
                // skiplist search starts from the previous insert). A
                // value is written at its version; the ones it supersedes
                // stay readable at theirs until RocksDB drops them (see
                // `release`), so a commit deletes none.
                for (key, value) in writes {
                    if let Some(value) = value {
                        batch.put_cf_with_ts(values, key, ts, value);
                    }
                }
                // What the last commit released, while the tree is
                // updated: its manifest writes wait on the disk, not on the
                // cores. A failure only delays dropping old values and node
                // files: the next commit, or the next open, does it again.
                let _ = self.release(&meta, false);
                batch
            });
            // The writes' hashes in key order (as given), half of them on
            // another thread, and the tree's updates in key-hash order.
            let hashed = if listed.len() < PARALLEL_HASHES_MIN {
                hash_writes(&listed)
            } else {
                let (first, second) = listed.split_at(listed.len() / 2);
                let second = scope.spawn(|| hash_writes(second));
                let mut hashed = hash_writes(first);
                hashed.extend(
                    second
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
                hashed
            };
            let mut updates = hashed.clone();
            updates.sort_unstable_by_key(|update| update.0);
            let update =
                tree::update_refreshing(self, meta.root.clone(), version, &updates, refresh);
            let batch = puts
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (hashed, update, batch)
        });
        let update = update?;
        // The removals, in key order after the puts: a removal of a key
        // that is not there writes nothing. The keys the update replaced
        // come in key-hash order (the tree's): a binary search finds one.
        debug_assert!(update.replaced.windows(2).all(|pair| pair[0] < pair[1]));
        for ((key, value), (hash, _)) in writes.iter().zip(&hashed) {
            if value.is_none() && update.replaced.binary_search(hash).is_ok() {
                batch.delete_cf_with_ts(values, key, ts);
            }
        }
        // The tree's new nodes come sorted by their storage keys.
        let new_nodes = update.new_nodes;
        let mut key_bytes = Vec::with_capacity(48);
        for new in &new_nodes {
            key_bytes.clear();
            new.key.encode_into(&mut key_bytes);
            batch.put_cf(nodes, &key_bytes, &new.bytes);
        }
        let stale_nodes = update.stale_nodes;
        let root = update.root;
        let root_bytes = encode_root(&root, version);
        batch.put_cf(self.cf(CF_ROOTS), version.to_be_bytes(), &root_bytes);
        let oldest = match (self.config.retention, meta.latest) {
            (_, None) => version,
            (Retention::Archive, Some(_)) => meta.oldest,
            (Retention::Window(window), Some(_)) => meta.oldest.max(version.saturating_sub(window)),
        };
        // Roots below the oldest version go; superseded nodes need no
        // deletes (see `NODE_AGE_MAX`).
        for old in meta.oldest..oldest {
            batch.delete_cf(self.cf(CF_ROOTS), old.to_be_bytes());
        }
        let young_since = match (archive, meta.young_since) {
            (true, _) => u64::MAX,
            (false, u64::MAX) => version,
            (false, since) => since,
        };
        let mut latest = Vec::with_capacity(24 + 80);
        latest.extend_from_slice(&version.to_be_bytes());
        latest.extend_from_slice(&oldest.to_be_bytes());
        latest.extend_from_slice(&young_since.to_be_bytes());
        latest.extend_from_slice(&root_bytes);
        batch.put_cf(self.cf(CF_META), META_LATEST, latest);

        let mut log = self.log.lock().unwrap_or_else(|poison| poison.into_inner());
        log.prepare(version, batch.data())?;
        // The batch goes into the memtables, without RocksDB's write-ahead
        // log, while the commit log appends and syncs its copy: the commit
        // is durable, and returns, once both are done.
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        // The new nodes enter the node cache meanwhile: only the new root
        // reaches them, and readers see it once `meta` changes below. A
        // failed write clears the cache, so no node of a version that was
        // never committed outlives it.
        let (written, logged) = std::thread::scope(|scope| {
            // Superseded nodes left the cache as the update took them
            // (reads of past versions find them on disk), so that it holds
            // the live tree rather than its history.
            let cached = scope.spawn(|| self.nodes.commit(&stale_nodes, new_nodes));
            let log: &mut CommitLog = &mut log;
            let logged = scope.spawn(move || log.append(version));
            let written = self.db.write_opt(batch, &options);
            cached
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let logged = logged
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, logged)
        });
        if let Err(error) = written.map_err(StateError::from).and(logged) {
            // One of the two may have taken the version: which, the next
            // open decides.
            self.poisoned.store(true, AtomicOrdering::Relaxed);
            self.nodes.clear();
            return Err(error);
        }
        self.remove_flushed_log(&mut log);
        drop(log);
        self.values.commit(writes);

        let hash = root.as_ref().map_or(EMPTY, Child::hash);
        let meta = Meta {
            latest: Some(version),
            root,
            oldest,
            young_since,
        };
        // Only now that the version is durable may compactions drop what
        // it released.
        self.node_floor
            .fetch_max(meta.node_floor(), AtomicOrdering::Relaxed);
        *self
            .meta
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = meta.clone();
        // What this version released is let go at the next commit (or
        // compaction, or open): see above.
        Ok(hash)
    }

    /// Removes the commit log's segments that RocksDB has flushed, and asks
    /// for a flush when too many wait for one. A failure only keeps segments
    /// longer: the next commit tries again.
    fn remove_flushed_log(&self, log: &mut CommitLog) {
        if log.closed_segments() == 0 {
            return;
        }
        // The latest version in RocksDB's files, skipping the memtables
        // (which hold commits written without its write-ahead log).
        let mut persisted = ReadOptions::default();
        persisted.set_read_tier(ReadTier::Persisted);
        let flushed = self
            .db
            .get_cf_opt(self.cf(CF_META), META_LATEST, &persisted)
            .ok()
            .flatten()
            .and_then(|bytes| latest_version_of(&bytes).ok());
        if let Some(flushed) = flushed {
            let _ = log.remove_flushed(flushed);
        }
        if log.wants_flush(LOG_SEGMENTS_FLUSH) {
            let mut flush = FlushOptions::default();
            flush.set_wait(false);
            let families: Vec<_> = COLUMN_FAMILIES.iter().map(|name| self.cf(name)).collect();
            let _ = self.db.flush_cfs_opt(&families, &flush);
        }
    }

    /// Bytes of the commit log (for tests and metrics).
    pub fn log_bytes(&self) -> u64 {
        self.log
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .bytes()
    }

    /// Number of entries in each column family (for tests and metrics;
    /// scans everything). For `values` that is every version RocksDB still
    /// holds, removals included, whether or not a retained version can
    /// read it: what pruning must keep bounded.
    pub fn entry_counts(&self) -> Result<BTreeMap<&'static str, u64>, StateError> {
        let mut counts = BTreeMap::new();
        for name in COLUMN_FAMILIES {
            let mut read = ReadOptions::default();
            if name == CF_VALUES {
                read.set_timestamp(version_ts(u64::MAX));
                read.set_iter_start_ts(version_ts(0));
            }
            let mut iterator = self.db.raw_iterator_cf_opt(self.cf(name), read);
            iterator.seek_to_first();
            let mut n = 0;
            while iterator.valid() {
                n += 1;
                iterator.next();
            }
            iterator.status()?;
            counts.insert(name, n);
        }
        Ok(counts)
    }

    /// Compacts every column family down to its last level now: what
    /// pruning released (values below the oldest version, deleted nodes) is
    /// gone from disk when this returns, rather than when RocksDB's own
    /// compactions reach it. For tests and maintenance; it reads and
    /// rewrites the whole database.
    pub fn compact(&self) -> Result<(), StateError> {
        // What the last commit released, first.
        self.release(&self.meta(), false)?;
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in COLUMN_FAMILIES {
            self.db
                .compact_range_cf_opt(self.cf(name), None::<&[u8]>, None::<&[u8]>, &options);
        }
        Ok(())
    }

    /// Every latest entry, in key order (for tests and recovery checks).
    pub fn entries(&self) -> Result<Vec<KeyValue>, StateError> {
        let mut entries = Vec::new();
        for entry in
            self.db
                .iterator_cf_opt(self.cf(CF_VALUES), read_at(u64::MAX), IteratorMode::Start)
        {
            let (key, value) = entry?;
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    /// Calls `visit` with every entry of a retained `version`, in key order,
    /// through one RocksDB iterator (a consistent view while later versions
    /// commit), until it returns false. Fails if the version is pruned
    /// before the last entry is read.
    pub fn for_each_at(
        &self,
        version: u64,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StateError> {
        self.check_version(version)?;
        let iterator =
            self.db
                .iterator_cf_opt(self.cf(CF_VALUES), read_at(version), IteratorMode::Start);
        for entry in iterator {
            let (key, value) = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    self.check_version(version)?;
                    return Err(error.into());
                }
            };
            if !visit(&key, &value) {
                return Ok(());
            }
        }
        // Pruned while iterating: what was read may miss dropped versions.
        self.check_version(version)?;
        Ok(())
    }

    /// Rebuilds the latest root from the latest values alone and compares it
    /// with the committed one: a full consistency check.
    pub fn verify_root(&self) -> Result<bool, StateError> {
        let entries: Vec<(Hash, Hash)> = self
            .entries()?
            .iter()
            .map(|(key, value)| (key_hash(key), value_hash(value)))
            .collect();
        Ok(tree::root_of(&entries) == self.root())
    }
}

impl StateDb {
    /// The stored node at `key`, from RocksDB: its entry, and if that is
    /// a delta, the entries below it down to a whole one (at most
    /// [`CHAIN_ENTRIES_MAX`] in all).
    fn stored_node(&self, key: &NodeKey) -> Result<Arc<Node>, StateError> {
        let node = tree::assemble(
            key,
            |at| {
                self.db
                    .get_pinned_cf(self.cf(CF_NODES), at.encode())?
                    .ok_or_else(|| StateError::Corrupt(format!("missing tree node {at:?}")))
            },
            StateError::Corrupt,
        )?;
        Ok(Arc::new(node))
    }
}

impl NodeReader for StateDb {
    type Error = StateError;

    fn node(&self, key: &NodeKey) -> Result<Arc<Node>, StateError> {
        if let Some(node) = self.nodes.get(key) {
            return Ok(node);
        }
        let node = self.stored_node(key)?;
        self.nodes.insert_read(*key, node.clone());
        Ok(node)
    }

    /// Takes the node out of the cache: the commit replaces it (and if the
    /// commit fails, the node is still on disk).
    fn take_node(&self, key: &NodeKey) -> Result<Arc<Node>, StateError> {
        match self.nodes.take(key) {
            Some(node) => Ok(node),
            None => self.stored_node(key),
        }
    }
}

/// The writes of the block being executed, over the committed state: reads
/// see them first; [`Overlay::commit`] makes them the next version.
pub struct Overlay<'a> {
    state: &'a StateDb,
    writes: WriteSet,
}

impl<'a> Overlay<'a> {
    /// An empty overlay over `state`.
    pub fn new(state: &'a StateDb) -> Self {
        Overlay {
            state,
            writes: WriteSet::new(),
        }
    }

    /// The value of `key`, overlay first.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.state.get(key),
        }
    }

    /// The first live entry with key `>= start` starting with `prefix`,
    /// overlay over state.
    pub fn next(&self, start: &[u8], prefix: &[u8]) -> Result<Option<KeyValue>, StateError> {
        let mut cursor = start.max(prefix).to_vec();
        loop {
            let below = self.state.next(&cursor, prefix)?;
            let above = self
                .writes
                .range::<[u8], _>((
                    std::ops::Bound::Included(cursor.as_slice()),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .filter(|(key, _)| key.starts_with(prefix));
            let (key, value) = match (&below, above) {
                (None, None) => return Ok(None),
                (Some(_), None) => return Ok(below),
                (Some((below_key, _)), Some((above_key, _))) if below_key < above_key => {
                    return Ok(below);
                }
                (_, Some(entry)) => entry,
            };
            match value {
                Some(value) => return Ok(Some((key.clone(), value.clone()))),
                None => {
                    cursor = key.clone();
                    cursor.push(0);
                }
            }
        }
    }

    /// Adds writes (later ones win).
    pub fn apply(&mut self, writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) {
        self.writes.extend(writes);
    }

    /// The pending writes.
    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }

    /// Commits the pending writes as `version`.
    pub fn commit(self, version: u64) -> Result<Hash, StateError> {
        self.state.commit(version, &self.writes)
    }
}
