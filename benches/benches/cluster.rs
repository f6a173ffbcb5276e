//! A three-node Raft cluster next to a solo node, in the same run, on this
//! machine (every node shares its cores), over real TCP on 127.0.0.1 with
//! the authenticated transport, each node with its own RocksDB chain and
//! log:
//!
//! - `cluster/commit/{solo,raft3}`: 4,000 signed transfers from 200
//!   accounts submitted at once (to every node in turn for the cluster, so
//!   two thirds are forwarded by followers) until every node executed them;
//!   criterion's throughput is the committed tx/s. The submit→executed
//!   latency of each transaction (on the node it was sent to) is collected
//!   over all iterations and printed as p50/p99 at the end.
//! - `cluster/failover/raft3`: the leader is shut down; the time until a
//!   new leader has committed a transaction.
//! - `cluster/catch_up/raft3_10k_blocks`: a follower stopped while the
//!   others ordered 10,000 one-transaction blocks restarts; the time until
//!   it has executed them all (each sample orders a fresh lag first, about
//!   25 s on this machine).
//!
//! Run with `cargo bench -p stele-benches --bench cluster`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use stele_chain::{Chain, ChainConfig, ChainSpec, Genesis, GenesisAccount};
use stele_consensus::raft::tcp::{PeerKeys, TcpServer, TcpTransport};
use stele_consensus::raft::types::NodeInfo;
use stele_consensus::raft::{RaftConfig, RaftEngine};
use stele_consensus::solo::{Solo, SoloConfig};
use stele_consensus::{Application, Ordering};
use stele_host_api::Address;
use stele_types::{Action, SignedTransaction, Transaction, TxHash, format_address};
use tokio::runtime::Runtime;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHAIN_ID: &str = "stele-bench";
const ACCOUNTS: usize = 200;
const PER_ITERATION: usize = 4_000;
const BLOCK_INTERVAL: Duration = Duration::from_millis(100);
const LAG_BLOCKS: usize = 10_000;

fn account(index: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn node_key(id: u64) -> SigningKey {
    SigningKey::from_bytes(&[100 + id as u8; 32])
}

fn spec() -> ChainSpec {
    Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 1_000,
        gas_price_min: "0".into(),
        accounts: (0..ACCOUNTS)
            .map(|index| GenesisAccount {
                address: format_address(&Address(account(index).verifying_key().to_bytes())),
                balance: "1000000000000".into(),
            })
            .collect(),
        deploy_allow_list: None,
        consensus: None,
    }
    .parse()
    .expect("a valid genesis")
}

/// Signed transfers, each account's in nonce order, accounts interleaved.
struct Senders {
    keys: Vec<SigningKey>,
    nonces: Vec<u64>,
}

impl Senders {
    fn new() -> Senders {
        Senders {
            keys: (0..ACCOUNTS).map(account).collect(),
            nonces: vec![0; ACCOUNTS],
        }
    }

    fn next(&mut self, count: usize) -> Vec<SignedTransaction> {
        (0..count)
            .map(|index| {
                let sender = index % ACCOUNTS;
                let nonce = self.nonces[sender];
                self.nonces[sender] += 1;
                Transaction {
                    chain_id: CHAIN_ID.into(),
                    signer: Address(self.keys[sender].verifying_key().to_bytes()),
                    nonce,
                    gas_limit: 1_000_000,
                    gas_price: 0,
                    actions: vec![Action::Transfer {
                        to: Address([9; 32]),
                        amount: 1,
                    }],
                }
                .sign(&self.keys[sender])
            })
            .collect()
    }
}

/// A node: its chain and the engine ordering its blocks.
struct Node {
    chain: Arc<Chain>,
    ordering: Arc<dyn Ordering>,
    raft: Option<(RaftEngine, TcpServer)>,
}

fn raft_config(id: u64, dir: &Path, members: &BTreeMap<u64, NodeInfo>) -> RaftConfig {
    let mut config = RaftConfig::new(id, dir.join("raft"));
    config.initial_members = members.clone();
    config.listed = members.keys().copied().collect::<BTreeSet<_>>();
    config.proposer = Address(node_key(id).verifying_key().to_bytes());
    config.block_interval = BLOCK_INTERVAL;
    config
}

async fn start_member(
    id: u64,
    dir: &Path,
    spec: &ChainSpec,
    members: &BTreeMap<u64, NodeInfo>,
    tweak: &dyn Fn(&mut RaftConfig),
) -> Node {
    let addr: SocketAddr = members[&id].addr.parse().expect("an address");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the member's port is free");
    let chain =
        Chain::open(ChainConfig::new(dir.join("chain")), spec.clone()).expect("chain opens");
    let keys = Arc::new(PeerKeys {
        chain: spec.genesis_hash,
        node_id: id,
        key: node_key(id),
        peers: members
            .keys()
            .map(|&peer| (peer, node_key(peer).verifying_key()))
            .collect(),
    });
    let mut config = raft_config(id, dir, members);
    tweak(&mut config);
    let engine = RaftEngine::start(config, chain.clone(), TcpTransport::new(keys.clone()))
        .await
        .expect("the engine starts");
    let server = TcpServer::start(listener, keys, engine.handler()).expect("serving peers");
    Node {
        chain,
        ordering: Arc::new(engine.clone()),
        raft: Some((engine, server)),
    }
}

