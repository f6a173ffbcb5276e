//! State benchmarks (bench target `state`), all at 1M keys:
//!
//! * `state::commit/ours/keys=1M` — blocks of 10,000 writes (70% updates,
//!   20% inserts, 10% removals; 32-byte keys, 100-byte values) committed
//!   durably (each commit's record synced in its commit log) to
//!   `stele-state`, retaining 100 versions; measured
//!   once pruning runs in full (after unmeasured blocks that keep the state
//!   at 1M keys), which is when a block costs the most;
//! * `state::commit/jmt/keys=1M` — the same blocks into the `jmt` crate
//!   (Jellyfish Merkle Tree, BLAKE3) on RocksDB, nodes, values and stale
//!   index in one synced write batch: the baseline;
//! * `state::commit/raw_rocksdb/keys=1M` — the same writes as one plain
//!   synced RocksDB batch, no tree: the floor;
//! * `state::read/warm` — a random present key from the flat store;
//! * `state::proof/generate` and `state::proof/verify` — proofs of random
//!   keys at the latest version (the average proof size is printed).
//!
//! Throughput is reported in updates per second.

// The allocator the node runs with, for every store measured here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, SimpleHasher, Version};
use rocksdb::{DB, Options, WriteBatch, WriteOptions};
use stele_state::{NODE_AGE_MAX, NODE_SWEEP_VERSIONS, Retention, StateConfig, StateDb, WriteSet};

const INITIAL_KEYS: u64 = 1_000_000;
const BLOCK_WRITES: usize = 10_000;
const LOAD_BATCH: u64 = 100_000;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn key(idx: u64) -> Vec<u8> {
    blake3::hash(&idx.to_le_bytes()).as_bytes().to_vec()
}

fn value(rng: &mut Rng) -> Vec<u8> {
    (0..100).map(|_| rng.next() as u8).collect()
}

/// The key population and the block generator, the same for every store.
struct Workload {
    rng: Rng,
    live: Vec<u64>,
    next_key: u64,
}

impl Workload {
    fn new() -> Self {
        Workload {
            rng: Rng(42),
            live: Vec::new(),
            next_key: 0,
        }
    }

    /// The initial load, in batches.
    fn load_batches(&mut self) -> Vec<WriteSet> {
        let mut batches = Vec::new();
        while self.next_key < INITIAL_KEYS {
            let mut batch = WriteSet::new();
            for _ in 0..LOAD_BATCH.min(INITIAL_KEYS - self.next_key) {
                batch.insert(key(self.next_key), Some(value(&mut self.rng)));
                self.live.push(self.next_key);
                self.next_key += 1;
            }
            batches.push(batch);
        }
        batches
    }

    /// One block: 70% updates, 20% inserts, 10% removals.
    fn block(&mut self) -> WriteSet {
        self.block_inserting(2)
    }

    /// One block that leaves the number of keys about where it was: 80%
    /// updates, 10% inserts, 10% removals.
    fn steady_block(&mut self) -> WriteSet {
        self.block_inserting(1)
    }

    /// One block: `inserts` tenths inserts, a tenth removals, the rest
    /// updates.
    fn block_inserting(&mut self, inserts: u64) -> WriteSet {
        let mut block = WriteSet::new();
        while block.len() < BLOCK_WRITES {
            let roll = self.rng.next() % 10;
            if roll < inserts {
                block.insert(key(self.next_key), Some(value(&mut self.rng)));
                self.live.push(self.next_key);
                self.next_key += 1;
            } else {
                let at = (self.rng.next() % self.live.len() as u64) as usize;
                let idx = self.live[at];
                if roll < 9 {
                    block.insert(key(idx), Some(value(&mut self.rng)));
                } else {
                    block.insert(key(idx), None);
                    self.live.swap_remove(at);
                }
            }
        }
        block
    }
}

