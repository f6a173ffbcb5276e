//! The chain: genesis, recovery, block execution, queries, admission.

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use lru::LruCache;
use stele_consensus::{
    Application, Executed, Halted, OrderingMark, Proposal, SnapshotError, SnapshotInfo,
    SubmitError, Tip,
};
use stele_host_api::Address;
use stele_runtime::{Runtime, RuntimeConfig, Storage, StorageError};
use stele_state::tree::{key_hash, value_hash};
use stele_state::{Overlay, Retention, StateConfig, StateDb, WriteSet};
use stele_types::limits::TX_BYTES_MAX;
use stele_types::{Block, BlockHeader, Receipt, SignedTransaction, TxError, TxHash, tx_hash_of};
use tokio::sync::broadcast;

use crate::execute::{Executor, hex_string, intrinsic_gas, read_balance, read_nonce};
use crate::genesis::ChainSpec;
use crate::mempool::{Mempool, MempoolConfig, MempoolStats};
use crate::snapshot::{SnapshotHeader, SnapshotReader, SnapshotWriter};
use crate::store::BlockStore;
use crate::{ChainError, TX_GAS_LIMIT_MAX, codes, keys};

/// Where and how a chain keeps its data.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Data directory: `state/`, `chain/` and `code-cache/` live under it.
    pub data_dir: PathBuf,
    /// Which state versions stay readable. Default: the last 1,000.
    pub retention: Retention,
    /// Mempool bounds.
    pub mempool: MempoolConfig,
}

impl ChainConfig {
    /// Defaults under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ChainConfig {
            data_dir: data_dir.into(),
            retention: Retention::Window(1_000),
            mempool: MempoolConfig::default(),
        }
    }
}

/// A block after execution, as subscribers see it.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    /// The block.
    pub block: Block,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
    /// The state root after it.
    pub state_root: [u8; 32],
}

/// Figures for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics {
    /// Executed height.
    pub height: u64,
    /// Transactions executed since start.
    pub transactions_total: u64,
    /// Transactions per second over the last blocks (by block time).
    pub transactions_per_second: f64,
    /// Gas used by the last block.
    pub last_block_gas: u64,
    /// Transactions in the mempool.
    pub mempool_transactions: usize,
    /// Bytes in the mempool.
    pub mempool_bytes: usize,
}

#[derive(Default)]
struct Recent {
    /// `(time_ms, transactions, gas)` of the last blocks.
    blocks: VecDeque<(u64, u64, u64)>,
    transactions_total: u64,
}

/// A chain on disk.
pub struct Chain {
    spec: ChainSpec,
    runtime: Runtime,
    state: StateDb,
    store: BlockStore,
    mempool: Mempool,
    tip: Mutex<Tip>,
    tip_changed: Condvar,
    halted: Mutex<Option<String>>,
    /// Transactions this node verified and proposed, not executed yet.
    proposed: Mutex<HashSet<TxHash>>,
    /// Decoded public keys of recent signers: decoding one is a third of
    /// a signature check.
    signer_keys: Mutex<LruCache<Address, VerifyingKey>>,
    recent: Mutex<Recent>,
    blocks: broadcast::Sender<Arc<ExecutedBlock>>,
    /// Serializes block execution.
    executing: Mutex<()>,
}

/// Signers whose decoded public keys admission keeps (about 200 bytes
/// each).
const SIGNER_KEYS_CACHED: usize = 16_384;

fn storage_fault(error: StorageError) -> ChainError {
    ChainError::Store(error.to_string())
}

/// Below this many transactions this node has not verified, a block's
/// signatures are checked one by one during execution.
const PARALLEL_VERIFY_MIN: usize = 64;

/// Most threads that verify a block's signatures.
const VERIFY_THREADS_MAX: usize = 8;

