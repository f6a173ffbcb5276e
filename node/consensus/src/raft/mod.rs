//! The `raft` engine: blocks replicated by openraft, for permissioned,
//! crash-tolerant clusters.
//!
//! A thin adapter; the consensus is openraft's. The log and the vote live in
//! RocksDB ([`log_store`]), synced before anything is acknowledged. The state
//! machine is the chain ([`state_machine`]): applying a committed entry
//! executes its block through [`Application::execute`], with its log id as
//! the block's ordering mark. The leader proposes: every block interval (or
//! at once when its pool holds a full block) it takes a proposal from the
//! pool and writes it as a log entry, one at a time, only once every entry
//! of its log has been applied (so the block follows the chain every
//! replica will have); a proposal that does not commit goes back to the pool.
//! Followers forward submitted transactions to the leader ([`wire::PeerRequest::Submit`])
//! and send it what their own pools hold. Each replica checks every block's
//! state root against its own (a mismatch halts it). Snapshots of the chain
//! ([`Application::write_snapshot`]) let a new or lagging node catch up
//! after the log is compacted. Peers talk over an authenticated transport
//! ([`tcp`]), or over an in-memory network with faults in tests ([`memory`]).

pub mod log_store;
pub mod memory;
pub mod network;
pub mod state_machine;
pub mod tcp;
pub mod types;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use stele_host_api::Address;
use stele_types::{Block, BlockHeader, SignedTransaction, TxHash, transactions_root_of};
use tokio::sync::{mpsc, oneshot, watch};

use self::log_store::{LogStore, RaftDb};
use self::network::{NetworkFactory, PeerHandler, Transport};
use self::state_machine::{StateMachine, read_snapshot_header};
use self::types::{NodeId, NodeInfo, Raft, Request, Response, SnapshotFile};
use self::wire::{
    PeerRequest, PeerResponse, WireAppendResponse, WireMembershipChange, WireVote, log_id,
    wire_log_id,
};
use crate::{
    Application, BoxFuture, ClusterAdmin, EngineStatus, MembershipChange, Ordering, SubmitError,
    codes,
};

/// Most bytes of a block the engine proposes: one must fit a frame with
/// room to spare ([`tcp::FRAME_BYTES_MAX`]).
pub const BLOCK_BYTES_MAX_IN_FRAME: usize = 32 * 1024 * 1024;

const _: () = assert!(2 * BLOCK_BYTES_MAX_IN_FRAME <= tcp::FRAME_BYTES_MAX);

/// Transactions waiting to be forwarded to the leader, at most.
pub const FORWARD_QUEUE_MAX: usize = 65_536;

/// Most transactions forwarded in one request.
pub const FORWARD_BATCH_MAX: usize = 1_024;

/// Most bytes of one snapshot transfer in progress on disk (a state of tens
/// of millions of entries).
pub const SNAPSHOT_TRANSFER_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;

/// How long a membership change waits for a leader to be known.
pub const MEMBERSHIP_LEADER_WAIT: Duration = Duration::from_secs(10);

/// Configuration of one member. Every duration must be above zero.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// This node's id (listed in genesis).
    pub node_id: NodeId,
    /// Where the log, vote and snapshots live (`<data dir>/raft`).
    pub dir: PathBuf,
    /// The voting members at genesis, with their peer addresses. A node
    /// among them starts the cluster with them; any other node waits to
    /// be added as a learner.
    pub initial_members: BTreeMap<NodeId, NodeInfo>,
    /// Every node id listed in genesis (the only ones membership changes
    /// accept).
    pub listed: BTreeSet<NodeId>,
    /// The proposer written in this node's blocks (it receives the fees).
    pub proposer: Address,
    /// Time between blocks at most, while transactions wait. Default:
    /// 250 ms.
    pub block_interval: Duration,
    /// Most transactions per block. Default: 10,000.
    pub block_transactions_max: usize,
    /// Most transaction bytes per block. Default: 16 MiB; at most
    /// [`BLOCK_BYTES_MAX_IN_FRAME`].
    pub block_bytes_max: usize,
    /// Whether to order blocks when the pool is empty. Default: false.
    pub empty_blocks: bool,
    /// Leader heartbeat interval. Default: 100 ms.
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range
    /// starts an election. Default: 500-1000 ms.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is built after this many entries since the last.
    /// Default: 10,000.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log below the last snapshot (for followers a
    /// little behind). Default: 1,000.
    pub entries_kept_after_snapshot: u64,
    /// How long a proposal may take to commit before its transactions go
    /// back to the pool. Default: 10 s.
    pub proposal_timeout: Duration,
}

