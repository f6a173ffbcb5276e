//! In-process Raft clusters: real chains on RocksDB, real openraft engines,
//! over the in-memory network with faults (drop, duplicate, delay, which
//! reorders, partitions). Load comes from clients that each send signed
//! transfers in nonce order and count a transaction acknowledged once its
//! receipt is seen on a node.
//!
//! After every scenario: one block per height on every node, linked to its
//! parent; the same block hash and state root at every common height; every
//! acknowledged transaction present on every node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use stele_chain::{Chain, ChainConfig, ChainSpec, Genesis, GenesisAccount};
use stele_consensus::raft::log_store::RaftDb;
use stele_consensus::raft::memory::{Faults, MemoryNetwork};
use stele_consensus::raft::types::NodeInfo;
use stele_consensus::raft::{RaftConfig, RaftEngine};
use stele_consensus::{Application, MembershipChange, Ordering};
use stele_host_api::Address;
use stele_types::{Action, ReceiptStatus, Transaction, TxHash, format_address};
use tokio::sync::watch;

const SIGNERS: u8 = 6;
const CHAIN_ID: &str = "raft-test";

fn signer(index: u8) -> SigningKey {
    SigningKey::from_bytes(&[index + 1; 32])
}

fn address(key: &SigningKey) -> Address {
    Address(key.verifying_key().to_bytes())
}

fn spec() -> ChainSpec {
    Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 1_000,
        gas_price_min: "1".into(),
        accounts: (0..SIGNERS)
            .map(|index| GenesisAccount {
                address: format_address(&address(&signer(index))),
                balance: "1000000000000000".into(),
            })
            .collect(),
        deploy_allow_list: None,
        consensus: None,
    }
    .parse()
    .unwrap()
}

/// Waits for `condition`, checking every few milliseconds, at most `limit`.
async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Node {
    chain: Arc<Chain>,
    engine: RaftEngine,
}

struct Cluster {
    net: MemoryNetwork,
    spec: ChainSpec,
    root: tempfile::TempDir,
    listed: BTreeSet<u64>,
    initial: BTreeMap<u64, NodeInfo>,
    tune: fn(&mut RaftConfig),
    nodes: Mutex<BTreeMap<u64, Node>>,
    acked: Mutex<Vec<(TxHash, Address, u64)>>,
}

fn node_addr(id: u64) -> String {
    format!("node-{id}")
}

impl Cluster {
    /// A cluster whose first `members` of `listed` ids form it at genesis.
    async fn start(
        listed: u64,
        members: u64,
        seed: u64,
        tune: fn(&mut RaftConfig),
    ) -> Arc<Cluster> {
        let cluster = Arc::new(Cluster {
            net: MemoryNetwork::new(seed),
            spec: spec(),
            root: tempfile::tempdir().unwrap(),
            listed: (1..=listed).collect(),
            initial: (1..=members)
                .map(|id| {
                    (
                        id,
                        NodeInfo {
                            addr: node_addr(id),
                        },
                    )
                })
                .collect(),
            tune,
            nodes: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(Vec::new()),
        });
        for id in 1..=members {
            cluster.boot(id).await;
        }
        cluster
    }

    fn raft_dir(&self, id: u64) -> std::path::PathBuf {
        self.root.path().join(node_addr(id)).join("raft")
    }

    async fn boot(&self, id: u64) {
        let dir = self.root.path().join(node_addr(id));
        let chain = Chain::open(ChainConfig::new(dir.join("chain")), self.spec.clone()).unwrap();
        let mut config = RaftConfig::new(id, self.raft_dir(id));
        config.initial_members = self.initial.clone();
        config.listed = self.listed.clone();
        config.proposer = Address([id as u8; 32]);
        config.block_interval = Duration::from_millis(20);
        config.heartbeat_interval = Duration::from_millis(50);
        config.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
        config.proposal_timeout = Duration::from_secs(2);
        (self.tune)(&mut config);
        let engine = RaftEngine::start(config, chain.clone(), self.net.transport(id))
            .await
            .unwrap();
        self.net.register(id, engine.handler());
        self.nodes
            .lock()
            .unwrap()
            .insert(id, Node { chain, engine });
    }

    /// Stops a node as a crash would (nothing more is written), and waits
    /// until nothing holds its databases open.
    async fn crash(&self, id: u64) {
        let node = self.nodes.lock().unwrap().remove(&id).unwrap();
        self.net.unregister(id);
        node.engine.shutdown().await;
        drop(node.engine);
        let chain = node.chain;
        wait_for(
            &format!("node {id} to let go of its chain"),
            Duration::from_secs(10),
            || Arc::strong_count(&chain) == 1,
        )
        .await;
    }

