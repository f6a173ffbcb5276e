//! Talking to a node: clients, signing and sending transactions.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use stele_chain::TX_GAS_LIMIT_MAX;
use stele_rpc::SteleApiClient;
use stele_rpc::types::{ReceiptInfo, TxStatus, Wait};
use stele_types::{Action, SignedTransaction, Transaction, encode_transaction};

use crate::Remote;
use crate::keys::address_of;

/// Runs a command's future on a fresh runtime.
pub fn block_on(future: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// An HTTP client for `remote`.
pub fn http(remote: &Remote) -> anyhow::Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(120))
        .max_request_size(8 * 1024 * 1024)
        .max_response_size(32 * 1024 * 1024)
        .build(&remote.rpc)
        .with_context(|| format!("bad RPC address {}", remote.rpc))
}

/// The WebSocket URL of an HTTP endpoint.
pub fn ws_url(rpc: &str) -> String {
    if let Some(rest) = rpc.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = rpc.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        rpc.to_string()
    }
}

/// A WebSocket client for `rpc`.
pub async fn ws(rpc: &str) -> anyhow::Result<WsClient> {
    WsClientBuilder::default()
        .request_timeout(Duration::from_secs(120))
        .max_request_size(8 * 1024 * 1024)
        .build(ws_url(rpc))
        .await
        .with_context(|| format!("cannot open a WebSocket to {}", ws_url(rpc)))
}

fn rpc_error(error: jsonrpsee::core::ClientError) -> anyhow::Error {
    match error {
        jsonrpsee::core::ClientError::Call(call) => {
            anyhow::anyhow!("{} (code {})", call.message(), call.code())
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// Maps a client error to a readable one.
pub trait RpcContext<T> {
    /// Adds the RPC error text.
    fn rpc(self) -> anyhow::Result<T>;
}

impl<T> RpcContext<T> for Result<T, jsonrpsee::core::ClientError> {
    fn rpc(self) -> anyhow::Result<T> {
        self.map_err(rpc_error)
    }
}

/// Builds and signs a transaction with the signer's next nonce and the
/// chain's gas price; estimates the gas limit by simulation when `gas` is
/// `None`.
pub async fn build_tx(
    client: &HttpClient,
    key: &SigningKey,
    actions: Vec<Action>,
    gas: Option<u64>,
) -> anyhow::Result<SignedTransaction> {
    let info = client.chain_get_info().await.rpc()?;
    let signer = address_of(key);
    let account = client
        .account_get(stele_types::format_address(&signer))
        .await
        .rpc()?;
    let gas_price: u128 = info.gas_price_min.parse().context("gas price")?;
    let mut tx = Transaction {
        chain_id: info.chain_id,
        signer,
        nonce: account.nonce,
        gas_limit: gas.unwrap_or(TX_GAS_LIMIT_MAX),
        gas_price,
        actions,
    };
    if gas.is_none() {
        if gas_price > 0 {
            let balance: u128 = account.balance.parse().context("balance")?;
            tx.gas_limit = (balance / gas_price).min(u128::from(TX_GAS_LIMIT_MAX)) as u64;
        }
        let probe = tx.clone().sign(key);
        let receipt = client
            .tx_simulate(hex::encode(encode_transaction(&probe)))
            .await
            .rpc()?;
        if receipt.status != "success" {
            bail!(
                "the transaction would fail: {}",
                receipt.error.unwrap_or_default()
            );
        }
        // Headroom: state can change before inclusion.
        tx.gas_limit = (receipt.gas_used + receipt.gas_used / 5 + 10_000).min(TX_GAS_LIMIT_MAX);
    }
    Ok(tx.sign(key))
}

/// Sends a signed transaction and waits until it executed.
pub async fn send_and_wait(
    client: &HttpClient,
    tx: &SignedTransaction,
    json: bool,
) -> anyhow::Result<ReceiptInfo> {
    let spinner = crate::output::spinner(json, "waiting for the transaction to execute");
    let status: TxStatus = client
        .tx_send(hex::encode(encode_transaction(tx)), Some(Wait::Executed))
        .await
        .rpc()?;
    spinner.finish_and_clear();
    status
        .receipt
        .context("the node answered without a receipt")
}

/// Human lines for a receipt.
pub fn describe(receipt: &ReceiptInfo) -> String {
    let mut lines = vec![
        format!("transaction {}", receipt.tx_hash),
        format!(
            "  status   {}{}",
            receipt.status,
            receipt
                .error
                .as_ref()
                .map(|error| format!(": {error}"))
                .unwrap_or_default()
        ),
        format!("  block    {} (index {})", receipt.height, receipt.index),
        format!("  gas      {} (fee {})", receipt.gas_used, receipt.fee),
    ];
    for contract in &receipt.deployed {
        lines.push(format!("  deployed {contract}"));
    }
    for event in &receipt.events {
        lines.push(format!(
            "  event    {} topics [{}] data {}",
            event.contract,
            event.topics.join(", "),
            event.data
        ));
    }
    lines.join("\n")
}