/// Verifies, on every core, the signatures of the transactions this node
/// has not verified (`checked[i]` false) and marks those that pass:
/// execution skips their check and checks the others itself, with the same
/// `verify_signature`, so the verdict (and the receipt) is the same either
/// way.
fn verify_in_parallel(transactions: &[SignedTransaction], checked: &mut [bool]) {
    let unchecked: Vec<usize> = (0..transactions.len())
        .filter(|&index| !checked[index])
        .collect();
    if unchecked.len() < PARALLEL_VERIFY_MIN {
        return;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(VERIFY_THREADS_MAX);
    let chunk = unchecked.len().div_ceil(threads);
    let verdicts: Vec<Vec<(usize, bool)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = unchecked
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&index| (index, transactions[index].verify_signature().is_ok()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for (index, valid) in verdicts.into_iter().flatten() {
        checked[index] |= valid;
    }
}

impl Chain {
    /// Opens the chain under `config.data_dir`: writes genesis on first
    /// start, refuses another genesis's data, and executes again every
    /// stored block the state has not committed (after a crash).
    pub fn open(config: ChainConfig, spec: ChainSpec) -> Result<Arc<Chain>, ChainError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| {
            ChainError::Store(format!(
                "cannot create {}: {error}",
                config.data_dir.display()
            ))
        })?;
        let mut state_config = StateConfig::new(config.data_dir.join("state"));
        state_config.retention = config.retention;
        let state = StateDb::open(state_config)?;
        let store = BlockStore::open(&config.data_dir.join("chain"))?;
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(config.data_dir.join("code-cache")),
            ..RuntimeConfig::default()
        })?;
        let tip = match state.latest_version() {
            None => {
                let root = state.commit(0, &spec.genesis_writes())?;
                Tip {
                    height: 0,
                    hash: [0; 32],
                    time_ms: spec.genesis_time_ms,
                    state_root: root,
                }
            }
            Some(version) => {
                let stored = state.get(keys::GENESIS_HASH)?;
                if stored.as_deref() != Some(&spec.genesis_hash[..]) {
                    return Err(ChainError::Genesis(format!(
                        "the data in {} belongs to another genesis (hash {}); \
                         use another --data-dir or remove it",
                        config.data_dir.display(),
                        stored.map_or("missing".into(), |hash| hex_string(&hash))
                    )));
                }
                let root = state.root_at(version)?;
                match version {
                    0 => Tip {
                        height: 0,
                        hash: [0; 32],
                        time_ms: spec.genesis_time_ms,
                        state_root: root,
                    },
                    height => {
                        let block = store.block(height)?.ok_or_else(|| {
                            ChainError::Store(format!(
                                "state is at height {height} but the block store lacks block {height}"
                            ))
                        })?;
                        Tip {
                            height,
                            hash: block.header.hash(),
                            time_ms: block.header.time_ms,
                            state_root: root,
                        }
                    }
                }
            }
        };
        let (blocks, _) = broadcast::channel(1024);
        let chain = Arc::new(Chain {
            spec,
            runtime,
            state,
            store,
            mempool: Mempool::new(config.mempool),
            tip: Mutex::new(tip),
            tip_changed: Condvar::new(),
            halted: Mutex::new(None),
            proposed: Mutex::new(HashSet::new()),
            signer_keys: Mutex::new(LruCache::new(
                NonZeroUsize::new(SIGNER_KEYS_CACHED).expect("not zero"),
            )),
            recent: Mutex::new(Recent::default()),
            blocks,
            executing: Mutex::new(()),
        });
        // A crash while a snapshot was being installed: its state committed
        // (keep its block) or not (drop it; the engine asks again).
        if let Some(height) = chain.store.snapshot_pending()? {
            let committed = chain.state.latest_version() == Some(height);
            tracing::info!(
                height,
                committed,
                "finishing an interrupted snapshot installation"
            );
            chain.store.finish_snapshot(height, committed)?;
        }
        let stored = chain.store.last_height()?;
        if stored < tip.height {
            return Err(ChainError::Store(format!(
                "the block store ends at {stored}, below the state's height {}",
                tip.height
            )));
        }
        for height in tip.height + 1..=stored {
            let block = chain.store.block(height)?.ok_or_else(|| {
                ChainError::Store(format!("block {height} is missing from the block store"))
            })?;
            tracing::info!(
                height,
                "executing a stored block the state had not committed"
            );
            chain.apply(block, None)?;
        }
        Ok(chain)
    }

    /// The chain's parameters.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The runtime (for read-only calls and code inspection).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The state.
    pub fn state(&self) -> &StateDb {
        &self.state
    }

    /// The block store.
    pub fn store(&self) -> &BlockStore {
        &self.store
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Why the node halted, if it did.
    pub fn halted(&self) -> Option<String> {
        self.halted.lock().expect("not poisoned").clone()
    }

    /// Executed blocks, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ExecutedBlock>> {
        self.blocks.subscribe()
    }

    fn halted_with(&self, reason: String) -> Halted {
        self.halt(reason.clone());
        Halted { reason }
    }

    fn halt(&self, reason: String) -> ChainError {
        tracing::error!(%reason, "HALTING: this node refuses every further block");
        *self.halted.lock().expect("not poisoned") = Some(reason.clone());
        ChainError::Halted(reason)
    }

    /// Executes an ordered block: checks it follows the tip, stores it,
    /// executes it, stores the receipts and commits the state. A state root
    /// that differs from this node's, a host fault or a storage failure
    /// halts the node; a block that does not follow the tip is refused.
    pub fn apply_block(&self, block: Block) -> Result<Arc<ExecutedBlock>, ChainError> {
        self.apply(block, Some(&[]))
    }

    /// [`Chain::apply_block`], storing the block with `mark`; `None` when
    /// the block came from the store (recovery), so it is not written again.
    fn apply(&self, block: Block, mark: Option<&[u8]>) -> Result<Arc<ExecutedBlock>, ChainError> {
        let _serial = self.executing.lock().expect("not poisoned");
        self.apply_serial(block, mark)
    }

    /// [`Chain::apply`] with the execution lock held.
    fn apply_serial(
        &self,
        block: Block,
        mark: Option<&[u8]>,
    ) -> Result<Arc<ExecutedBlock>, ChainError> {
        if let Some(reason) = self.halted() {
            return Err(ChainError::Halted(reason));
        }
        let tip = self.tip();
        let header = &block.header;
        let bad = |reason: String| ChainError::BadBlock {
            height: header.height,
            reason,
        };
        if header.height != tip.height + 1 {
            return Err(bad(format!("the executed tip is {}", tip.height)));
        }
        if header.parent_hash != tip.hash {
            return Err(bad("its parent hash is not the tip's hash".into()));
        }
        let hashes = block.transaction_hashes();
        if !block.is_consistent_with(&hashes) {
            return Err(bad("its transaction root or count is wrong".into()));
        }
        if header.time_ms < tip.time_ms {
            return Err(bad("its time is before its parent's".into()));
        }
        if header.state_root != tip.state_root {
            return Err(self.halt(format!(
                "state root mismatch at height {}: the block says {} after height {}, \
                 this node computed {}",
                header.height,
                hex_string(&header.state_root),
                tip.height,
                hex_string(&tip.state_root)
            )));
        }
        if let Some(mark) = mark {
            self.store
                .put_block(&block, mark)
                .map_err(|error| self.halt(error.to_string()))?;
        }
        // The block follows the chain; failing to execute or commit it (a
        // host fault, a disk error) leaves nothing committed, and the node
        // must not go on without it.
        self.execute_block(block, &hashes)
            .map_err(|error| self.halt(error.to_string()))
    }

    /// Executes `block`, whose transactions hash to `hashes`.
    fn execute_block(
        &self,
        block: Block,
        hashes: &[TxHash],
    ) -> Result<Arc<ExecutedBlock>, ChainError> {
        let header = block.header.clone();
        let executor = Executor {
            runtime: &self.runtime,
            spec: &self.spec,
        };
        let mut checked: Vec<bool> = {
            let mut proposed = self.proposed.lock().expect("not poisoned");
            hashes.iter().map(|hash| proposed.remove(hash)).collect()
        };
        verify_in_parallel(&block.transactions, &mut checked);
        let mut overlay = Overlay::new(&self.state);
        let mut receipts = Vec::with_capacity(block.transactions.len());
        for (index, tx) in block.transactions.iter().enumerate() {
            receipts.push(executor.execute(
                &mut overlay,
                &header,
                index as u32,
                tx,
                hashes[index],
                checked[index],
            )?);
        }
        self.store.put_receipts(&receipts)?;
        let state_root = overlay.commit(header.height)?;
        let gas: u64 = receipts.iter().map(|receipt| receipt.gas_used).sum();
        {
            let mut recent = self.recent.lock().expect("not poisoned");
            recent
                .blocks
                .push_back((header.time_ms, receipts.len() as u64, gas));
            if recent.blocks.len() > 32 {
                recent.blocks.pop_front();
            }
            recent.transactions_total += receipts.len() as u64;
        }
        let mut signers: Vec<Address> = block.transactions.iter().map(|tx| tx.tx.signer).collect();
        signers.sort_unstable();
        signers.dedup();
        let committed = signers
            .into_iter()
            .map(|signer| Ok((signer, read_nonce(&LatestView(&self.state), &signer)?)))
            .collect::<Result<Vec<_>, StorageError>>()
            .map_err(storage_fault)?;
        self.mempool.executed(committed);
        let executed = Arc::new(ExecutedBlock {
            block,
            receipts,
            state_root,
        });
        {
            let mut tip = self.tip.lock().expect("not poisoned");
            *tip = Tip {
                height: header.height,
                hash: header.hash(),
                time_ms: header.time_ms,
                state_root,
            };
        }
        self.tip_changed.notify_all();
        let _ = self.blocks.send(executed.clone());
        tracing::debug!(
            height = header.height,
            transactions = executed.receipts.len(),
            gas,
            "executed block"
        );
        Ok(executed)
    }

    /// [`Application::write_snapshot`].
    fn write_snapshot_at(
        &self,
        height: u64,
        out: &mut dyn std::io::Write,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let fail = |error: &dyn std::fmt::Display| SnapshotError(error.to_string());
        let tip = self.tip();
        if height > tip.height {
            return Err(SnapshotError(format!(
                "height {height} is above the executed tip {}",
                tip.height
            )));
        }
        let (block, mark) = if height == 0 {
            (None, None)
        } else {
            let block = self
                .store
                .block(height)
                .map_err(|error| fail(&error))?
                .ok_or_else(|| {
                    SnapshotError(format!("block {height} is not in the block store"))
                })?;
            (
                Some(block),
                self.store.mark(height).map_err(|error| fail(&error))?,
            )
        };
        let state_root = self.state.root_at(height).map_err(|error| fail(&error))?;
        let header = SnapshotHeader {
            genesis_hash: self.spec.genesis_hash,
            height,
            state_root,
            mark: mark.clone(),
            block,
        };
        let mut writer = SnapshotWriter::new(out, &header)?;
        let mut failure = None;
        self.state
            .for_each_at(height, |key, value| match writer.entry(key, value) {
                Ok(()) => true,
                Err(error) => {
                    failure = Some(error);
                    false
                }
            })
            .map_err(|error| fail(&error))?;
        if let Some(error) = failure {
            return Err(error);
        }
        writer.finish()?;
        Ok(SnapshotInfo {
            height,
            state_root,
            mark,
        })
    }

    /// [`Application::install_snapshot`]: reads and verifies everything
    /// before changing anything, then commits the difference between the
    /// latest state and the snapshot's as the snapshot's height.
    fn install_snapshot_from(
        &self,
        input: &mut dyn std::io::Read,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let (mut reader, header) = SnapshotReader::new(input)?;
        if header.genesis_hash != self.spec.genesis_hash {
            return Err(SnapshotError(format!(
                "it belongs to another chain (genesis {}, this chain's is {})",
                hex_string(&header.genesis_hash),
                hex_string(&self.spec.genesis_hash)
            )));
        }
        match (&header.block, header.height) {
            (None, 0) => {}
            (Some(block), height)
                if height > 0 && block.header.height == height && block.is_consistent() => {}
            _ => {
                return Err(SnapshotError(format!(
                    "its block does not match its height {}",
                    header.height
                )));
            }
        }
        let mut entries = Vec::new();
        let mut hashes = Vec::new();
        while let Some((key, value)) = reader.next_entry()? {
            hashes.push((key_hash(&key), value_hash(&value)));
            entries.push((key, value));
        }
        let rebuilt = stele_state::tree::root_of(&hashes);
        if rebuilt != header.state_root {
            return Err(SnapshotError(format!(
                "its entries rebuild the root {}, it claims {} at height {}",
                hex_string(&rebuilt),
                hex_string(&header.state_root),
                header.height
            )));
        }
        let genesis_entry = entries
            .binary_search_by(|(key, _)| key.as_slice().cmp(keys::GENESIS_HASH))
            .ok()
            .map(|index| &entries[index].1);
        if genesis_entry.map(Vec::as_slice) != Some(&self.spec.genesis_hash[..]) {
            return Err(SnapshotError(
                "its state does not hold this chain's genesis hash".into(),
            ));
        }
        let info = SnapshotInfo {
            height: header.height,
            state_root: header.state_root,
            mark: header.mark.clone(),
        };

        let _serial = self.executing.lock().expect("not poisoned");
        if let Some(reason) = self.halted() {
            return Err(SnapshotError(format!("the node has halted: {reason}")));
        }
        let tip = self.tip();
        if header.height < tip.height {
            return Err(SnapshotError(format!(
                "it holds height {}, below this node's executed height {}",
                header.height, tip.height
            )));
        }
        if header.height == tip.height {
            if header.state_root == tip.state_root {
                return Ok(info);
            }
            return Err(SnapshotError(format!(
                "it holds height {} with root {}, this node executed that height to root {}",
                header.height,
                hex_string(&header.state_root),
                hex_string(&tip.state_root)
            )));
        }
        let fail = |error: &dyn std::fmt::Display| SnapshotError(error.to_string());
        let current = self.state.entries().map_err(|error| fail(&error))?;
        let writes = difference(current, entries);
        let mark = header.mark.clone().unwrap_or_default();
        self.store
            .put_snapshot_block(header.block.as_ref(), header.height, &mark)
            .map_err(|error| fail(&error))?;
        let root = match self.state.commit(header.height, &writes) {
            Ok(root) => root,
            Err(error) => return Err(fail(&self.halt(format!("installing a snapshot: {error}")))),
        };
        if root != header.state_root {
            let reason = format!(
                "a snapshot's state committed to root {}, not the {} it was verified against",
                hex_string(&root),
                hex_string(&header.state_root)
            );
            return Err(fail(&self.halt(reason)));
        }
        self.store
            .finish_snapshot(header.height, true)
            .map_err(|error| fail(&self.halt(error.to_string())))?;
        let (hash, time_ms) = match &header.block {
            Some(block) => (block.header.hash(), block.header.time_ms),
            None => ([0; 32], self.spec.genesis_time_ms),
        };
        {
            let mut tip = self.tip.lock().expect("not poisoned");
            *tip = Tip {
                height: header.height,
                hash,
                time_ms,
                state_root: root,
            };
        }
        self.tip_changed.notify_all();
        // Pending transactions whose nonces the snapshot used are dropped.
        let committed = self
            .mempool
            .signers()
            .into_iter()
            .filter_map(|signer| Some((signer, self.nonce(&signer).ok()?)))
            .collect::<Vec<_>>();
        self.mempool.executed(committed);
        tracing::info!(
            height = header.height,
            state_root = %hex_string(&root),
            "installed a snapshot"
        );
        Ok(info)
    }

    /// Figures for `/metrics`.
    pub fn metrics(&self) -> Metrics {
        let recent = self.recent.lock().expect("not poisoned");
        let transactions_per_second = match (recent.blocks.front(), recent.blocks.back()) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                let counted: u64 = recent.blocks.iter().skip(1).map(|block| block.1).sum();
                counted as f64 * 1000.0 / (last.0 - first.0) as f64
            }
            _ => 0.0,
        };
        let mempool: MempoolStats = self.mempool.stats();
        Metrics {
            height: self.tip().height,
            transactions_total: recent.transactions_total,
            transactions_per_second,
            last_block_gas: recent.blocks.back().map_or(0, |block| block.2),
            mempool_transactions: mempool.transactions,
            mempool_bytes: mempool.bytes,
        }
    }

    /// The committed nonce of `account`.
    pub fn nonce(&self, account: &Address) -> Result<u64, ChainError> {
        read_nonce(&LatestView(&self.state), account).map_err(storage_fault)
    }

    /// The committed balance of `account`.
    pub fn balance(&self, account: &Address) -> Result<u128, ChainError> {
        read_balance(&LatestView(&self.state), account).map_err(storage_fault)
    }

    /// Admits encoded transaction bytes (from RPC): size, decoding, then
    /// the checks of [`Application::admit`].
    pub fn admit_bytes(&self, bytes: &[u8]) -> Result<TxHash, SubmitError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(SubmitError {
                code: codes::TX_TOO_LARGE,
                message: format!(
                    "transaction is {} bytes, over the limit TX_BYTES_MAX = {TX_BYTES_MAX}",
                    bytes.len()
                ),
            });
        }
        let tx = stele_types::decode_transaction(bytes).map_err(|error| SubmitError {
            code: codes::TX_MALFORMED,
            message: error.to_string(),
        })?;
        self.admit_sized(tx, bytes.len())
    }

    fn admit_sized(&self, tx: SignedTransaction, bytes: usize) -> Result<TxHash, SubmitError> {
        if let Some(reason) = self.halted() {
            return Err(SubmitError {
                code: codes::NODE_HALTED,
                message: format!("the node has halted: {reason}"),
            });
        }
        tx.check_cheap(&self.spec.chain_id)
            .map_err(|error| SubmitError {
                code: match error {
                    stele_types::TxError::WrongChain { .. } => codes::TX_WRONG_CHAIN,
                    _ => codes::TX_INVALID,
                },
                message: error.to_string(),
            })?;
        let body = &tx.tx;
        let intrinsic = intrinsic_gas(bytes);
        if body.gas_limit < intrinsic || body.gas_limit > TX_GAS_LIMIT_MAX {
            return Err(SubmitError {
                code: codes::TX_GAS,
                message: format!(
                    "gas limit {} is outside [{intrinsic}, TX_GAS_LIMIT_MAX = {TX_GAS_LIMIT_MAX}] \
                     ({intrinsic} is this transaction's intrinsic gas)",
                    body.gas_limit
                ),
            });
        }
        if body.gas_price < self.spec.gas_price_min {
            return Err(SubmitError {
                code: codes::TX_GAS,
                message: format!(
                    "gas price {} is below this chain's minimum {}",
                    body.gas_price, self.spec.gas_price_min
                ),
            });
        }
        let internal = |error: ChainError| SubmitError {
            code: codes::NODE_HALTED,
            message: error.to_string(),
        };
        let max_fee = u128::from(body.gas_limit).saturating_mul(body.gas_price);
        if max_fee > 0 {
            let balance = self.balance(&body.signer).map_err(internal)?;
            if balance < max_fee {
                return Err(SubmitError {
                    code: codes::TX_FUNDS,
                    message: format!("balance {balance} cannot pay the maximum fee {max_fee}"),
                });
            }
        }
        // Encoded once, for both the hash and the signature check.
        let signing_bytes = body.signing_bytes();
        let hash = tx_hash_of(&signing_bytes);
        let signer = body.signer;
        let committed_nonce = || self.nonce(&signer).map_err(internal);
        self.mempool.admit(tx, hash, bytes, committed_nonce, |tx| {
            self.verify_signature(tx, &signing_bytes)
                .map_err(|error| SubmitError {
                    code: codes::TX_BAD_SIGNATURE,
                    message: error.to_string(),
                })
        })
    }

    /// Strict signature check with the signer's key from the cache.
    fn verify_signature(
        &self,
        tx: &SignedTransaction,
        signing_bytes: &[u8],
    ) -> Result<(), TxError> {
        let signer = tx.tx.signer;
        let cached = self
            .signer_keys
            .lock()
            .expect("not poisoned")
            .get(&signer)
            .copied();
        let key = match cached {
            Some(key) => key,
            None => {
                let key = tx.verifying_key()?;
                self.signer_keys
                    .lock()
                    .expect("not poisoned")
                    .put(signer, key);
                key
            }
        };
        tx.verify_signature_with(&key, signing_bytes)
    }

    /// Executes a transaction against the latest state without committing
    /// anything (the signature is not checked). The receipt says what it
    /// would do, at the next height.
    pub fn simulate(&self, tx: &SignedTransaction) -> Result<Receipt, ChainError> {
        let tip = self.tip();
        let header = BlockHeader {
            height: tip.height + 1,
            parent_hash: tip.hash,
            time_ms: tip.time_ms,
            proposer: Address([0; 32]),
            transactions_root: [0; 32],
            transaction_count: 1,
            state_root: tip.state_root,
        };
        let executor = Executor {
            runtime: &self.runtime,
            spec: &self.spec,
        };
        let mut overlay = Overlay::new(&self.state);
        executor.execute(&mut overlay, &header, 0, tx, tx.hash(), true)
    }

    /// A read-only view of the latest state for the runtime.
    pub fn latest_view(&self) -> impl Storage + '_ {
        LatestView(&self.state)
    }

    /// A read-only view of the state at `height` for the runtime (point
    /// reads only; prefix iteration is served at the latest height only).
    pub fn view_at(&self, height: u64) -> impl Storage + '_ {
        HistoricalView {
            state: &self.state,
            height,
        }
    }
}