impl RaftConfig {
    /// The defaults for `node_id`, storing in `dir`.
    pub fn new(node_id: NodeId, dir: impl Into<PathBuf>) -> Self {
        RaftConfig {
            node_id,
            dir: dir.into(),
            initial_members: BTreeMap::new(),
            listed: BTreeSet::new(),
            proposer: Address([0; 32]),
            block_interval: Duration::from_millis(250),
            block_transactions_max: 10_000,
            block_bytes_max: 16 * 1024 * 1024,
            empty_blocks: false,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
            snapshot_every_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
            proposal_timeout: Duration::from_secs(10),
        }
    }

    /// Checks the values, naming the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listed.contains(&self.node_id) {
            return Err(format!("node {} is not listed in genesis", self.node_id));
        }
        if let Some(stranger) = self
            .initial_members
            .keys()
            .find(|id| !self.listed.contains(id))
        {
            return Err(format!(
                "initial member {stranger} is not listed in genesis"
            ));
        }
        if self.block_bytes_max == 0 || self.block_bytes_max > BLOCK_BYTES_MAX_IN_FRAME {
            return Err(format!(
                "block_bytes_max is {}, must be 1 to BLOCK_BYTES_MAX_IN_FRAME = {BLOCK_BYTES_MAX_IN_FRAME}",
                self.block_bytes_max
            ));
        }
        if self.block_transactions_max == 0 {
            return Err("block_transactions_max must be at least 1".into());
        }
        let (low, high) = self.election_timeout;
        for (name, value) in [
            ("block_interval", self.block_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("proposal_timeout", self.proposal_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{name} must be above zero"));
            }
        }
        if low <= self.heartbeat_interval * 2 || high <= low {
            return Err(format!(
                "election_timeout {low:?}-{high:?} must start above twice the heartbeat \
                 interval {:?} and end above its start",
                self.heartbeat_interval
            ));
        }
        if self.snapshot_every_entries == 0 {
            return Err("snapshot_every_entries must be at least 1".into());
        }
        Ok(())
    }
}

/// A transaction waiting to be forwarded to the leader.
struct Forwarded {
    tx: SignedTransaction,
    reply: oneshot::Sender<Result<TxHash, SubmitError>>,
}

/// A snapshot being received.
struct Incoming {
    from: NodeId,
    snapshot_id: String,
    path: PathBuf,
    file: File,
    written: u64,
}

struct Inner {
    config: RaftConfig,
    raft: Raft,
    app: Arc<dyn Application>,
    transport: Arc<dyn Transport>,
    db: RaftDb,
    forward: mpsc::Sender<Forwarded>,
    incoming: tokio::sync::Mutex<Option<Incoming>>,
    stop: watch::Sender<bool>,
}

