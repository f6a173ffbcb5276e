//! `stele cluster init|status|add|promote|remove`, and running one member
//! of a cluster (`stele node start --config FILE`).
//!
//! `cluster init` writes one directory per node under `--dir`:
//! `node-<id>/{genesis.json, config.json, admin.token, keys/node.json}`, the
//! same genesis in each (listing every node's id, public key and peer
//! address), and `client/keys/dev.json`, the funded key for clients.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde::{Deserialize, Serialize};
use stele_chain::{Chain, ChainConfig, Genesis, GenesisAccount, GenesisConsensus, GenesisNode};
use stele_consensus::raft::tcp::{PeerKeys, TcpServer, TcpTransport};
use stele_consensus::raft::types::NodeInfo;
use stele_consensus::raft::{RaftConfig, RaftEngine};
use stele_consensus::{ClusterAdmin, Ordering};
use stele_rpc::admin::ADMIN_TOKEN_BYTES_MIN;
use stele_rpc::types::ConsensusStatus;
use stele_rpc::{AdminApiClient, AdminChange, RpcConfig};
use stele_types::format_address;

use crate::keys;
use crate::node::{DEV_BALANCE, shutdown_signal, tracing_init};

/// The name of a member's config file in its directory.
pub const CONFIG_FILE: &str = "config.json";

/// The name of the admin token file in a member's data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Most nodes `cluster init` writes (members and spares).
pub const CLUSTER_NODES_MAX: usize = 16;

/// One member's configuration (`config.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Its data directory (genesis, keys, admin token, chain and log);
    /// relative paths are taken from the config file's directory.
    pub data_dir: PathBuf,
    /// Its id in genesis.
    pub node_id: u64,
    /// Public JSON-RPC address (HTTP and WebSocket).
    pub rpc_addr: SocketAddr,
    /// Where it listens for peers.
    pub peer_addr: SocketAddr,
    /// Where the operator API listens (keep it on loopback).
    pub admin_addr: SocketAddr,
    /// Time between blocks when transactions wait, in milliseconds.
    #[serde(default = "default_block_interval_ms")]
    pub block_interval_ms: u64,
    /// A snapshot is built after this many log entries (then the log is
    /// compacted).
    #[serde(default = "default_snapshot_every_entries")]
    pub snapshot_every_entries: u64,
    /// Log entries kept below the last snapshot.
    #[serde(default = "default_entries_kept_after_snapshot")]
    pub entries_kept_after_snapshot: u64,
}

fn default_block_interval_ms() -> u64 {
    250
}

fn default_snapshot_every_entries() -> u64 {
    10_000
}

fn default_entries_kept_after_snapshot() -> u64 {
    1_000
}

impl NodeConfig {
    /// Reads `path`, resolving a relative data directory against it.
    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: NodeConfig =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if config.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            config.data_dir = base.join(&config.data_dir);
        }
        if config.block_interval_ms == 0 || config.block_interval_ms > 60_000 {
            bail!(
                "{}: block_interval_ms is {}, must be 1 to 60000",
                path.display(),
                config.block_interval_ms
            );
        }
        if config.snapshot_every_entries == 0 {
            bail!("{}: snapshot_every_entries must be above 0", path.display());
        }
        Ok(config)
    }

    fn token(&self) -> anyhow::Result<String> {
        let path = self.data_dir.join(ADMIN_TOKEN_FILE);
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the admin token {}", path.display()))?;
        Ok(token.trim().to_string())
    }
}

/// Options of `stele cluster init`.
pub struct InitOptions {
    pub nodes: usize,
    pub spare: usize,
    pub dir: PathBuf,
    pub engine: String,
    pub chain_id: String,
    pub block_interval_ms: u64,
    pub snapshot_every_entries: u64,
}

/// Free ports on 127.0.0.1, all distinct (held together until chosen).
fn free_ports(count: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().context("reading a bound port"))
        .collect()
}