    fn node(&self, id: u64) -> Option<(Arc<Chain>, RaftEngine)> {
        let nodes = self.nodes.lock().unwrap();
        nodes
            .get(&id)
            .map(|node| (node.chain.clone(), node.engine.clone()))
    }

    fn running(&self) -> Vec<u64> {
        self.nodes.lock().unwrap().keys().copied().collect()
    }

    fn tip(&self, id: u64) -> u64 {
        self.node(id).unwrap().0.tip().height
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// The leader every node in `among` agrees on, waiting for one.
    async fn leader(&self, among: &[u64]) -> u64 {
        let mut leader = None;
        wait_for(
            &format!("a leader among {among:?}"),
            Duration::from_secs(15),
            || {
                let seen: BTreeSet<Option<u64>> = among
                    .iter()
                    .map(|id| {
                        let (_, engine) = self.node(*id).unwrap();
                        let status = engine.status();
                        status.leader.filter(|leader| among.contains(leader))
                    })
                    .collect();
                leader = match seen.into_iter().collect::<Vec<_>>()[..] {
                    [Some(id)] => Some(id),
                    _ => None,
                };
                leader.is_some_and(|id| self.node(id).unwrap().1.status().role == "leader")
            },
        )
        .await;
        leader.unwrap()
    }

    /// Waits until `acked` has grown by `more`.
    async fn more_acked(&self, more: usize, limit: Duration) {
        let target = self.acked() + more;
        wait_for(
            &format!("{more} more acknowledged transactions"),
            limit,
            || self.acked() >= target,
        )
        .await;
    }

    /// Waits until every running node has executed what `reference` has.
    async fn converge(&self) {
        let running = self.running();
        let top = running.iter().map(|id| self.tip(*id)).max().unwrap();
        for id in &running {
            let (chain, _) = self.node(*id).unwrap();
            let reached = tokio::task::spawn_blocking(move || {
                chain.wait_executed(top, Duration::from_secs(30))
            })
            .await
            .unwrap();
            assert!(reached.is_some(), "node {id} did not reach height {top}");
        }
    }

    /// The checks every scenario ends with.
    fn check(&self) {
        let nodes = self.nodes.lock().unwrap();
        let mut blocks: BTreeMap<u64, BTreeMap<u64, ([u8; 32], [u8; 32])>> = BTreeMap::new();
        for (id, node) in nodes.iter() {
            assert!(
                node.chain.halted().is_none(),
                "node {id} halted: {:?}",
                node.chain.halted()
            );
            let store = node.chain.store();
            let tip = node.chain.tip().height;
            let mut previous: Option<[u8; 32]> = None;
            for height in 1..=tip {
                match store.block(height).unwrap() {
                    Some(block) => {
                        assert_eq!(block.header.height, height);
                        if let Some(parent) = previous {
                            assert_eq!(
                                block.header.parent_hash, parent,
                                "node {id} height {height}: parent link"
                            );
                        }
                        let hash = block.header.hash();
                        previous = Some(hash);
                        blocks
                            .entry(height)
                            .or_default()
                            .insert(*id, (hash, block.header.state_root));
                    }
                    // Below an installed snapshot only: no gap once blocks start.
                    None => assert!(previous.is_none(), "node {id} misses block {height}"),
                }
            }
        }
        for (height, by_node) in &blocks {
            let first = by_node.values().next().unwrap();
            for (id, seen) in by_node {
                assert_eq!(
                    seen, first,
                    "node {id} differs at height {height}: {by_node:?}"
                );
            }
        }
        let acked = self.acked.lock().unwrap();
        assert!(!acked.is_empty(), "no transaction was acknowledged");
        for (id, node) in nodes.iter() {
            let history = node.chain.store().block(1).unwrap().is_some();
            for (hash, signer, nonce) in acked.iter() {
                match node.chain.store().locate(hash).unwrap() {
                    Some(location) => {
                        let receipt = node.chain.store().receipt(location).unwrap().unwrap();
                        assert_eq!(
                            receipt.status,
                            ReceiptStatus::Success,
                            "node {id}: {hash:?}"
                        );
                    }
                    None => {
                        // A node that caught up by snapshot has the state only.
                        assert!(!history, "node {id} lost acknowledged transaction {hash:?}");
                        assert!(
                            node.chain.nonce(signer).unwrap() > *nonce,
                            "node {id}: nonce of {hash:?}"
                        );
                    }
                }
            }
        }
    }
}

/// Load: one client per signer, nonces in order, each waiting for its
/// receipt on any node before the next (or sending it again elsewhere).
struct Load {
    stop: watch::Sender<bool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &Arc<Cluster>) -> Load {
        let (stop, _) = watch::channel(false);
        let turn = Arc::new(AtomicUsize::new(0));
        let clients = (0..SIGNERS)
            .map(|index| {
                let cluster = cluster.clone();
                let stop = stop.subscribe();
                let turn = turn.clone();
                tokio::spawn(client(cluster, signer(index), stop, turn))
            })
            .collect();
        Load { stop, clients }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for client in self.clients {
            client.await.unwrap();
        }
    }
}