/// A running member.
#[derive(Clone)]
pub struct RaftEngine {
    inner: Arc<Inner>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

fn no_leader(reason: impl std::fmt::Display) -> SubmitError {
    SubmitError {
        code: codes::NO_LEADER,
        message: format!("no leader can take the transaction now ({reason}); retry shortly"),
    }
}

impl RaftEngine {
    /// Opens the log under `config.dir`, starts openraft over `transport`
    /// with the chain `app` as its state machine, forms the cluster if this
    /// node is an initial member and the log is empty, and starts proposing
    /// (when leader) and forwarding (when not). Must run inside a tokio
    /// runtime. The caller serves [`RaftEngine::handler`] to peers.
    pub async fn start(
        config: RaftConfig,
        app: Arc<dyn Application>,
        transport: Arc<dyn Transport>,
    ) -> Result<RaftEngine, String> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir)
            .map_err(|error| format!("cannot create {}: {error}", config.dir.display()))?;
        let db = RaftDb::open(&config.dir.join("log"))?;
        let state_machine =
            StateMachine::open(app.clone(), db.clone(), config.dir.join("snapshots"))?;
        let raft_config = openraft::Config {
            cluster_name: "stele".into(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout.0.as_millis() as u64,
            election_timeout_max: config.election_timeout.1.as_millis() as u64,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
            install_snapshot_timeout: 30_000,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|error| format!("invalid Raft configuration: {error}"))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory::new(transport.clone()),
            LogStore::new(db.clone()),
            state_machine,
        )
        .await
        .map_err(|error| format!("starting Raft: {error}"))?;
        if config.initial_members.contains_key(&config.node_id)
            && !raft
                .is_initialized()
                .await
                .map_err(|error| error.to_string())?
        {
            // Every initial member does this with the same membership: safe
            // (the election decides); a second call is refused harmlessly.
            if let Err(error) = raft.initialize(config.initial_members.clone()).await {
                tracing::info!(%error, "cluster formation: already initialized");
            }
        }
        let (forward, forwarded) = mpsc::channel(FORWARD_QUEUE_MAX);
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            raft,
            app,
            transport,
            db,
            forward,
            incoming: tokio::sync::Mutex::new(None),
            stop,
        });
        let tasks = vec![
            tokio::spawn(propose_loop(inner.clone())),
            tokio::spawn(forward_loop(inner.clone(), forwarded)),
            tokio::spawn(pump_loop(inner.clone())),
        ];
        Ok(RaftEngine {
            inner,
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
        })
    }

    /// What peers' requests are served with.
    pub fn handler(&self) -> Arc<dyn PeerHandler> {
        self.inner.clone()
    }

    /// The openraft node (metrics, for tests and status).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The engine's RocksDB (for tests that damage a node's log).
    pub fn db(&self) -> &RaftDb {
        &self.inner.db
    }

    /// Stops openraft and the engine's tasks, and waits for them to end:
    /// once every clone of the engine is dropped too, nothing of it holds
    /// the application or the log open.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let _ = self.inner.raft.shutdown().await;
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        );
        for task in tasks {
            let _ = task.await;
        }
    }

    /// [`ClusterAdmin::change_membership`], asynchronously.
    pub async fn change(&self, change: MembershipChange) -> Result<(), String> {
        self.inner.change_membership(change).await
    }
}