/// Writes a cluster's directories; prints where they are.
pub fn init(options: InitOptions, json: bool) -> anyhow::Result<()> {
    if options.engine != "raft" {
        bail!(
            "--engine is `{}`; this build runs `raft` clusters",
            options.engine
        );
    }
    let total = options.nodes + options.spare;
    if options.nodes == 0 || total > CLUSTER_NODES_MAX {
        bail!(
            "--nodes {} --spare {}: need at least 1 member and at most {CLUSTER_NODES_MAX} nodes",
            options.nodes,
            options.spare
        );
    }
    if options.dir.exists()
        && std::fs::read_dir(&options.dir)
            .with_context(|| format!("reading {}", options.dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; choose a new directory",
            options.dir.display()
        );
    }
    std::fs::create_dir_all(&options.dir)
        .with_context(|| format!("creating {}", options.dir.display()))?;
    let dir = options
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", options.dir.display()))?;

    let ports = free_ports(3 * total)?;
    let client_dir = dir.join("client");
    let dev = keys::generate(&client_dir, "dev")?;
    let mut listed = Vec::new();
    let mut configs = Vec::new();
    for index in 0..total {
        let id = index as u64 + 1;
        let node_dir = dir.join(format!("node-{id}"));
        let key = keys::generate(&node_dir, "node")?;
        let mut token = [0u8; 32];
        getrandom::fill(&mut token).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        keys::write_private(
            &node_dir.join(ADMIN_TOKEN_FILE),
            hex::encode(token).as_bytes(),
        )?;
        let config = NodeConfig {
            data_dir: PathBuf::from("."),
            node_id: id,
            rpc_addr: ports[3 * index],
            peer_addr: ports[3 * index + 1],
            admin_addr: ports[3 * index + 2],
            block_interval_ms: options.block_interval_ms,
            snapshot_every_entries: options.snapshot_every_entries,
            entries_kept_after_snapshot: default_entries_kept_after_snapshot()
                .min(options.snapshot_every_entries),
        };
        listed.push(GenesisNode {
            id,
            key: hex::encode(key.verifying_key().to_bytes()),
            addr: config.peer_addr.to_string(),
            member: index < options.nodes,
        });
        configs.push((node_dir, config));
    }
    let genesis = Genesis {
        chain_id: options.chain_id.clone(),
        genesis_time_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0),
        gas_price_min: "0".into(),
        accounts: vec![GenesisAccount {
            address: format_address(&keys::address_of(&dev)),
            balance: DEV_BALANCE.into(),
        }],
        deploy_allow_list: None,
        consensus: Some(GenesisConsensus {
            engine: options.engine.clone(),
            nodes: listed.clone(),
        }),
    };
    genesis.parse()?;
    let genesis_text = serde_json::to_string_pretty(&genesis)?;
    let mut nodes = Vec::new();
    for ((node_dir, config), node) in configs.iter().zip(&listed) {
        std::fs::write(node_dir.join("genesis.json"), &genesis_text)
            .with_context(|| format!("writing {}", node_dir.join("genesis.json").display()))?;
        let path = node_dir.join(CONFIG_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(config)?)
            .with_context(|| format!("writing {}", path.display()))?;
        nodes.push(serde_json::json!({
            "id": config.node_id,
            "config": path,
            "rpc": format!("http://{}", config.rpc_addr),
            "member": node.member,
        }));
    }
    let value = serde_json::json!({
        "engine": options.engine,
        "chain_id": options.chain_id,
        "nodes": nodes,
        "client_data_dir": client_dir,
    });
    crate::output::print(json, &value, || {
        let mut text = format!(
            "wrote a {}-member {} cluster in {}\n",
            options.nodes,
            options.engine,
            dir.display()
        );
        for ((_, config), node) in configs.iter().zip(&listed) {
            text.push_str(&format!(
                "  stele node start --config {}   # rpc http://{}{}\n",
                dir.join(format!("node-{}", config.node_id))
                    .join(CONFIG_FILE)
                    .display(),
                config.rpc_addr,
                if node.member {
                    ""
                } else {
                    ", spare: join it with `stele cluster add`"
                }
            ));
        }
        text.push_str(&format!(
            "clients: STELE_DATA_DIR={} (holds the funded `dev` key)",
            client_dir.display()
        ));
        text
    });
    Ok(())
}