/// The writes that turn the state holding `current` into the one holding
/// `target` (both in key order): removals of keys only `current` has, and
/// every value of `target` that differs.
fn difference(current: Vec<(Vec<u8>, Vec<u8>)>, target: Vec<(Vec<u8>, Vec<u8>)>) -> WriteSet {
    let mut writes = WriteSet::new();
    let mut current = current.into_iter().peekable();
    for (key, value) in target {
        while let Some((old_key, _)) = current.next_if(|(old_key, _)| *old_key < key) {
            writes.insert(old_key, None);
        }
        match current.next_if(|(old_key, _)| *old_key == key) {
            Some((_, old_value)) if old_value == value => {}
            _ => {
                writes.insert(key, Some(value));
            }
        }
    }
    for (old_key, _) in current {
        writes.insert(old_key, None);
    }
    writes
}

/// The latest committed state as the runtime's storage.
struct LatestView<'a>(&'a StateDb);

impl Storage for LatestView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.0
            .get(key)
            .map_err(|error| StorageError(error.to_string()))
    }

    fn next(
        &self,
        start: &[u8],
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        self.0
            .next(start, prefix)
            .map_err(|error| StorageError(error.to_string()))
    }
}

struct HistoricalView<'a> {
    state: &'a StateDb,
    height: u64,
}