impl Inner {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.config.node_id)
    }

    /// The leader's id and address, when known and not this node.
    fn remote_leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        if leader == self.config.node_id {
            return None;
        }
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    fn rpc_timeout(&self) -> Duration {
        self.config.election_timeout.1.max(Duration::from_secs(2))
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<(), String> {
        let node_id = match &change {
            MembershipChange::AddLearner { node_id, .. }
            | MembershipChange::Promote { node_id }
            | MembershipChange::Remove { node_id } => *node_id,
        };
        if !self.config.listed.contains(&node_id) {
            return Err(format!("node {node_id} is not listed in genesis"));
        }
        // Right after a restart or during an election no leader is known
        // yet: wait a little for one rather than refusing at once.
        let _ = self
            .raft
            .wait(Some(MEMBERSHIP_LEADER_WAIT))
            .metrics(|metrics| metrics.current_leader.is_some(), "a known leader")
            .await;
        if !self.is_leader() {
            let (leader, addr) = self
                .remote_leader()
                .ok_or_else(|| "no leader is known; retry shortly".to_string())?;
            let request = PeerRequest::ChangeMembership(match change {
                MembershipChange::AddLearner { node_id, addr } => {
                    WireMembershipChange::AddLearner { node_id, addr }
                }
                MembershipChange::Promote { node_id } => WireMembershipChange::Promote { node_id },
                MembershipChange::Remove { node_id } => WireMembershipChange::Remove { node_id },
            });
            return match self
                .transport
                .call(leader, &addr, request, Duration::from_secs(60))
                .await
            {
                Ok(PeerResponse::ChangeMembership(result)) => result,
                Ok(other) => Err(format!("the leader answered {other:?}")),
                Err(error) => Err(format!("forwarding to the leader: {error}")),
            };
        }
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let is_voter = membership.voter_ids().any(|id| id == node_id);
        let is_learner = membership.learner_ids().any(|id| id == node_id);
        let result = match change {
            MembershipChange::AddLearner { node_id, addr } => {
                if is_voter {
                    return Err(format!("node {node_id} is already a voting member"));
                }
                self.raft
                    .add_learner(node_id, NodeInfo { addr }, true)
                    .await
                    .map(|_| ())
            }
            MembershipChange::Promote { node_id } => {
                if !is_learner {
                    return Err(format!(
                        "node {node_id} is not a learner; add it with `stele cluster add` first"
                    ));
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
                    .await
                    .map(|_| ())
            }
            MembershipChange::Remove { node_id } => {
                if is_voter {
                    self.raft
                        .change_membership(
                            ChangeMembers::RemoveVoters(BTreeSet::from([node_id])),
                            false,
                        )
                        .await
                        .map(|_| ())
                } else if is_learner {
                    self.raft
                        .change_membership(
                            ChangeMembers::RemoveNodes(BTreeSet::from([node_id])),
                            false,
                        )
                        .await
                        .map(|_| ())
                } else {
                    return Err(format!("node {node_id} is not a member"));
                }
            }
        };
        result.map_err(|error| error.to_string())
    }

    /// A chunk of a snapshot from `from`; the last one installs it.
    async fn receive_snapshot_chunk(
        &self,
        from: NodeId,
        vote: WireVote,
        snapshot_id: String,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) -> PeerResponse {
        let mut incoming = self.incoming.lock().await;
        // A new transfer (another snapshot, or a restart from offset 0)
        // replaces the one in progress.
        let fresh = incoming
            .as_ref()
            .is_none_or(|current| current.from != from || current.snapshot_id != snapshot_id);
        if fresh || offset == 0 {
            if offset != 0 {
                return PeerResponse::Refused(format!(
                    "snapshot {snapshot_id}: chunk at {offset} without its beginning"
                ));
            }
            if let Some(old) = incoming.take() {
                let _ = std::fs::remove_file(&old.path);
            }
            let path = self
                .config
                .dir
                .join("snapshots")
                .join(format!("incoming-{from}.tmp"));
            let file = match File::create(&path) {
                Ok(file) => file,
                Err(error) => return PeerResponse::Refused(format!("{}: {error}", path.display())),
            };
            *incoming = Some(Incoming {
                from,
                snapshot_id: snapshot_id.clone(),
                path,
                file,
                written: 0,
            });
        }
        let Some(current) = incoming.as_mut() else {
            return PeerResponse::Refused("no snapshot transfer in progress".into());
        };
        if offset != current.written {
            return PeerResponse::Refused(format!(
                "snapshot {snapshot_id}: chunk at {offset}, expected {}",
                current.written
            ));
        }
        if current.written + data.len() as u64 > SNAPSHOT_TRANSFER_BYTES_MAX {
            let _ = std::fs::remove_file(&current.path);
            *incoming = None;
            return PeerResponse::Refused(format!(
                "snapshot {snapshot_id} is over SNAPSHOT_TRANSFER_BYTES_MAX = {SNAPSHOT_TRANSFER_BYTES_MAX}"
            ));
        }
        if let Err(error) = current.file.write_all(&data) {
            return PeerResponse::Refused(format!("writing the snapshot: {error}"));
        }
        current.written += data.len() as u64;
        if !done {
            return PeerResponse::Snapshot(None);
        }
        let Some(finished) = incoming.take() else {
            return PeerResponse::Refused("no snapshot transfer in progress".into());
        };
        drop(incoming);
        if let Err(error) = finished.file.sync_all() {
            return PeerResponse::Refused(format!("syncing the snapshot: {error}"));
        }
        let meta = File::open(&finished.path)
            .map_err(|error| error.to_string())
            .and_then(|file| read_snapshot_header(&mut BufReader::new(file)));
        let meta = match meta {
            Ok(meta) => meta,
            Err(error) => {
                let _ = std::fs::remove_file(&finished.path);
                return PeerResponse::Refused(format!("snapshot {snapshot_id}: {error}"));
            }
        };
        let snapshot = openraft::storage::Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile {
                path: finished.path.clone(),
            }),
        };
        match self.raft.install_full_snapshot(vote.into(), snapshot).await {
            Ok(response) => {
                // An older snapshot than the state is ignored: its file too.
                let _ = std::fs::remove_file(&finished.path);
                PeerResponse::Snapshot(Some((&response.vote).into()))
            }
            Err(error) => PeerResponse::Refused(format!("installing the snapshot: {error}")),
        }
    }
}

