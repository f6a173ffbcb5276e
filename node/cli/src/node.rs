//! `stele node init` and `stele node start`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use stele_chain::{Chain, ChainConfig, Genesis, GenesisAccount};
use stele_consensus::Ordering;
use stele_consensus::solo::{Solo, SoloConfig};
use stele_rpc::RpcConfig;
use stele_types::format_address;

use crate::keys;

/// Balance of the dev key on a dev chain.
pub(crate) const DEV_BALANCE: &str = "1000000000000000000000000000000";

fn genesis_path(data_dir: &Path) -> PathBuf {
    data_dir.join("genesis.json")
}

/// Writes a genesis funding `fund` (or a new `dev` key), and a `node` key.
pub fn init(
    data_dir: &Path,
    chain_id: &str,
    fund: &[String],
    gas_price_min: &str,
    allow_deployers: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let genesis = write_genesis(data_dir, chain_id, fund, gas_price_min, allow_deployers)?;
    let path = genesis_path(data_dir);
    crate::output::print(json, &serde_json::to_value(&genesis)?, || {
        format!(
            "wrote {} for chain `{}` ({} funded accounts)\nstart it with: stele node start --data-dir {}",
            path.display(),
            genesis.chain_id,
            genesis.accounts.len(),
            data_dir.display()
        )
    });
    Ok(())
}

fn write_genesis(
    data_dir: &Path,
    chain_id: &str,
    fund: &[String],
    gas_price_min: &str,
    allow_deployers: &[String],
) -> anyhow::Result<Genesis> {
    let path = genesis_path(data_dir);
    if path.exists() {
        bail!(
            "{} already exists; this data directory is set up",
            path.display()
        );
    }
    let mut accounts = Vec::new();
    for entry in fund {
        let (address, balance) = entry
            .split_once('=')
            .with_context(|| format!("--fund `{entry}` is not ADDRESS=AMOUNT"))?;
        accounts.push(GenesisAccount {
            address: address.into(),
            balance: balance.into(),
        });
    }
    let mut genesis = Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0),
        gas_price_min: gas_price_min.into(),
        accounts,
        deploy_allow_list: (!allow_deployers.is_empty()).then(|| allow_deployers.to_vec()),
        consensus: None,
    };
    // Check everything before writing anything.
    genesis.parse()?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    keys::generate(data_dir, "node")?;
    if fund.is_empty() {
        let dev = keys::generate(data_dir, "dev")?;
        genesis.accounts.push(GenesisAccount {
            address: format_address(&keys::address_of(&dev)),
            balance: DEV_BALANCE.into(),
        });
    }
    std::fs::write(&path, serde_json::to_string_pretty(&genesis)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(genesis)
}

/// Options of `stele node start`.
pub struct StartOptions {
    pub dev: bool,
    pub data_dir: PathBuf,
    pub rpc_addr: SocketAddr,
    pub block_interval_ms: u64,
}

/// Runs a node until SIGINT or SIGTERM.
pub fn start(options: StartOptions) -> anyhow::Result<()> {
    tracing_init();
    let data_dir = &options.data_dir;
    if !genesis_path(data_dir).exists() {
        if !options.dev {
            bail!(
                "{} has no genesis.json: run `stele node init` first, or start with --dev",
                data_dir.display()
            );
        }
        write_genesis(data_dir, "stele-dev", &[], "0", &[])?;
        tracing::info!(dir = %data_dir.display(), "set up a dev chain");
    }
    let text = std::fs::read_to_string(genesis_path(data_dir))
        .with_context(|| format!("reading {}", genesis_path(data_dir).display()))?;
    let genesis: Genesis = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", genesis_path(data_dir).display()))?;
    let spec = genesis.parse()?;
    if let Some(consensus) = &spec.consensus {
        bail!(
            "{} names the `{}` engine: start each member with `stele node start --config <its config.json>`",
            genesis_path(data_dir).display(),
            consensus.engine
        );
    }
    let proposer = keys::address_of(&keys::load(data_dir, "node")?);
    if options.block_interval_ms == 0 || options.block_interval_ms > 60_000 {
        bail!(
            "--block-interval-ms is {}, must be 1 to 60000",
            options.block_interval_ms
        );
    }

    let chain = Chain::open(ChainConfig::new(data_dir.join("data")), spec)?;
    let tip = stele_consensus::Application::tip(&*chain);
    tracing::info!(
        chain_id = %chain.spec().chain_id,
        height = tip.height,
        state_root = %hex::encode(tip.state_root),
        "chain opened"
    );
    let solo = Solo::start(
        SoloConfig {
            block_interval: Duration::from_millis(options.block_interval_ms),
            proposer,
            ..SoloConfig::default()
        },
        chain.clone(),
    )
    .context("starting the solo engine")?;
    let ordering: Arc<dyn Ordering> = Arc::new(solo);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config = RpcConfig {
        addr: options.rpc_addr,
        ..RpcConfig::default()
    };
    runtime.block_on(async {
        let server = stele_rpc::start(chain.clone(), ordering.clone(), config)
            .await
            .with_context(|| format!("cannot serve JSON-RPC on {}", options.rpc_addr))?;
        tracing::info!(
            "JSON-RPC on http://{0} and ws://{0}, metrics on http://{0}/metrics",
            server.addr
        );
        shutdown_signal().await;
        tracing::info!("stopping");
        let _ = server.handle.stop();
        server.handle.stopped().await;
        anyhow::Ok(())
    })?;
    ordering.stop();
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn tracing_init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