/// Loads the initial keys into a store; returns the workload to go on
/// with and the last version committed.
fn load(name: &str, commit: &mut impl FnMut(u64, &WriteSet)) -> (Workload, u64) {
    let mut workload = Workload::new();
    let started = Instant::now();
    let mut version = 0;
    for batch in workload.load_batches() {
        version += 1;
        commit(version, &batch);
    }
    println!(
        "state::commit/{name}: loaded {INITIAL_KEYS} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (workload, version)
}

/// Loads the initial keys (on first use, so that a filtered run such as
/// `-- ours` skips the other stores' loads) and commits `settle` blocks
/// unmeasured (each as many inserts as removals, so the state stays at 1M
/// keys), then measures blocks.
fn commit_bench(
    c: &mut Criterion,
    name: &str,
    settle: u64,
    mut commit: impl FnMut(u64, &WriteSet),
) {
    let mut loaded = None;
    let mut group = c.benchmark_group("state::commit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BLOCK_WRITES as u64));
    group.bench_function(format!("{name}/keys=1M"), |b| {
        let (workload, version) = loaded.get_or_insert_with(|| {
            let (mut workload, mut version) = load(name, &mut commit);
            let started = Instant::now();
            for _ in 0..settle {
                version += 1;
                commit(version, &workload.steady_block());
            }
            if settle > 0 {
                println!(
                    "state::commit/{name}: {settle} blocks to settle in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            (workload, version)
        });
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let block = workload.block();
                *version += 1;
                let started = Instant::now();
                commit(*version, &block);
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

fn ours(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let window = 100;
    let mut config = StateConfig::new(dir.path().join("ours"));
    config.retention = Retention::Window(window);
    let state = StateDb::open(config).unwrap();
    let mut commit = |version, writes: &WriteSet| {
        black_box(state.commit(version, writes).unwrap());
    };
    // Measured once pruning runs in full: old values and node files are
    // dropped, and the sweeps rewrite what they must (see
    // `stele_state::NODE_AGE_MAX`). The other stores prune nothing.
    let settle = window + NODE_AGE_MAX + 2 * NODE_SWEEP_VERSIONS;
    commit_bench(c, "ours", settle, &mut commit);
    // The reads and proofs below need the keys even if the commit bench
    // was filtered out.
    if state.latest_version().is_none() {
        load("ours", &mut commit);
    }

    // Reads and proofs on the same 1M-key state.
    let mut rng = Rng(7);
    let keys: Vec<Vec<u8>> = (0..4096).map(|_| key(rng.next() % INITIAL_KEYS)).collect();
    let latest = state.latest_version().unwrap();
    let mut next = 0;
    let mut group = c.benchmark_group("state::read");
    group.bench_function("warm", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(state.get(&keys[next]).unwrap())
        })
    });
    group.finish();
    let proofs: Vec<_> = keys
        .iter()
        .map(|key| state.prove(key, latest).unwrap())
        .collect();
    let average = proofs
        .iter()
        .map(|(_, proof)| proof.to_bytes().len())
        .sum::<usize>()
        / proofs.len();
    let largest = proofs
        .iter()
        .map(|(_, proof)| proof.to_bytes().len())
        .max()
        .unwrap();
    println!(
        "state::proof: average {average} bytes, largest {largest} bytes at {INITIAL_KEYS} keys"
    );
    let root = state.root();
    let mut group = c.benchmark_group("state::proof");
    group.bench_function("generate", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(state.prove(&keys[next], latest).unwrap())
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            let (value, proof) = &proofs[next];
            proof.verify(&root, &keys[next], value.as_deref()).unwrap()
        })
    });
    group.finish();
}

fn raw_rocksdb(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.create_if_missing(true);
    options.increase_parallelism(2);
    let db = DB::open(&options, dir.path().join("raw")).unwrap();
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    commit_bench(c, "raw_rocksdb", 0, |_, writes| {
        let mut batch = WriteBatch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        db.write_opt(batch, &sync).unwrap();
    });
}

/// BLAKE3 for jmt (its `Digest` blanket impl wants another `digest` version).
struct Blake3Jmt(blake3::Hasher);

impl SimpleHasher for Blake3Jmt {
    fn new() -> Self {
        Blake3Jmt(blake3::Hasher::new())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// jmt's storage on RocksDB: nodes, versioned values, stale index.
struct JmtStore {
    db: DB,
}

impl JmtStore {
    fn open(path: &std::path::Path) -> Self {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.increase_parallelism(2);
        let db = DB::open_cf(&options, path, ["nodes", "values", "stale"]).unwrap();
        JmtStore { db }
    }

    fn value_key(key_hash: &KeyHash, version: Version) -> Vec<u8> {
        let mut bytes = key_hash.0.to_vec();
        bytes.extend_from_slice(&(u64::MAX - version).to_be_bytes());
        bytes
    }

    fn write(&self, update: TreeUpdateBatch) {
        let (nodes, values, stale) = (
            self.db.cf_handle("nodes").unwrap(),
            self.db.cf_handle("values").unwrap(),
            self.db.cf_handle("stale").unwrap(),
        );
        let mut batch = WriteBatch::default();
        for (node_key, node) in update.node_batch.nodes() {
            batch.put_cf(
                nodes,
                borsh::to_vec(node_key).unwrap(),
                borsh::to_vec(node).unwrap(),
            );
        }
        for ((version, key_hash), value) in update.node_batch.values() {
            batch.put_cf(
                values,
                Self::value_key(key_hash, *version),
                borsh::to_vec(value).unwrap(),
            );
        }
        for index in &update.stale_node_index_batch {
            batch.put_cf(stale, borsh::to_vec(index).unwrap(), []);
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync).unwrap();
    }
}

impl TreeReader for JmtStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let nodes = self.db.cf_handle("nodes").unwrap();
        Ok(self
            .db
            .get_cf(nodes, borsh::to_vec(node_key)?)?
            .map(|bytes| borsh::from_slice(&bytes))
            .transpose()?)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let values = self.db.cf_handle("values").unwrap();
        let mut iterator = self.db.raw_iterator_cf(values);
        iterator.seek(Self::value_key(&key_hash, max_version));
        match (iterator.key(), iterator.value()) {
            (Some(found), Some(value)) if found[..32] == key_hash.0 => {
                Ok(borsh::from_slice(value)?)
            }
            _ => Ok(None),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None)
    }
}

fn jmt_baseline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = JmtStore::open(&dir.path().join("jmt"));
    commit_bench(c, "jmt", 0, |version, writes| {
        let values: BTreeMap<KeyHash, Option<OwnedValue>> = writes
            .iter()
            .map(|(key, value)| (KeyHash::with::<Blake3Jmt>(key), value.clone()))
            .collect();
        let tree = JellyfishMerkleTree::<_, Blake3Jmt>::new(&store);
        // jmt numbers versions from 0.
        let (_, update) = tree.put_value_set(values, version - 1).unwrap();
        store.write(update);
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    targets = ours, jmt_baseline, raw_rocksdb
}
criterion_main!(benches);