impl PeerHandler for Inner {
    fn handle(&self, from: NodeId, request: PeerRequest) -> BoxFuture<'_, PeerResponse> {
        Box::pin(async move {
            match request {
                PeerRequest::AppendEntries {
                    vote,
                    prev_log_id,
                    entries,
                    leader_commit,
                } => {
                    let request = AppendEntriesRequest {
                        vote: vote.into(),
                        prev_log_id: log_id(prev_log_id),
                        entries: entries.into_iter().map(Into::into).collect(),
                        leader_commit: log_id(leader_commit),
                    };
                    match self.raft.append_entries(request).await {
                        Ok(response) => PeerResponse::AppendEntries(match response {
                            AppendEntriesResponse::Success => WireAppendResponse::Success,
                            AppendEntriesResponse::PartialSuccess(upto) => {
                                WireAppendResponse::PartialSuccess(wire_log_id(&upto))
                            }
                            AppendEntriesResponse::Conflict => WireAppendResponse::Conflict,
                            AppendEntriesResponse::HigherVote(vote) => {
                                WireAppendResponse::HigherVote((&vote).into())
                            }
                        }),
                        Err(error) => PeerResponse::Refused(error.to_string()),
                    }
                }
                PeerRequest::Vote { vote, last_log_id } => {
                    match self
                        .raft
                        .vote(VoteRequest::new(vote.into(), log_id(last_log_id)))
                        .await
                    {
                        Ok(response) => PeerResponse::Vote {
                            vote: (&response.vote).into(),
                            vote_granted: response.vote_granted,
                            last_log_id: wire_log_id(&response.last_log_id),
                        },
                        Err(error) => PeerResponse::Refused(error.to_string()),
                    }
                }
                PeerRequest::SnapshotChunk {
                    vote,
                    snapshot_id,
                    offset,
                    data,
                    done,
                } => {
                    self.receive_snapshot_chunk(from, vote, snapshot_id, offset, data, done)
                        .await
                }
                PeerRequest::Submit { transactions } => {
                    if transactions.len() > FORWARD_BATCH_MAX {
                        return PeerResponse::Refused(format!(
                            "{} transactions in one request, over FORWARD_BATCH_MAX = {FORWARD_BATCH_MAX}",
                            transactions.len()
                        ));
                    }
                    let app = self.app.clone();
                    // Signature checks are CPU work: off the async threads.
                    let results = tokio::task::spawn_blocking(move || {
                        transactions
                            .into_iter()
                            .map(|tx| app.admit(tx).map_err(|error| (error.code, error.message)))
                            .collect()
                    })
                    .await;
                    match results {
                        Ok(results) => PeerResponse::Submit(results),
                        Err(error) => PeerResponse::Refused(error.to_string()),
                    }
                }
                PeerRequest::ChangeMembership(change) => {
                    let change = match change {
                        WireMembershipChange::AddLearner { node_id, addr } => {
                            MembershipChange::AddLearner { node_id, addr }
                        }
                        WireMembershipChange::Promote { node_id } => {
                            MembershipChange::Promote { node_id }
                        }
                        WireMembershipChange::Remove { node_id } => {
                            MembershipChange::Remove { node_id }
                        }
                    };
                    PeerResponse::ChangeMembership(self.change_membership(change).await)
                }
            }
        })
    }
}

