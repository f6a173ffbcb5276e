//! The solo engine: one node orders every block, on a fixed interval.
//!
//! Each block carries the state root after the previous one, so the engine
//! executes each block (through [`Application::execute`], on its own
//! thread) before ordering the next. That puts execution on the ordering
//! path, which is acceptable for a single node (and keeps its blocks' roots
//! exact).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stele_host_api::Address;
use stele_types::{Block, BlockHeader, SignedTransaction, TxHash, transactions_root_of};

use crate::{Application, BoxFuture, EngineStatus, Executed, Ordering, Proposal, SubmitError};

/// Configuration of the solo engine.
#[derive(Clone, Debug)]
pub struct SoloConfig {
    /// Time between blocks. Default: 250 ms.
    pub block_interval: Duration,
    /// Most transactions per block. Default: 10,000.
    pub block_transactions_max: usize,
    /// Most transaction bytes per block. Default: 16 MiB.
    pub block_bytes_max: usize,
    /// The proposer written in every header (it receives the fees).
    pub proposer: Address,
    /// Whether to order a block when the pool is empty. Default: true, so
    /// heights and times keep moving on an idle dev chain.
    pub empty_blocks: bool,
}

impl Default for SoloConfig {
    fn default() -> Self {
        SoloConfig {
            block_interval: Duration::from_millis(250),
            block_transactions_max: 10_000,
            block_bytes_max: 16 * 1024 * 1024,
            proposer: Address([0; 32]),
            empty_blocks: true,
        }
    }
}

/// A running solo engine.
pub struct Solo {
    app: Arc<dyn Application>,
    stop: Arc<AtomicBool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Solo {
    /// Starts ordering (and executing) on a thread. It stops by itself if
    /// the node halts.
    pub fn start(config: SoloConfig, app: Arc<dyn Application>) -> std::io::Result<Solo> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let app = app.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("solo-ordering".into())
                .spawn(move || run(config, app, stop))?
        };
        let solo = Solo {
            app,
            stop,
            thread: std::sync::Mutex::new(Some(thread)),
        };
        Ok(solo)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

fn run(config: SoloConfig, app: Arc<dyn Application>, stop: Arc<AtomicBool>) {
    let mut next_tick = Instant::now();
    let mut tip = app.tip();
    while !stop.load(AtomicOrdering::Relaxed) {
        // Pace blocks: the interval is a production schedule, not a
        // synchronisation device.
        let now = Instant::now();
        if next_tick > now {
            std::thread::park_timeout(next_tick - now);
            continue;
        }
        next_tick = now + config.block_interval;
        let Proposal {
            transactions,
            hashes,
        } = app.propose(config.block_transactions_max, config.block_bytes_max);
        if transactions.is_empty() && !config.empty_blocks {
            continue;
        }
        let header = BlockHeader {
            height: tip.height + 1,
            parent_hash: tip.hash,
            time_ms: now_ms().max(tip.time_ms),
            proposer: config.proposer,
            transactions_root: transactions_root_of(&hashes),
            transaction_count: transactions.len() as u32,
            state_root: tip.state_root,
        };
        let block = Block {
            header,
            transactions,
        };
        match app.execute(block, &[]) {
            Ok(Executed::Applied(executed)) => tip = executed,
            Ok(other) => {
                // Only this thread orders: the block always follows.
                tracing::error!(?other, "solo: an ordered block did not execute");
                return;
            }
            Err(halted) => {
                tracing::error!(%halted, "solo: ordering stopped");
                return;
            }
        }
    }
}

impl Ordering for Solo {
    fn name(&self) -> &'static str {
        "solo"
    }

    fn submit(&self, tx: SignedTransaction) -> BoxFuture<'_, Result<TxHash, SubmitError>> {
        let admitted = self.app.admit(tx);
        Box::pin(std::future::ready(admitted))
    }

    fn status(&self) -> EngineStatus {
        let height = self.app.tip().height;
        EngineStatus {
            engine: "solo",
            node_id: 1,
            role: "leader",
            leader: Some(1),
            term: 0,
            members: vec![1],
            learners: Vec::new(),
            commit_index: height,
        }
    }

    fn stop(&self) {
        self.stop.store(true, AtomicOrdering::Relaxed);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(thread) = thread {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Solo {
    fn drop(&mut self) {
        self.stop();
    }
}