fn free_members(count: u64) -> BTreeMap<u64, NodeInfo> {
    let listeners: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| {
            let addr = listener.local_addr().expect("bound").to_string();
            (index as u64 + 1, NodeInfo { addr })
        })
        .collect()
}

async fn cluster(
    root: &Path,
    tweak: &dyn Fn(&mut RaftConfig),
) -> (Vec<Node>, BTreeMap<u64, NodeInfo>) {
    let spec = spec();
    let members = free_members(3);
    let mut nodes = Vec::new();
    for &id in members.keys() {
        nodes
            .push(start_member(id, &root.join(format!("node-{id}")), &spec, &members, tweak).await);
    }
    wait_for_leader(&nodes, None).await;
    (nodes, members)
}

fn leader_of(nodes: &[Node]) -> Option<u64> {
    let leaders: Vec<_> = nodes
        .iter()
        .map(|node| node.ordering.status().leader)
        .collect();
    let first = leaders.first().copied().flatten()?;
    leaders
        .iter()
        .all(|leader| *leader == Some(first))
        .then_some(first)
}

async fn wait_for_leader(nodes: &[Node], not: Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(leader) = leader_of(nodes)
            && Some(leader) != not
        {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader within 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn executed(chain: &Chain, hash: &TxHash) -> bool {
    chain
        .store()
        .locate(hash)
        .expect("the store reads")
        .is_some()
}

/// Submits `transactions` to `nodes` in turn (retrying while no leader is
/// known), and waits until every node executed them all; returns the time
/// taken and each transaction's submit→executed latency on the node it
/// was sent to.
async fn commit(nodes: &[Node], transactions: Vec<SignedTransaction>) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let sent: Arc<Mutex<Vec<(usize, TxHash, Instant)>>> = Arc::default();
    let mut lanes: Vec<Vec<SignedTransaction>> = vec![Vec::new(); nodes.len()];
    for (index, tx) in transactions.into_iter().enumerate() {
        lanes[index % nodes.len()].push(tx);
    }
    let mut submitting = Vec::new();
    for (lane, transactions) in lanes.into_iter().enumerate() {
        let ordering = nodes[lane].ordering.clone();
        let sent = sent.clone();
        submitting.push(tokio::spawn(async move {
            for tx in transactions {
                let at = Instant::now();
                let deadline = at + Duration::from_secs(30);
                let hash = loop {
                    match ordering.submit(tx.clone()).await {
                        Ok(hash) => break hash,
                        Err(error) => {
                            assert!(Instant::now() < deadline, "submit failed: {error:?}");
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                };
                sent.lock().expect("not poisoned").push((lane, hash, at));
            }
        }));
    }
    let mut waiting: Vec<Vec<(usize, TxHash, Instant)>> = vec![Vec::new(); nodes.len()];
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done_submitting = submitting.iter().all(|task| task.is_finished());
        for entry in sent.lock().expect("not poisoned").drain(..) {
            for lane in waiting.iter_mut() {
                lane.push(entry);
            }
        }
        let now = Instant::now();
        for (node, lane) in waiting.iter_mut().enumerate() {
            lane.retain(|(sent_to, hash, at)| {
                if !executed(&nodes[node].chain, hash) {
                    return true;
                }
                if *sent_to == node {
                    latencies.push(now - *at);
                }
                false
            });
        }
        if done_submitting && waiting.iter().all(Vec::is_empty) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transactions not executed within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in submitting {
        task.await.expect("the submitter ends");
    }
    (started.elapsed(), latencies)
}

fn percentile(latencies: &mut [Duration], fraction: f64) -> Duration {
    latencies.sort();
    latencies[((latencies.len() - 1) as f64 * fraction) as usize]
}

fn report(name: &str, latencies: &mut [Duration], taken: Duration, count: usize) {
    eprintln!(
        "{name}: {:.0} tx/s over {count} transactions; submit→executed p50 {:.1} ms, p99 {:.1} ms",
        count as f64 / taken.as_secs_f64(),
        percentile(latencies, 0.5).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
    );
}

fn commit_benches(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a runtime");
    let root = tempfile::tempdir().expect("a temp dir");
    let solo_chain =
        Chain::open(ChainConfig::new(root.path().join("solo")), spec()).expect("opens");
    let solo = Solo::start(
        SoloConfig {
            block_interval: BLOCK_INTERVAL,
            empty_blocks: false,
            ..SoloConfig::default()
        },
        solo_chain.clone(),
    )
    .expect("solo starts");
    let solo = vec![Node {
        chain: solo_chain,
        ordering: Arc::new(solo),
        raft: None,
    }];
    let (raft, _members) = runtime.block_on(cluster(&root.path().join("raft"), &|_| {}));

    let mut group = c.benchmark_group("cluster/commit");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(PER_ITERATION as u64));
    let mut totals: HashMap<&str, (Vec<Duration>, Duration, usize)> = HashMap::new();
    for (name, nodes) in [("solo", &solo), ("raft3", &raft)] {
        let mut senders = Senders::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let transactions = senders.next(PER_ITERATION);
                    let (taken, latencies) = runtime.block_on(commit(nodes, transactions));
                    total += taken;
                    let entry = totals.entry(name).or_default();
                    entry.0.extend(latencies);
                    entry.1 += taken;
                    entry.2 += PER_ITERATION;
                }
                total
            })
        });
    }
    group.finish();
    for name in ["solo", "raft3"] {
        if let Some((latencies, taken, count)) = totals.get_mut(name)
            && !latencies.is_empty()
        {
            report(name, latencies, *taken, *count);
        }
    }
    for node in solo.iter().chain(&raft) {
        node.ordering.stop();
    }
    runtime.block_on(async {
        for node in &raft {
            if let Some((engine, _)) = &node.raft {
                engine.shutdown().await;
            }
        }
    });
}