impl Storage for HistoricalView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.state
            .get_at(key, self.height)
            .map_err(|error| StorageError(error.to_string()))
    }

    fn next(
        &self,
        _start: &[u8],
        _prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        Err(StorageError(format!(
            "prefix iteration at past height {} is not supported; call at the latest height",
            self.height
        )))
    }
}

impl Application for Chain {
    fn execute(&self, block: Block, mark: &[u8]) -> Result<Executed, Halted> {
        let _serial = self.executing.lock().expect("not poisoned");
        if let Some(reason) = self.halted() {
            return Err(Halted { reason });
        }
        let tip = self.tip();
        let height = block.header.height;
        if height <= tip.height {
            let stored = self
                .store
                .block(height)
                .map_err(|error| self.halted_with(error.to_string()))?;
            if stored.is_some_and(|stored| stored.header == block.header) {
                return Ok(Executed::AlreadyExecuted(tip));
            }
            return Ok(Executed::Stale(tip));
        }
        if height > tip.height + 1 {
            // Every replica executes the same sequence: a block beyond the
            // next height means this node missed one.
            let reason = format!(
                "block {height} was ordered but this node executed only up to {}: \
                 it missed blocks",
                tip.height
            );
            return Err(self.halted_with(reason));
        }
        if block.header.parent_hash != tip.hash {
            return Ok(Executed::Stale(tip));
        }
        match self.apply_serial(block, Some(mark)) {
            Ok(_) => Ok(Executed::Applied(self.tip())),
            Err(ChainError::BadBlock { height, reason }) => {
                // It follows the tip (checked above) but is malformed:
                // every replica refuses it alike.
                tracing::warn!(height, %reason, "skipping an ordered block that is invalid");
                Ok(Executed::Stale(self.tip()))
            }
            Err(error) => Err(Halted {
                reason: self.halted().unwrap_or_else(|| error.to_string()),
            }),
        }
    }

