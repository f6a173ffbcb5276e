//! `stele`: run a node, manage keys, build, deploy and call contracts, send
//! transactions, follow events, and load-test a node.

mod bench;
mod client;
mod cluster;
mod contract;
mod keys;
mod node;
mod output;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// mimalloc rather than the system allocator: a commit allocates and frees
/// tens of thousands of tree nodes and buffers, and with glibc's malloc
/// that was about a tenth of the state store's CPU time
/// (`state::commit/ours` 159 → 142 ms per block in the same bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stele: a WebAssembly smart-contract engine.
#[derive(Parser)]
#[command(name = "stele", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of human output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that talk to a node.
#[derive(Args, Clone, Debug)]
struct Remote {
    /// The node's JSON-RPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8600", env = "STELE_RPC")]
    rpc: String,
    /// Data directory holding the keys.
    #[arg(long, default_value = "./.stele", env = "STELE_DATA_DIR")]
    data_dir: PathBuf,
}

/// Options of commands that sign.
#[derive(Args, Clone, Debug)]
struct Signing {
    /// Name of the key that signs (see `stele keys list`).
    #[arg(long, default_value = "dev")]
    key: String,
    /// Gas limit; estimated by simulation when omitted.
    #[arg(long)]
    gas: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Run or set up a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Build, check, deploy and call contracts.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Send, inspect and simulate transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// List a contract's events, and follow new ones.
    Events {
        #[command(flatten)]
        remote: Remote,
        /// The contract.
        contract: String,
        /// Leading topics to match (hex), in order.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// First height.
        #[arg(long)]
        from: Option<u64>,
        /// Keep following new events.
        #[arg(long)]
        follow: bool,
    },
    /// Load-test a running node with signed token transfers.
    Bench(bench::BenchArgs),
    /// Set up a cluster, and change its membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Write genesis, node keys, admin tokens and one config per node (free
    /// ports on 127.0.0.1), plus a client data dir with the funded `dev` key.
    Init {
        /// Voting members at genesis.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Extra nodes listed in genesis that join later (`stele cluster add`).
        #[arg(long, default_value_t = 0)]
        spare: usize,
        /// Where to write (must be new or empty).
        #[arg(long)]
        dir: PathBuf,
        /// The ordering engine.
        #[arg(long, default_value = "raft")]
        engine: String,
        /// Chain id.
        #[arg(long, default_value = "stele-cluster")]
        chain_id: String,
        /// Time between blocks, in milliseconds.
        #[arg(long, default_value_t = 250)]
        block_interval_ms: u64,
        /// Log entries between snapshots (the log is compacted after each).
        #[arg(long, default_value_t = 10_000)]
        snapshot_every_entries: u64,
    },
    /// Show a member's view of the cluster.
    Status {
        /// The config of the member to ask.
        #[arg(long)]
        config: PathBuf,
    },
    /// Add a node listed in genesis as a learner (it replicates, not votes).
    Add {
        /// Its id.
        node_id: u64,
        /// The config of any member (its admin port and token are used).
        #[arg(long)]
        config: PathBuf,
        /// Its peer address (default: the one genesis lists).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Make a learner a voting member.
    Promote {
        /// Its id.
        node_id: u64,
        /// The config of any member.
        #[arg(long)]
        config: PathBuf,
    },
    /// Remove a member or learner.
    Remove {
        /// Its id.
        node_id: u64,
        /// The config of any member.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Start a node (with `--dev`, a one-node dev chain set up on first use;
    /// with `--config`, a cluster member written by `stele cluster init`).
    Start {
        /// A cluster member's config file (other options are then unused).
        #[arg(long, conflicts_with = "dev")]
        config: Option<PathBuf>,
        /// Set up a dev chain if the data directory has none.
        #[arg(long)]
        dev: bool,
        /// Data directory.
        #[arg(long, default_value = "./.stele", env = "STELE_DATA_DIR")]
        data_dir: PathBuf,
        /// JSON-RPC address (HTTP and WebSocket).
        #[arg(long, default_value = "127.0.0.1:8600")]
        rpc_addr: SocketAddr,
        /// Time between blocks, in milliseconds.
        #[arg(long, default_value_t = 250)]
        block_interval_ms: u64,
    },
    /// Write a genesis, a node key and a config into a data directory.
    Init {
        /// Data directory.
        #[arg(long, default_value = "./.stele", env = "STELE_DATA_DIR")]
        data_dir: PathBuf,
        /// Chain id.
        #[arg(long, default_value = "stele-local")]
        chain_id: String,
        /// Accounts to fund, `ADDRESS=AMOUNT` (default: the new `dev` key).
        #[arg(long = "fund")]
        fund: Vec<String>,
        /// Lowest gas price.
        #[arg(long, default_value = "0")]
        gas_price_min: String,
        /// Accounts allowed to deploy (default: everyone).
        #[arg(long = "allow-deployer")]
        allow_deployers: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key.
    Generate {
        /// Its name.
        name: String,
        /// Data directory.
        #[arg(long, default_value = "./.stele", env = "STELE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// List keys.
    List {
        /// Data directory.
        #[arg(long, default_value = "./.stele", env = "STELE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Show a key's address.
    Show {
        /// Its name.
        name: String,
        /// Data directory.
        #[arg(long, default_value = "./.stele", env = "STELE_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ContractCommand {
    /// Build every contract of the cargo workspace around a directory to wasm.
    Build {
        /// A directory in the workspace.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Only this package.
        #[arg(long, short)]
        package: Option<String>,
    },
    /// Validate a wasm file against the runtime's limits and show its spec.
    Check {
        /// The wasm file.
        wasm: PathBuf,
    },
    /// Deploy a wasm file.
    Deploy {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        signing: Signing,
        /// The wasm file.
        wasm: PathBuf,
        /// `init` arguments as JSON (object by name or array).
        #[arg(long)]
        init: Option<String>,
        /// `init` arguments as borsh hex.
        #[arg(long, conflicts_with = "init")]
        init_hex: Option<String>,
    },
    /// Call a method in a transaction.
    Invoke {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        signing: Signing,
        /// The contract.
        contract: String,
        /// The method.
        method: String,
        /// Arguments as JSON (object by name or array).
        #[arg(long)]
        args: Option<String>,
        /// Arguments as borsh hex.
        #[arg(long, conflicts_with = "args")]
        args_hex: Option<String>,
    },
    /// Call a method read-only.
    View {
        #[command(flatten)]
        remote: Remote,
        /// The contract.
        contract: String,
        /// The method.
        method: String,
        /// Arguments as JSON (object by name or array).
        #[arg(long)]
        args: Option<String>,
        /// Arguments as borsh hex.
        #[arg(long, conflicts_with = "args")]
        args_hex: Option<String>,
        /// Height to read at (default: the tip).
        #[arg(long)]
        height: Option<u64>,
    },
    /// Show a deployed contract's spec.
    Spec {
        #[command(flatten)]
        remote: Remote,
        /// The contract.
        contract: String,
    },
}

#[derive(Subcommand)]
enum TxCommand {
    /// Send native coin.
    Send {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        signing: Signing,
        /// Recipient.
        #[arg(long)]
        to: String,
        /// Amount.
        #[arg(long)]
        amount: u128,
    },
    /// Show a transaction's status and receipt.
    Get {
        #[command(flatten)]
        remote: Remote,
        /// Its hash.
        hash: String,
    },
    /// Simulate a contract call as a transaction (nothing is committed).
    Simulate {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        signing: Signing,
        /// The contract.
        contract: String,
        /// The method.
        method: String,
        /// Arguments as JSON.
        #[arg(long)]
        args: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Node(NodeCommand::Start {
            config: Some(config),
            ..
        }) => cluster::start(&config),
        Command::Node(NodeCommand::Start {
            config: None,
            dev,
            data_dir,
            rpc_addr,
            block_interval_ms,
        }) => node::start(node::StartOptions {
            dev,
            data_dir,
            rpc_addr,
            block_interval_ms,
        }),
        Command::Node(NodeCommand::Init {
            data_dir,
            chain_id,
            fund,
            gas_price_min,
            allow_deployers,
        }) => node::init(
            &data_dir,
            &chain_id,
            &fund,
            &gas_price_min,
            &allow_deployers,
            json,
        ),
        Command::Keys(KeysCommand::Generate { name, data_dir }) => {
            keys::generate_command(&data_dir, &name, json)
        }
        Command::Keys(KeysCommand::List { data_dir }) => keys::list_command(&data_dir, json),
        Command::Keys(KeysCommand::Show { name, data_dir }) => {
            keys::show_command(&data_dir, &name, json)
        }
        Command::Contract(ContractCommand::Build { dir, package }) => {
            contract::build(&dir, package.as_deref(), json)
        }
        Command::Contract(ContractCommand::Check { wasm }) => contract::check(&wasm, json),
        Command::Contract(ContractCommand::Deploy {
            remote,
            signing,
            wasm,
            init,
            init_hex,
        }) => client::block_on(contract::deploy(
            &remote, &signing, &wasm, init, init_hex, json,
        )),
        Command::Contract(ContractCommand::Invoke {
            remote,
            signing,
            contract,
            method,
            args,
            args_hex,
        }) => client::block_on(contract::invoke(
            &remote, &signing, &contract, &method, args, args_hex, json,
        )),
        Command::Contract(ContractCommand::View {
            remote,
            contract,
            method,
            args,
            args_hex,
            height,
        }) => client::block_on(contract::view(
            &remote, &contract, &method, args, args_hex, height, json,
        )),
        Command::Contract(ContractCommand::Spec { remote, contract }) => {
            client::block_on(contract::spec(&remote, &contract, json))
        }
        Command::Tx(TxCommand::Send {
            remote,
            signing,
            to,
            amount,
        }) => client::block_on(contract::send(&remote, &signing, &to, amount, json)),
        Command::Tx(TxCommand::Get { remote, hash }) => {
            client::block_on(contract::get(&remote, &hash, json))
        }
        Command::Tx(TxCommand::Simulate {
            remote,
            signing,
            contract,
            method,
            args,
        }) => client::block_on(contract::simulate(
            &remote, &signing, &contract, &method, args, json,
        )),
        Command::Events {
            remote,
            contract,
            topics,
            from,
            follow,
        } => client::block_on(contract::events(
            &remote, &contract, topics, from, follow, json,
        )),
        Command::Bench(args) => client::block_on(bench::run(args, json)),
        Command::Cluster(ClusterCommand::Init {
            nodes,
            spare,
            dir,
            engine,
            chain_id,
            block_interval_ms,
            snapshot_every_entries,
        }) => cluster::init(
            cluster::InitOptions {
                nodes,
                spare,
                dir,
                engine,
                chain_id,
                block_interval_ms,
                snapshot_every_entries,
            },
            json,
        ),
        Command::Cluster(ClusterCommand::Status { config }) => {
            client::block_on(cluster::change(&config, cluster::Change::Status, json))
        }
        Command::Cluster(ClusterCommand::Add {
            node_id,
            config,
            addr,
        }) => client::block_on(cluster::change(
            &config,
            cluster::Change::Add { node_id, addr },
            json,
        )),
        Command::Cluster(ClusterCommand::Promote { node_id, config }) => client::block_on(
            cluster::change(&config, cluster::Change::Promote { node_id }, json),
        ),
        Command::Cluster(ClusterCommand::Remove { node_id, config }) => client::block_on(
            cluster::change(&config, cluster::Change::Remove { node_id }, json),
        ),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