async fn stop_node(node: Node) {
    if let Some((engine, server)) = node.raft {
        drop(server);
        engine.shutdown().await;
    }
}

fn failover_benches(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a runtime");
    let root = tempfile::tempdir().expect("a temp dir");
    let spec = spec();
    let (mut nodes, members) = runtime.block_on(cluster(root.path(), &|_| {}));
    let mut ids: Vec<u64> = members.keys().copied().collect();
    let mut senders = Senders::new();
    let mut group = c.benchmark_group("cluster/failover");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raft3", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                runtime.block_on(async {
                    let leader = wait_for_leader(&nodes, None).await;
                    let index = ids.iter().position(|id| *id == leader).expect("listed");
                    ids.remove(index);
                    let old = nodes.remove(index);
                    let killed = Instant::now();
                    stop_node(old).await;
                    // Until a transaction commits through a new leader.
                    commit(&nodes, senders.next(1)).await;
                    total += killed.elapsed();
                    let dir = root.path().join(format!("node-{leader}"));
                    nodes.push(start_member(leader, &dir, &spec, &members, &|_| {}).await);
                    ids.push(leader);
                    // Every node, the restarted one too, executes the next.
                    commit(&nodes, senders.next(nodes.len())).await;
                });
            }
            total
        })
    });
    group.finish();
    runtime.block_on(async {
        for node in nodes {
            stop_node(node).await;
        }
    });
}

fn catch_up_benches(c: &mut Criterion) {
    let runtime = Runtime::new().expect("a runtime");
    let root = tempfile::tempdir().expect("a temp dir");
    let spec = spec();
    // One transaction per block, so the lag is LAG_BLOCKS blocks.
    let one_per_block = |config: &mut RaftConfig| config.block_transactions_max = 1;
    let (mut nodes, members) = runtime.block_on(cluster(root.path(), &one_per_block));
    let mut ids: Vec<u64> = members.keys().copied().collect();
    let mut senders = Senders::new();
    let mut group = c.benchmark_group("cluster/catch_up");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raft3_10k_blocks", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                runtime.block_on(async {
                    // A follower stops; the others order LAG_BLOCKS blocks
                    // (not measured); it restarts and catches up (measured).
                    let leader = wait_for_leader(&nodes, None).await;
                    let index = ids.iter().position(|id| *id != leader).expect("a follower");
                    let lagging = ids.remove(index);
                    stop_node(nodes.remove(index)).await;
                    commit(&nodes, senders.next(LAG_BLOCKS)).await;
                    let target = nodes
                        .iter()
                        .map(|node| node.chain.tip().height)
                        .min()
                        .expect("nodes");
                    let started = Instant::now();
                    let dir = root.path().join(format!("node-{lagging}"));
                    let node = start_member(lagging, &dir, &spec, &members, &one_per_block).await;
                    let deadline = started + Duration::from_secs(300);
                    while node.chain.tip().height < target {
                        assert!(Instant::now() < deadline, "not caught up within 300 s");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    total += started.elapsed();
                    nodes.push(node);
                    ids.push(lagging);
                });
            }
            total
        })
    });
    group.finish();
    runtime.block_on(async {
        for node in nodes.drain(..) {
            stop_node(node).await;
        }
    });
}

criterion_group!(benches, commit_benches, failover_benches, catch_up_benches);
criterion_main!(benches);