async fn client(
    cluster: Arc<Cluster>,
    key: SigningKey,
    stop: watch::Receiver<bool>,
    turn: Arc<AtomicUsize>,
) {
    let me = address(&key);
    let mut nonce = 0;
    while !*stop.borrow() {
        let tx = Transaction {
            chain_id: CHAIN_ID.into(),
            signer: me,
            nonce,
            gas_limit: 1_000_000,
            gas_price: 1,
            actions: vec![Action::Transfer {
                to: Address([0xee; 32]),
                amount: 1,
            }],
        }
        .sign(&key);
        let hash = tx.hash();
        let running = cluster.running();
        if running.is_empty() {
            return;
        }
        let target = running[turn.fetch_add(1, AtomicOrdering::Relaxed) % running.len()];
        let Some((_, engine)) = cluster.node(target) else {
            continue;
        };
        let submitted = engine.submit(tx).await;
        drop(engine);
        if submitted.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Seen on any node, within a while; otherwise send it again.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !*stop.borrow() {
            let seen = cluster.running().into_iter().any(|id| {
                cluster
                    .node(id)
                    .is_some_and(|(chain, _)| chain.store().locate(&hash).ok().flatten().is_some())
            });
            if seen {
                cluster.acked.lock().unwrap().push((hash, me, nonce));
                nonce += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn quick(_: &mut RaftConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_when_the_leader_crashes_and_the_old_one_catches_up() {
    let cluster = Cluster::start(3, 3, 1, quick).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    let load = Load::start(&cluster);
    cluster.more_acked(40, Duration::from_secs(20)).await;

    cluster.crash(leader).await;
    let survivors: Vec<u64> = cluster.running();
    let before = survivors.iter().map(|id| cluster.tip(*id)).max().unwrap();
    let new_leader = cluster.leader(&survivors).await;
    assert_ne!(new_leader, leader);
    cluster.more_acked(40, Duration::from_secs(20)).await;
    assert!(
        cluster.tip(new_leader) > before,
        "the new leader committed nothing"
    );

    cluster.boot(leader).await;
    cluster.more_acked(30, Duration::from_secs(20)).await;
    load.stop().await;
    cluster.converge().await;
    cluster.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_isolated_in_a_minority_commits_nothing() {
    let cluster = Cluster::start(3, 3, 2, quick).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    let load = Load::start(&cluster);
    cluster.more_acked(30, Duration::from_secs(20)).await;

    let others: Vec<u64> = cluster
        .running()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    cluster.net.isolate(leader, &others);
    let new_leader = cluster.leader(&others).await;
    assert_ne!(new_leader, leader);
    // Whatever was in flight at the cut has settled by the election.
    let frozen = cluster.tip(leader);
    cluster.more_acked(40, Duration::from_secs(30)).await;
    assert_eq!(
        cluster.tip(leader),
        frozen,
        "the isolated leader executed a block"
    );
    assert!(cluster.tip(new_leader) > frozen);

    cluster.net.heal();
    cluster.more_acked(30, Duration::from_secs(20)).await;
    load.stop().await;
    cluster.converge().await;
    cluster.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_on_a_lossy_network() {
    let cluster = Cluster::start(5, 5, 3, quick).await;
    cluster.net.set_faults(Faults {
        drop_per_mille: 20,
        duplicate_per_mille: 20,
        delay_max: Duration::from_millis(5),
    });
    let leader = cluster.leader(&[1, 2, 3, 4, 5]).await;
    let load = Load::start(&cluster);
    cluster.more_acked(30, Duration::from_secs(30)).await;

    let partner = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let minority = [leader, partner];
    let majority: Vec<u64> = cluster
        .running()
        .into_iter()
        .filter(|id| !minority.contains(id))
        .collect();
    cluster.net.partition(&[&minority, &majority]);
    let new_leader = cluster.leader(&majority).await;
    let frozen: Vec<u64> = minority.iter().map(|id| cluster.tip(*id)).collect();
    cluster.more_acked(40, Duration::from_secs(30)).await;
    let after: Vec<u64> = minority.iter().map(|id| cluster.tip(*id)).collect();
    assert_eq!(after, frozen, "the minority executed a block");
    assert!(cluster.tip(new_leader) > *frozen.iter().max().unwrap());

    cluster.net.heal();
    cluster.more_acked(30, Duration::from_secs(30)).await;
    load.stop().await;
    cluster.net.set_faults(Faults::default());
    cluster.converge().await;
    cluster.check();
    let (delivered, dropped) = cluster.net.counts();
    assert!(
        dropped > 0 && delivered > dropped,
        "faults were not exercised: {delivered} delivered, {dropped} dropped"
    );
}

fn compacting(config: &mut RaftConfig) {
    config.snapshot_every_entries = 40;
    config.entries_kept_after_snapshot = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_under_load_and_a_new_node_catches_up_by_snapshot() {
    let cluster = Cluster::start(4, 3, 4, compacting).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    let load = Load::start(&cluster);
    // Enough entries that the log has been compacted past its start.
    let (_, engine) = cluster.node(leader).unwrap();
    wait_for(
        "the leader to compact its log",
        Duration::from_secs(60),
        || {
            engine
                .raft()
                .metrics()
                .borrow()
                .purged
                .is_some_and(|purged| purged.index > 10)
        },
    )
    .await;
    drop(engine);

    cluster.boot(4).await;
    // Asked of a follower: it forwards to the leader.
    let follower = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader && *id != 4)
        .unwrap();
    let (_, engine) = cluster.node(follower).unwrap();
    engine
        .change(MembershipChange::AddLearner {
            node_id: 4,
            addr: node_addr(4),
        })
        .await
        .unwrap();
    let refused = engine
        .change(MembershipChange::Promote { node_id: 9 })
        .await;
    assert!(refused.unwrap_err().contains("not listed in genesis"));
    let target = cluster.tip(leader);
    let (learner, _) = cluster.node(4).unwrap();
    let reached =
        tokio::task::spawn_blocking(move || learner.wait_executed(target, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(reached.is_some(), "the learner did not catch up");
    let (learner, learner_engine) = cluster.node(4).unwrap();
    assert!(
        learner.store().block(1).unwrap().is_none(),
        "the learner replayed the log instead of installing a snapshot"
    );
    assert_eq!(learner_engine.status().role, "learner");
    drop((learner, learner_engine));

    engine
        .change(MembershipChange::Promote { node_id: 4 })
        .await
        .unwrap();
    engine
        .change(MembershipChange::Remove { node_id: leader })
        .await
        .unwrap();
    drop(engine);
    let remaining: Vec<u64> = cluster
        .running()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let status = cluster.node(4).unwrap().1.status();
    assert!(
        status.members.contains(&4) && !status.members.contains(&leader),
        "{status:?}"
    );
    cluster.crash(leader).await;
    let new_leader = cluster.leader(&remaining).await;
    assert_ne!(new_leader, leader);
    cluster.more_acked(40, Duration::from_secs(30)).await;
    load.stop().await;
    cluster.converge().await;
    cluster.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_the_tail_of_its_log_recovers() {
    let cluster = Cluster::start(3, 3, 5, quick).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    let load = Load::start(&cluster);
    cluster.more_acked(40, Duration::from_secs(20)).await;

    let follower = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    cluster.crash(follower).await;
    {
        let db = RaftDb::open(&cluster.raft_dir(follower).join("log")).unwrap();
        let last = db.last_index().unwrap().unwrap();
        // Its chain is now ahead of its log: neither skipped nor re-applied.
        db.cut_log_from(last.saturating_sub(8).max(1)).unwrap();
        assert!(db.last_index().unwrap() < Some(last));
    }
    cluster.more_acked(20, Duration::from_secs(20)).await;
    cluster.boot(follower).await;
    cluster.more_acked(30, Duration::from_secs(20)).await;
    load.stop().await;
    cluster.converge().await;
    cluster.check();
}