/// Waits for the metrics to change, the engine to stop, or `limit`.
async fn wait_change(
    metrics: &mut watch::Receiver<openraft::RaftMetrics<NodeId, NodeInfo>>,
    stop: &mut watch::Receiver<bool>,
    limit: Duration,
) {
    tokio::select! {
        _ = metrics.changed() => {}
        _ = stop.changed() => {}
        _ = tokio::time::sleep(limit) => {}
    }
}

/// The leader's loop: one proposal at a time, each once the log is applied.
async fn propose_loop(inner: Arc<Inner>) {
    let mut metrics = inner.raft.metrics();
    let mut stop = inner.stop.subscribe();
    let interval = inner.config.block_interval;
    // How often an idle leader looks at its pool.
    let poll = (interval / 10).clamp(Duration::from_millis(1), Duration::from_millis(20));
    let mut last_proposal: Option<Instant> = None;
    loop {
        if inner.stopped() || inner.app.halted().is_some() {
            return;
        }
        let (leading, caught_up) = {
            let now = metrics.borrow_and_update();
            let leading = now.state == ServerState::Leader
                && now.current_leader == Some(inner.config.node_id);
            let applied = now.last_applied.map(|id| id.index);
            (leading, applied.is_some() && applied == now.last_log_index)
        };
        if !leading || !caught_up {
            wait_change(&mut metrics, &mut stop, interval).await;
            continue;
        }
        if let Some(last) = last_proposal {
            let due = last + interval;
            let now = Instant::now();
            // A full block goes at once; otherwise the interval paces them.
            if now < due && !pool_holds_a_block(&inner) {
                tokio::time::sleep((due - now).min(poll)).await;
                continue;
            }
        }
        if !inner.config.empty_blocks && inner.app.pending() == 0 {
            tokio::time::sleep(poll).await;
            continue;
        }
        last_proposal = Some(Instant::now());
        let proposal = inner.app.propose(
            inner.config.block_transactions_max,
            inner.config.block_bytes_max,
        );
        if proposal.transactions.is_empty() && !inner.config.empty_blocks {
            continue;
        }
        let tip = inner.app.tip();
        let block = Block {
            header: BlockHeader {
                height: tip.height + 1,
                parent_hash: tip.hash,
                time_ms: now_ms().max(tip.time_ms),
                proposer: inner.config.proposer,
                transactions_root: transactions_root_of(&proposal.hashes),
                transaction_count: proposal.transactions.len() as u32,
                state_root: tip.state_root,
            },
            transactions: proposal.transactions.clone(),
        };
        let height = block.header.height;
        let written = tokio::time::timeout(
            inner.config.proposal_timeout,
            inner.raft.client_write(Request::Block(block)),
        )
        .await;
        match written {
            Ok(Ok(response)) if matches!(response.data, Response::Executed { .. }) => {}
            Ok(Ok(response)) => {
                tracing::info!(height, ?response.data, "a proposal was stale; its transactions go back");
                inner.app.requeue(proposal);
            }
            Ok(Err(error)) => {
                tracing::info!(height, %error, "a proposal did not commit; its transactions go back");
                inner.app.requeue(proposal);
                if matches!(error, RaftError::Fatal(_)) {
                    return;
                }
            }
            Err(_) => {
                tracing::warn!(
                    height,
                    timeout = ?inner.config.proposal_timeout,
                    "a proposal did not commit in time; its transactions go back"
                );
                inner.app.requeue(proposal);
            }
        }
    }
}

/// Whether the pool holds a full block's worth of transactions.
fn pool_holds_a_block(inner: &Inner) -> bool {
    inner.app.pending() >= inner.config.block_transactions_max
}