/// Runs the member configured in `path` until SIGINT or SIGTERM.
pub fn start(path: &Path) -> anyhow::Result<()> {
    tracing_init();
    let config = NodeConfig::load(path)?;
    let data_dir = &config.data_dir;
    let genesis_path = data_dir.join("genesis.json");
    let text = std::fs::read_to_string(&genesis_path)
        .with_context(|| format!("reading {}", genesis_path.display()))?;
    let genesis: Genesis = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", genesis_path.display()))?;
    let spec = genesis.parse()?;
    let consensus = spec.consensus.clone().with_context(|| {
        format!(
            "{} has no consensus section: start this chain with `stele node start --data-dir`",
            genesis_path.display()
        )
    })?;
    let key = keys::load(data_dir, "node")?;
    let listed = consensus
        .nodes
        .iter()
        .find(|node| node.id == config.node_id)
        .with_context(|| format!("node {} is not listed in genesis", config.node_id))?;
    if listed.key != key.verifying_key().to_bytes() {
        bail!(
            "the node key in {} is not node {}'s key in genesis",
            data_dir.join("keys").display(),
            config.node_id
        );
    }
    let token = config.token()?;
    let genesis_hash = spec.genesis_hash;
    let chain = Chain::open(ChainConfig::new(data_dir.join("data")), spec)?;
    let tip = stele_consensus::Application::tip(&*chain);
    tracing::info!(
        chain_id = %chain.spec().chain_id,
        node_id = config.node_id,
        height = tip.height,
        state_root = %hex::encode(tip.state_root),
        "chain opened"
    );

    let mut raft = RaftConfig::new(config.node_id, data_dir.join("raft"));
    raft.initial_members = consensus
        .nodes
        .iter()
        .filter(|node| node.member)
        .map(|node| {
            (
                node.id,
                NodeInfo {
                    addr: node.addr.clone(),
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    raft.listed = consensus
        .nodes
        .iter()
        .map(|node| node.id)
        .collect::<BTreeSet<_>>();
    raft.proposer = keys::address_of(&key);
    raft.block_interval = Duration::from_millis(config.block_interval_ms);
    raft.snapshot_every_entries = config.snapshot_every_entries;
    raft.entries_kept_after_snapshot = config.entries_kept_after_snapshot;
    let peer_keys = Arc::new(PeerKeys {
        chain: genesis_hash,
        node_id: config.node_id,
        key,
        peers: consensus
            .nodes
            .iter()
            .map(|node| {
                ed25519_dalek::VerifyingKey::from_bytes(&node.key)
                    .map(|key| (node.id, key))
                    .with_context(|| format!("node {}'s key in genesis is not ed25519", node.id))
            })
            .collect::<anyhow::Result<_>>()?,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.peer_addr)
            .await
            .with_context(|| format!("cannot listen for peers on {}", config.peer_addr))?;
        let engine = RaftEngine::start(raft, chain.clone(), TcpTransport::new(peer_keys.clone()))
            .await
            .map_err(|error| anyhow::anyhow!("starting the raft engine: {error}"))?;
        let peers =
            TcpServer::start(listener, peer_keys, engine.handler()).context("serving peers")?;
        let engine = Arc::new(engine);
        let ordering: Arc<dyn Ordering> = engine.clone();
        let cluster: Arc<dyn ClusterAdmin> = engine.clone();
        let rpc = stele_rpc::start(
            chain.clone(),
            ordering.clone(),
            RpcConfig {
                addr: config.rpc_addr,
                ..RpcConfig::default()
            },
        )
        .await
        .with_context(|| format!("cannot serve JSON-RPC on {}", config.rpc_addr))?;
        let admin = stele_rpc::start_admin(ordering, cluster, token, config.admin_addr)
            .await
            .with_context(|| format!("cannot serve the admin API on {}", config.admin_addr))?;
        tracing::info!(
            node_id = config.node_id,
            "raft member: JSON-RPC on http://{}, peers on {}, admin on http://{}",
            rpc.addr,
            peers.addr(),
            admin.addr
        );
        shutdown_signal().await;
        tracing::info!("stopping");
        for server in [&rpc, &admin] {
            let _ = server.handle.stop();
        }
        rpc.handle.clone().stopped().await;
        admin.handle.clone().stopped().await;
        drop(peers);
        engine.shutdown().await;
        anyhow::Ok(())
    })
}

/// A membership command of `stele cluster`.
pub enum Change {
    Status,
    Add { node_id: u64, addr: Option<String> },
    Promote { node_id: u64 },
    Remove { node_id: u64 },
}

fn admin_client(config: &NodeConfig) -> anyhow::Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(90))
        .build(format!("http://{}", config.admin_addr))
        .with_context(|| format!("bad admin address {}", config.admin_addr))
}

/// Runs `change` through the admin API of the member configured in `path`.
pub async fn change(path: &Path, change: Change, json: bool) -> anyhow::Result<()> {
    let config = NodeConfig::load(path)?;
    let token = config.token()?;
    if token.len() < ADMIN_TOKEN_BYTES_MIN {
        bail!(
            "the admin token in {} is shorter than {ADMIN_TOKEN_BYTES_MIN} bytes",
            config.data_dir.display()
        );
    }
    let client = admin_client(&config)?;
    let request = match change {
        Change::Status => None,
        Change::Add { node_id, addr } => {
            let addr = match addr {
                Some(addr) => addr,
                None => genesis_addr(&config.data_dir, node_id)?,
            };
            Some(AdminChange::Add { node_id, addr })
        }
        Change::Promote { node_id } => Some(AdminChange::Promote { node_id }),
        Change::Remove { node_id } => Some(AdminChange::Remove { node_id }),
    };
    let status: ConsensusStatus = match request {
        None => client.admin_status(token).await,
        Some(request) => client.admin_change_membership(token, request).await,
    }
    .map_err(|error| anyhow::anyhow!("{}: {error}", config.admin_addr))?;
    crate::output::print(json, &serde_json::to_value(&status)?, || {
        format!(
            "node {} is {} (term {}, leader {}), members {:?}, learners {:?}, commit index {}",
            status.node_id,
            status.role,
            status.term,
            status
                .leader
                .map(|leader| leader.to_string())
                .unwrap_or_else(|| "unknown".into()),
            status.members,
            status.learners,
            status.commit_index
        )
    });
    Ok(())
}

/// `node_id`'s peer address as genesis lists it.
fn genesis_addr(data_dir: &Path, node_id: u64) -> anyhow::Result<String> {
    let path = data_dir.join("genesis.json");
    let genesis: Genesis = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    genesis
        .consensus
        .and_then(|consensus| consensus.nodes.into_iter().find(|node| node.id == node_id))
        .map(|node| node.addr)
        .with_context(|| {
            format!(
                "node {node_id} is not listed in {}; pass its peer address with --addr",
                path.display()
            )
        })
}
