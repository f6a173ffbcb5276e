//! A real three-process Raft cluster written by `stele cluster init`, each
//! peer link through a TCP fault proxy in this test: SIGKILL of the leader
//! under load, its restart and catch-up, a fourth node joining as a learner
//! after the log was compacted (so by snapshot) and being promoted, and
//! `stele bench` through a follower. After it all: every node has the same
//! block hash and state root at every height, and every acknowledged
//! transaction (sent, and its receipt seen) executed at the same height on
//! every node.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{STELE, repo_root};
use ed25519_dalek::SigningKey;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use stele_host_api::Address;
use stele_rpc::SteleApiClient;
use stele_rpc::types::{ConsensusStatus, Wait};
use stele_types::{Action, Transaction, encode_transaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of one node's peer port: every byte is delayed,
/// and the link can be cut (open connections dropped, new ones refused)
/// and healed.
struct Proxy {
    addr: String,
    cut: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap().to_string(),
            cut: Arc::new(AtomicBool::new(false)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let (cut, delay_ms, open) = (
            proxy.cut.clone(),
            proxy.delay_ms.clone(),
            proxy.open.clone(),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let mut open = open.lock().unwrap();
                for (read, write) in [
                    (
                        Box::new(in_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(out_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(out_read), Box::new(in_write)),
                ] {
                    let delay_ms = delay_ms.clone();
                    open.push(tokio::spawn(pipe(read, write, delay_ms)).abort_handle());
                }
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn pipe(
    mut read: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    mut write: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    delay_ms: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let delay = delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if write.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// One `stele node start --config` process.
struct Member {
    id: u64,
    config: PathBuf,
    rpc: String,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Member {
    fn spawn(&mut self) {
        self.starts += 1;
        self.log = self
            .config
            .with_file_name(format!("stele-{}.log", self.starts));
        let child = Command::new(STELE)
            .args(["node", "start", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .expect("the stele binary starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self) -> HttpClient {
        HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(&self.rpc)
            .unwrap()
    }

    fn check_alive(&mut self) {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait().unwrap()
        {
            panic!(
                "node {} exited with {status}:\n{}",
                self.id,
                self.log_text()
            );
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cli(args: &[&str]) -> serde_json::Value {
    let output = Command::new(STELE)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stele {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn cli_fails(args: &[&str]) -> String {
    let output = Command::new(STELE)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "stele {args:?} should have failed"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn load_key(path: &Path) -> SigningKey {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let secret: [u8; 32] = hex::decode(file["secret_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    SigningKey::from_bytes(&secret)
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(rpc: &str) -> Option<ConsensusStatus> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(2))
        .build(rpc)
        .ok()?
        .consensus_status()
        .await
        .ok()
}

/// The leader every member at `rpcs` agrees on (other than `not`).
async fn agreed_leader(rpcs: &[String], not: Option<u64>) -> u64 {
    eventually(
        "a leader all members agree on",
        Duration::from_secs(30),
        || async {
            let mut leaders = Vec::new();
            for rpc in rpcs {
                leaders.push(status(rpc).await?.leader?);
            }
            (leaders.windows(2).all(|pair| pair[0] == pair[1]) && Some(leaders[0]) != not)
                .then(|| leaders[0])
        },
    )
    .await
}

async fn height(rpc: &str) -> Option<u64> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(2))
        .build(rpc)
        .ok()?
        .chain_get_info()
        .await
        .ok()
        .map(|info| info.height)
}

/// An acknowledged transaction: its hash, and the height its receipt gave.
type Acked = Arc<Mutex<Vec<(String, u64)>>>;

/// Sends transfers from `key` one nonce at a time, each to the next live
/// member (round robin), waiting for its receipt; a transaction whose send
/// failed is sent again (same nonce, same hash) elsewhere until it is
/// acknowledged or found executed.
async fn sender(
    chain_id: String,
    key: SigningKey,
    rpcs: Vec<String>,
    offset: usize,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let clients: Vec<HttpClient> = rpcs
        .iter()
        .map(|rpc| {
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(5))
                .build(rpc)
                .unwrap()
        })
        .collect();
    let mut turn = offset;
    let mut nonce = 0;
    while !stop.load(Ordering::SeqCst) {
        let tx = Transaction {
            chain_id: chain_id.clone(),
            signer: Address(key.verifying_key().to_bytes()),
            nonce,
            gas_limit: 1_000_000,
            gas_price: 0,
            actions: vec![Action::Transfer {
                to: Address([7; 32]),
                amount: 1,
            }],
        }
        .sign(&key);
        let encoded = hex::encode(encode_transaction(&tx));
        let hash = hex::encode(tx.hash());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "transaction {hash} (nonce {nonce}) never executed"
            );
            turn += 1;
            let client = &clients[turn % clients.len()];
            match client.tx_send(encoded.clone(), Some(Wait::Executed)).await {
                Ok(status) if status.receipt.is_some() => {
                    let receipt = status.receipt.unwrap();
                    assert_eq!(receipt.status, "success", "{receipt:?}");
                    acked.lock().unwrap().push((hash.clone(), receipt.height));
                    break;
                }
                _ => {
                    // Executed already (an earlier send got through)?
                    if let Ok(status) = client.tx_get(hash.clone()).await
                        && status.receipt.is_some()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        nonce += 1;
    }
}

async fn acked_count(acked: &Acked) -> usize {
    acked.lock().unwrap().len()
}

#[test]
fn three_processes_survive_sigkill_of_the_leader_and_a_learner_joins_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cluster");
    let init = cli(&[
        "cluster",
        "init",
        "--nodes",
        "3",
        "--spare",
        "1",
        "--dir",
        root.to_str().unwrap(),
        "--block-interval-ms",
        "20",
        "--snapshot-every-entries",
        "40",
    ]);
    assert_eq!(init["engine"], "raft");
    let nodes = init["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    let client_dir = PathBuf::from(init["client_data_dir"].as_str().unwrap());
    let chain_id = init["chain_id"].as_str().unwrap().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A proxy in front of each node's peer port; genesis lists the proxies,
    // so every peer link goes through one.
    let mut members = Vec::new();
    let mut proxies = Vec::new();
    for node in nodes {
        let config = PathBuf::from(node["config"].as_str().unwrap());
        let text: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let proxy = runtime.block_on(Proxy::start(text["peer_addr"].as_str().unwrap().into()));
        proxy.delay_ms.store(1, Ordering::SeqCst);
        proxies.push(proxy);
        members.push(Member {
            id: node["id"].as_u64().unwrap(),
            config,
            rpc: node["rpc"].as_str().unwrap().into(),
            log: PathBuf::new(),
            child: None,
            starts: 0,
        });
    }
    for member in &members {
        let path = member.config.with_file_name("genesis.json");
        let mut genesis: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (node, proxy) in genesis["consensus"]["nodes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .zip(&proxies)
        {
            node["addr"] = proxy.addr.clone().into();
        }
        std::fs::write(&path, serde_json::to_string_pretty(&genesis).unwrap()).unwrap();
    }
    let configs: Vec<String> = members
        .iter()
        .map(|member| member.config.to_str().unwrap().to_string())
        .collect();
    let config = |index: usize| configs[index].clone();

    for member in &mut members[..3] {
        member.spawn();
    }
    let rpcs: Vec<String> = members[..3]
        .iter()
        .map(|member| member.rpc.clone())
        .collect();
    let leader = runtime.block_on(agreed_leader(&rpcs, None));
    let info = runtime
        .block_on(members[0].client().chain_get_info())
        .unwrap();
    assert_eq!(info.engine, "raft");

    // Operator methods: on the admin port with the token only, and not on
    // the public port.
    let status = cli(&["cluster", "status", "--config", &config(1)]);
    assert_eq!(status["members"], serde_json::json!([1, 2, 3]));
    let token_path = members[1].config.with_file_name("admin.token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    std::fs::write(&token_path, "0".repeat(64)).unwrap();
    let refused = cli_fails(&["cluster", "add", "4", "--config", &config(1)]);
    assert!(refused.contains("admin token is wrong"), "{refused}");
    std::fs::write(&token_path, token).unwrap();
    let public: Result<serde_json::Value, _> = runtime.block_on(async {
        use jsonrpsee::core::client::ClientT;
        members[1]
            .client()
            .request(
                "admin_status",
                jsonrpsee::rpc_params![token_path.display().to_string()],
            )
            .await
    });
    assert!(
        public.is_err(),
        "the public port serves admin_status: {public:?}"
    );

    // Fund four senders from the dev key, then load from all four.
    let dev = load_key(&client_dir.join("keys/dev.json"));
    let senders: Vec<SigningKey> = (1..=4u8)
        .map(|seed| SigningKey::from_bytes(&[seed; 32]))
        .collect();
    runtime.block_on(async {
        let client = members[0].client();
        for (nonce, sender) in senders.iter().enumerate() {
            let tx = Transaction {
                chain_id: chain_id.clone(),
                signer: Address(dev.verifying_key().to_bytes()),
                nonce: nonce as u64,
                gas_limit: 1_000_000,
                gas_price: 0,
                actions: vec![Action::Transfer {
                    to: Address(sender.verifying_key().to_bytes()),
                    amount: 1_000_000_000,
                }],
            }
            .sign(&dev);
            let status = client
                .tx_send(hex::encode(encode_transaction(&tx)), Some(Wait::Executed))
                .await
                .unwrap();
            assert_eq!(status.receipt.unwrap().status, "success");
        }
    });
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(index, key)| {
            runtime.spawn(sender(
                chain_id.clone(),
                key.clone(),
                rpcs.clone(),
                index,
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    runtime.block_on(eventually(
        "100 acknowledged transfers",
        Duration::from_secs(60),
        || async { (acked_count(&acked).await >= 100).then_some(()) },
    ));

    // SIGKILL the leader under load: a new leader commits again.
    let old = members
        .iter()
        .position(|member| member.id == leader)
        .unwrap();
    members[old].kill();
    let survivors: Vec<String> = rpcs
        .iter()
        .filter(|rpc| **rpc != members[old].rpc)
        .cloned()
        .collect();
    let killed_at = acked_count_now(&acked);
    let new_leader = runtime.block_on(agreed_leader(&survivors, Some(leader)));
    assert_ne!(new_leader, leader);
    runtime.block_on(eventually(
        "commits after the kill",
        Duration::from_secs(60),
        || async { (acked_count(&acked).await >= killed_at + 100).then_some(()) },
    ));

    // The old leader restarts and catches up; meanwhile a cut of a
    // follower's link heals.
    members[old].spawn();
    let follower = (0..3)
        .find(|&index| index != old && members[index].id != new_leader)
        .unwrap();
    proxies[follower].cut();
    let during_cut = acked_count_now(&acked);
    runtime.block_on(eventually(
        "commits with a follower cut off",
        Duration::from_secs(60),
        || async { (acked_count(&acked).await >= during_cut + 50).then_some(()) },
    ));
    proxies[follower].heal();
    let target = runtime
        .block_on(height(&members[(old + 1) % 3].rpc))
        .unwrap();
    for index in [old, follower] {
        let rpc = members[index].rpc.clone();
        runtime.block_on(eventually(
            "a restarted or cut-off node catching up",
            Duration::from_secs(60),
            || {
                let rpc = rpc.clone();
                async move { (height(&rpc).await? >= target).then_some(()) }
            },
        ));
        members[index].check_alive();
    }

    // The log has been compacted (snapshots were built): node 4 joins as a
    // learner, catches up by snapshot, and is promoted.
    assert!(
        members[..3]
            .iter()
            .any(|member| member.log_text().contains("built a snapshot")),
        "no member built a snapshot"
    );
    members[3].spawn();
    let added = cli(&["cluster", "add", "4", "--config", &config(old)]);
    assert_eq!(added["node_id"], members[old].id, "{added}");
    let leader_rpc = members[new_index(&members, new_leader)].rpc.clone();
    membership(&runtime, &leader_rpc, &[1, 2, 3], &[4]);
    let target = runtime
        .block_on(height(&members[new_index(&members, new_leader)].rpc))
        .unwrap();
    let learner = members[3].rpc.clone();
    runtime.block_on(eventually(
        "the learner catching up",
        Duration::from_secs(60),
        || {
            let learner = learner.clone();
            async move { (height(&learner).await? >= target).then_some(()) }
        },
    ));
    assert!(
        members[3].log_text().contains("installed a snapshot"),
        "the learner did not catch up by snapshot:\n{}",
        members[3].log_text()
    );
    cli(&["cluster", "promote", "4", "--config", &config(follower)]);
    membership(&runtime, &learner, &[1, 2, 3, 4], &[]);

    // `stele bench` through a follower, with the client data dir.
    let all: Vec<String> = members.iter().map(|member| member.rpc.clone()).collect();
    let leader_now = runtime.block_on(agreed_leader(&all, None));
    let follower_rpc = members
        .iter()
        .find(|member| member.id != leader_now)
        .unwrap()
        .rpc
        .clone();
    let bench = Command::new(STELE)
        .args(["--json", "bench", "--rpc", &follower_rpc])
        .args([
            "--accounts",
            "20",
            "--transactions",
            "2000",
            "--timeout-secs",
            "60",
        ])
        .env("STELE_DATA_DIR", &client_dir)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        bench.status.success(),
        "stele bench failed:\n{}\n{}",
        String::from_utf8_lossy(&bench.stdout),
        String::from_utf8_lossy(&bench.stderr)
    );
    let bench: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(bench["committed"], 2000, "{bench}");

    // Stop the load; every node reaches the same height, with the same
    // block at every height, and every acknowledged transaction executed
    // at the height its receipt gave.
    stop.store(true, Ordering::SeqCst);
    for task in load {
        runtime.block_on(task).unwrap();
    }
    for member in &mut members {
        member.check_alive();
    }
    let tip = runtime.block_on(eventually(
        "every node at one height",
        Duration::from_secs(60),
        || {
            let all = all.clone();
            async move {
                let mut heights = Vec::new();
                for rpc in &all {
                    heights.push(height(rpc).await?);
                }
                heights
                    .windows(2)
                    .all(|pair| pair[0] == pair[1])
                    .then(|| heights[0])
            }
        },
    ));
    runtime.block_on(async {
        let clients: Vec<HttpClient> = members.iter().map(Member::client).collect();
        // Node 4 started from a snapshot: it holds the blocks from there on
        // (state sync keeps no older history); the others hold them all.
        let mut by_height = BTreeMap::new();
        let mut first_held = vec![None; clients.len()];
        for height in 1..=tip {
            let first = clients[0].chain_get_block(Some(height)).await.unwrap();
            for (index, client) in clients.iter().enumerate().skip(1) {
                let block = match client.chain_get_block(Some(height)).await {
                    Ok(block) => block,
                    Err(error) => {
                        assert!(
                            index == 3 && first_held[index].is_none(),
                            "node {} lacks block {height}: {error}",
                            members[index].id
                        );
                        continue;
                    }
                };
                first_held[index].get_or_insert(height);
                assert_eq!(
                    (&block.hash, &block.state_root),
                    (&first.hash, &first.state_root),
                    "node {} differs at height {height}",
                    members[index].id
                );
            }
            by_height.insert(height, first.transactions);
        }
        let learner_from = first_held[3].expect("the learner holds the latest blocks");
        assert!(
            learner_from > 1,
            "the learner replayed the whole log instead of a snapshot"
        );
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 250, "only {} acknowledged", acked.len());
        for (hash, height) in &acked {
            assert!(
                by_height[height].contains(hash),
                "acknowledged {hash} is not in block {height}"
            );
        }
        for (index, client) in clients.iter().enumerate() {
            for (hash, height) in acked.iter().step_by(10) {
                // The snapshot's own block comes without its receipts.
                if index == 3 && *height <= learner_from {
                    continue;
                }
                let status = client.tx_get(hash.clone()).await.unwrap();
                assert_eq!(
                    status.receipt.map(|receipt| receipt.height),
                    Some(*height),
                    "acknowledged {hash} on node {} (the learner holds blocks from {learner_from})",
                    members[index].id
                );
            }
        }
    });
}

fn acked_count_now(acked: &Acked) -> usize {
    acked.lock().unwrap().len()
}

fn new_index(members: &[Member], id: u64) -> usize {
    members.iter().position(|member| member.id == id).unwrap()
}

/// Waits until the node at `rpc` sees these voters and learners.
fn membership(runtime: &tokio::runtime::Runtime, rpc: &str, members: &[u64], learners: &[u64]) {
    runtime.block_on(eventually(
        "a membership change",
        Duration::from_secs(30),
        || async {
            let status = status(rpc).await?;
            (status.members == members && status.learners == learners).then_some(())
        },
    ));
}
