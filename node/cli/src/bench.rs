//! `stele bench`: a load generator. Deploys fungible-token on a running
//! node, funds many accounts, then submits pre-signed token transfers from
//! all of them over WebSocket batches and reports committed transactions
//! per second and submit→executed latency (p50, p99), next to the raw
//! ed25519 verification rate of this machine measured in the same run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ed25519_dalek::{Signer, SigningKey};
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::rpc_params;
use serde_json::json;
use stele_host_api::Address;
use stele_rpc::SteleApiClient;
use stele_rpc::types::{BlockInfo, Wait};
use stele_types::{Action, SignedTransaction, Transaction, encode_transaction, parse_address};

use crate::Remote;
use crate::client::{RpcContext, build_tx, http, send_and_wait, ws};
use crate::keys::{address_of, random_key};

/// Options of `stele bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    remote: Remote,
    /// The funded key that deploys the token and funds the accounts.
    #[arg(long, default_value = "dev")]
    key: String,
    /// fungible-token wasm (default: build it from the workspace around the
    /// current directory).
    #[arg(long)]
    token: Option<PathBuf>,
    /// Sending accounts.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Transfers to submit.
    #[arg(long, default_value_t = 20_000)]
    transactions: usize,
    /// WebSocket connections submitting in parallel.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Transactions per JSON-RPC batch.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Seconds to wait for the last transaction to execute.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

const TRANSFER_GAS: u64 = 200_000;

fn transfer_args(to: &Address, amount: u128) -> Vec<u8> {
    let mut args = to.0.to_vec();
    args.extend_from_slice(&amount.to_le_bytes());
    args
}

/// Raw ed25519 `verify_strict` rate over all cores, for `duration`.
fn verification_rate(duration: Duration) -> f64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [42u8; 200];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    let start = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0u64;
                    while start.elapsed() < duration {
                        for _ in 0..64 {
                            assert!(public.verify_strict(&message, &signature).is_ok());
                        }
                        count += 64;
                    }
                    count
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("worker"))
            .sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

async fn send_batches(
    rpc: String,
    txs: Vec<(String, String)>,
    batch: usize,
    submitted: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
) -> anyhow::Result<(usize, Option<String>)> {
    let client = ws(&rpc).await?;
    let mut refused = 0;
    let mut first_error = None;
    for chunk in txs.chunks(batch) {
        let mut request = BatchRequestBuilder::new();
        for (_, tx) in chunk {
            request.insert("tx_send", rpc_params![tx, Wait::None])?;
        }
        {
            let now = Instant::now();
            let mut submitted = submitted.lock().expect("not poisoned");
            for (hash, _) in chunk {
                submitted.insert(hash.clone(), now);
            }
        }
        let responses = client
            .batch_request::<serde_json::Value>(request)
            .await
            .rpc()?;
        for response in responses.into_iter() {
            if let Err(error) = response {
                refused += 1;
                first_error.get_or_insert_with(|| error.message().to_string());
            }
        }
    }
    Ok((refused, first_error))
}