    fn executed_mark(&self) -> Result<Option<OrderingMark>, Halted> {
        let tip = self.tip();
        if tip.height == 0 {
            return Ok(None);
        }
        self.store.mark(tip.height).map_err(|error| Halted {
            reason: error.to_string(),
        })
    }

    fn halted(&self) -> Option<String> {
        Chain::halted(self)
    }

    fn requeue(&self, proposal: Proposal) {
        let Proposal {
            transactions,
            hashes,
        } = proposal;
        let mut returned = Vec::with_capacity(transactions.len());
        for (tx, hash) in transactions.into_iter().zip(hashes) {
            let bytes = borsh::object_length(&tx).expect("a transaction always encodes");
            returned.push((tx, hash, bytes));
        }
        let dropped = self.mempool.requeue(returned, |signer| {
            read_nonce(&LatestView(&self.state), signer).unwrap_or(u64::MAX)
        });
        let mut proposed = self.proposed.lock().expect("not poisoned");
        for hash in dropped {
            proposed.remove(&hash);
        }
    }

    fn pending(&self) -> usize {
        self.mempool.stats().transactions
    }

    fn write_snapshot(
        &self,
        height: u64,
        out: &mut dyn std::io::Write,
    ) -> Result<SnapshotInfo, SnapshotError> {
        self.write_snapshot_at(height, out)
    }

    fn install_snapshot(
        &self,
        input: &mut dyn std::io::Read,
    ) -> Result<SnapshotInfo, SnapshotError> {
        self.install_snapshot_from(input)
    }

    fn admit(&self, tx: SignedTransaction) -> Result<TxHash, SubmitError> {
        let bytes = borsh::object_length(&tx).expect("a transaction always encodes");
        self.admit_sized(tx, bytes)
    }

    fn propose(&self, max_transactions: usize, max_bytes: usize) -> Proposal {
        let proposal = self.mempool.propose(max_transactions, max_bytes);
        let mut proposed = self.proposed.lock().expect("not poisoned");
        proposed.extend(proposal.hashes.iter().copied());
        proposal
    }

    fn tip(&self) -> Tip {
        *self.tip.lock().expect("not poisoned")
    }

    fn wait_executed(&self, height: u64, timeout: Duration) -> Option<Tip> {
        let tip = self.tip.lock().expect("not poisoned");
        let (tip, _) = self
            .tip_changed
            .wait_timeout_while(tip, timeout, |tip| tip.height < height)
            .expect("not poisoned");
        (tip.height >= height).then_some(*tip)
    }
}