/// Forwards submitted transactions to the leader in batches.
async fn forward_loop(inner: Arc<Inner>, mut queue: mpsc::Receiver<Forwarded>) {
    let mut batch: Vec<Forwarded> = Vec::with_capacity(FORWARD_BATCH_MAX);
    let mut stop = inner.stop.subscribe();
    loop {
        let received = tokio::select! {
            received = queue.recv_many(&mut batch, FORWARD_BATCH_MAX) => received,
            _ = stop.wait_for(|stopped| *stopped) => 0,
        };
        if received == 0 || inner.stopped() {
            return;
        }
        let waiting = std::mem::take(&mut batch);
        if inner.is_leader() {
            let app = inner.app.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for forwarded in waiting {
                    let _ = forwarded.reply.send(app.admit(forwarded.tx));
                }
            })
            .await;
            continue;
        }
        let Some((leader, addr)) = inner.remote_leader() else {
            for forwarded in waiting {
                let _ = forwarded
                    .reply
                    .send(Err(no_leader("an election is under way")));
            }
            continue;
        };
        let (transactions, replies): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .map(|forwarded| (forwarded.tx, forwarded.reply))
            .unzip();
        let answer = inner
            .transport
            .call(
                leader,
                &addr,
                PeerRequest::Submit { transactions },
                inner.rpc_timeout(),
            )
            .await;
        match answer {
            Ok(PeerResponse::Submit(results)) if results.len() == replies.len() => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ =
                        reply.send(result.map_err(|(code, message)| SubmitError { code, message }));
                }
            }
            Ok(other) => {
                for reply in replies {
                    let _ = reply.send(Err(no_leader(format!("the leader answered {other:?}"))));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(no_leader(&error)));
                }
            }
        }
    }
}

/// A follower sends what its own pool holds (transactions it admitted while
/// it led, or that came back to it) to the leader.
async fn pump_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(inner.config.block_interval) => {}
        }
        if inner.is_leader() || inner.app.pending() == 0 {
            continue;
        }
        let Some((leader, addr)) = inner.remote_leader() else {
            continue;
        };
        let proposal = inner
            .app
            .propose(FORWARD_BATCH_MAX, inner.config.block_bytes_max);
        if proposal.transactions.is_empty() {
            continue;
        }
        let request = PeerRequest::Submit {
            transactions: proposal.transactions.clone(),
        };
        match inner
            .transport
            .call(leader, &addr, request, inner.rpc_timeout())
            .await
        {
            Ok(PeerResponse::Submit(_)) => {}
            // Kept for the next try (or this node's own term).
            _ => inner.app.requeue(proposal),
        }
    }
}

impl Ordering for RaftEngine {
    fn name(&self) -> &'static str {
        "raft"
    }

    fn submit(&self, tx: SignedTransaction) -> BoxFuture<'_, Result<TxHash, SubmitError>> {
        Box::pin(async move {
            let inner = &self.inner;
            if inner.is_leader() {
                let app = inner.app.clone();
                return tokio::task::spawn_blocking(move || app.admit(tx))
                    .await
                    .map_err(|error| no_leader(error))?;
            }
            let (reply, answer) = oneshot::channel();
            inner
                .forward
                .try_send(Forwarded { tx, reply })
                .map_err(|_| SubmitError {
                    code: codes::NO_LEADER,
                    message: format!(
                        "{FORWARD_QUEUE_MAX} transactions wait to be forwarded to the leader, \
                     the most allowed; retry shortly"
                    ),
                })?;
            answer
                .await
                .map_err(|_| no_leader("the node is stopping"))?
        })
    }

    fn status(&self) -> EngineStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let members: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let me = self.inner.config.node_id;
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Follower if members.contains(&me) => "follower",
            ServerState::Follower | ServerState::Learner => "learner",
            ServerState::Shutdown => "stopped",
        };
        let commit_index = self
            .inner
            .raft
            .data_metrics()
            .borrow()
            .last_applied
            .map_or(0, |id| id.index);
        EngineStatus {
            engine: "raft",
            node_id: me,
            role,
            leader: metrics.current_leader,
            term: metrics.current_term,
            members,
            learners,
            commit_index,
        }
    }

    fn stop(&self) {
        let _ = self.inner.stop.send(true);
    }
}

impl ClusterAdmin for RaftEngine {
    fn change_membership(&self, change: MembershipChange) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.inner.change_membership(change))
    }
}