/// Runs the load test.
pub async fn run(args: BenchArgs, json: bool) -> anyhow::Result<()> {
    if args.accounts < 2 || args.transactions == 0 || args.connections == 0 || args.batch == 0 {
        bail!("need at least 2 accounts, 1 transaction, 1 connection and a batch of 1");
    }
    let token = match &args.token {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let workspace = stele_testkit::build::workspace_at(&std::env::current_dir()?)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            let path = stele_testkit::build::build_in(&workspace, "fungible-token", &[])
                .map_err(|error| anyhow::anyhow!("building fungible-token: {error}"))?;
            std::fs::read(path)?
        }
    };
    let client = http(&args.remote)?;
    let funder = crate::keys::load(&args.remote.data_dir, &args.key)?;
    let info = client.chain_get_info().await.rpc()?;
    if info.gas_price_min != "0" {
        bail!("the load test needs a chain without fees (gas_price_min 0), like a dev chain");
    }

    // Token, funded accounts.
    let mut init = Vec::new();
    for part in [&b"Bench"[..], b"BNC"] {
        init.extend_from_slice(&(part.len() as u32).to_le_bytes());
        init.extend_from_slice(part);
    }
    init.push(0);
    init.extend_from_slice(&(u128::MAX / 2).to_le_bytes());
    let deploy = build_tx(
        &client,
        &funder,
        vec![Action::Deploy {
            code: token,
            init_args: Some(init),
        }],
        None,
    )
    .await?;
    let receipt = send_and_wait(&client, &deploy, json).await?;
    let contract = parse_address(receipt.deployed.first().context("no contract deployed")?)?;
    let accounts: Vec<SigningKey> = (0..args.accounts)
        .map(|_| random_key())
        .collect::<anyhow::Result<_>>()?;
    let funder_nonce = client
        .account_get(stele_types::format_address(&address_of(&funder)))
        .await
        .rpc()?
        .nonce;
    let sign = |key: &SigningKey, nonce: u64, to: &Address, amount: u128| -> SignedTransaction {
        Transaction {
            chain_id: info.chain_id.clone(),
            signer: address_of(key),
            nonce,
            gas_limit: TRANSFER_GAS,
            gas_price: 0,
            actions: vec![Action::Call {
                contract,
                method: "transfer".into(),
                args: transfer_args(to, amount),
            }],
        }
        .sign(key)
    };
    let funding: Vec<SignedTransaction> = accounts
        .iter()
        .enumerate()
        .map(|(n, account)| {
            sign(
                &funder,
                funder_nonce + n as u64,
                &address_of(account),
                1 << 40,
            )
        })
        .collect();
    let spinner = crate::output::spinner(json, "funding accounts");
    for chunk in funding.chunks(500) {
        let (last, rest) = chunk.split_last().expect("chunks are not empty");
        for tx in rest {
            client
                .tx_send(hex::encode(encode_transaction(tx)), Some(Wait::None))
                .await
                .rpc()?;
        }
        let status = client
            .tx_send(hex::encode(encode_transaction(last)), Some(Wait::Executed))
            .await
            .rpc()?;
        if status
            .receipt
            .is_none_or(|receipt| receipt.status != "success")
        {
            bail!("funding transfer failed");
        }
    }
    spinner.finish_and_clear();

    // Pre-signed load: round-robin over accounts, to the next account.
    let addresses: Vec<Address> = accounts.iter().map(address_of).collect();
    let load: Vec<(String, String)> = (0..args.transactions)
        .map(|i| {
            let from = i % args.accounts;
            let tx = sign(
                &accounts[from],
                (i / args.accounts) as u64,
                &addresses[(from + 1) % args.accounts],
                1,
            );
            (hex::encode(tx.hash()), hex::encode(encode_transaction(&tx)))
        })
        .collect();

    let verify_rate = verification_rate(Duration::from_secs(2));

    // Heads subscription, then submission.
    let heads_client = ws(&args.remote.rpc).await?;
    let mut heads = heads_client
        .subscribe::<BlockInfo, _>(
            "chain_subscribeHeads",
            rpc_params![],
            "chain_unsubscribeHeads",
        )
        .await
        .rpc()?;
    let submitted = Arc::new(std::sync::Mutex::new(HashMap::with_capacity(load.len())));
    let wanted: std::collections::HashSet<String> = load.iter().map(|(h, _)| h.clone()).collect();
    let start = Instant::now();
    let per_connection = load.len().div_ceil(args.connections);
    let mut senders = Vec::new();
    for part in load.chunks(per_connection) {
        let rpc = args.remote.rpc.clone();
        let part = part.to_vec();
        let submitted = submitted.clone();
        let batch = args.batch;
        senders.push(tokio::spawn(send_batches(rpc, part, batch, submitted)));
    }
    let mut latencies = Vec::with_capacity(load.len());
    let mut last_seen = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let spinner = crate::output::spinner(json, "waiting for the load to execute");
    while latencies.len() < wanted.len() {
        let head = match tokio::time::timeout_at(deadline, heads.next()).await {
            Ok(Some(head)) => head.context("the heads stream failed")?,
            Ok(None) => bail!("the heads stream ended"),
            Err(_) => break,
        };
        let now = Instant::now();
        let submitted = submitted.lock().expect("not poisoned");
        for hash in &head.transactions {
            if wanted.contains(hash)
                && let Some(at) = submitted.get(hash)
            {
                latencies.push(now - *at);
                last_seen = now;
            }
        }
        spinner.set_message(format!("{} of {} executed", latencies.len(), wanted.len()));
    }
    spinner.finish_and_clear();
    let mut refused = 0;
    let mut first_error = None;
    for sender in senders {
        let (count, error) = sender.await.context("a sender panicked")??;
        refused += count;
        first_error = first_error.or(error);
    }
    latencies.sort_unstable();
    let committed = latencies.len();
    let elapsed = last_seen.duration_since(start).as_secs_f64().max(1e-9);
    let tps = committed as f64 / elapsed;
    // A sample of receipts must be successes.
    let mut failed = 0;
    for (hash, _) in load.iter().step_by((load.len() / 50).max(1)) {
        let status = client.tx_get(hash.clone()).await.rpc()?;
        if status
            .receipt
            .is_none_or(|receipt| receipt.status != "success")
        {
            failed += 1;
        }
    }
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let report = json!({
        "submitted": load.len(),
        "refused": refused,
        "first_refusal": first_error,
        "committed": committed,
        "seconds": elapsed,
        "committed_tps": tps,
        "latency_p50_ms": p50.as_secs_f64() * 1e3,
        "latency_p99_ms": p99.as_secs_f64() * 1e3,
        "ed25519_verify_per_second": verify_rate,
        "tps_over_verify_rate": tps / verify_rate,
        "sampled_receipts_failed": failed,
    });
    crate::output::print(json, &report, || {
        format!(
            "submitted {} signed token transfers from {} accounts ({} refused{})\n\
             committed {committed} in {elapsed:.2} s: {tps:.0} tx/s\n\
             submit→executed latency p50 {:.1} ms, p99 {:.1} ms\n\
             raw ed25519 verify_strict on this machine: {verify_rate:.0}/s ({} cores); \
             committed/verify = {:.1}%\n\
             sampled receipts that failed: {failed}",
            load.len(),
            args.accounts,
            refused,
            first_error
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            100.0 * tps / verify_rate
        )
    });
    if committed < load.len() - refused {
        bail!(
            "only {committed} of {} admitted transactions executed within {} s",
            load.len() - refused,
            args.timeout_secs
        );
    }
    Ok(())
}
