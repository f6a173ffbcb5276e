//! The server: the API over a [`Chain`] and an ordering engine, with
//! limits, `/metrics` and `rpc.discover` on the same port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::server::{
    BatchRequestConfig, PendingSubscriptionSink, Server, ServerConfig, ServerHandle,
};
use jsonrpsee::types::ErrorObjectOwned;
use stele_chain::{Chain, ExecutedBlock, keys as chain_keys};
use stele_consensus::{Application, Ordering, SubmitError};
use stele_host_api::Address;
use stele_runtime::storage::keys as runtime_keys;
use stele_runtime::{Call, Context};
use stele_types::{Block, SignedTransaction, TxHash, format_address, parse_address};
use tokio::sync::broadcast::error::RecvError;

use crate::api::SteleApiServer;
use crate::metrics::MetricsLayer;
use crate::types::{
    AccountInfo, BlockInfo, CallResult, ChainInfo, CodeInfo, ConsensusStatus, EventFilter,
    EventInfo, EventPage, Health, ReceiptInfo, StateEntry, StatePage, StateValue, TxStatus,
    VersionInfo, Wait,
};
use crate::{codes, openrpc};

/// Limits and address of the server.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Where to listen. Default: `127.0.0.1:8600`.
    pub addr: SocketAddr,
    /// Largest request body. Default: 4 MiB (a largest transaction in hex
    /// is about 3 MiB).
    pub max_request_body_bytes: u32,
    /// Largest response body. Default: 16 MiB.
    pub max_response_body_bytes: u32,
    /// Most open connections. Default: 512.
    pub max_connections: u32,
    /// Most subscriptions per WebSocket connection. Default: 64.
    pub max_subscriptions_per_connection: u32,
    /// Most calls in one batch. Default: 256.
    pub max_batch_len: u32,
    /// How long a subscriber may take to accept a message before it is
    /// dropped. Default: 5 s.
    pub slow_subscriber_timeout: Duration,
    /// How long `tx_send` waits for inclusion or execution. Default: 60 s.
    pub wait_timeout: Duration,
    /// Most gas of a read-only `contract_call`. Default: 200,000,000.
    pub call_gas_limit: u64,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8600)),
            max_request_body_bytes: 4 * 1024 * 1024,
            max_response_body_bytes: 16 * 1024 * 1024,
            max_connections: 512,
            max_subscriptions_per_connection: 64,
            max_batch_len: 256,
            slow_subscriber_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(60),
            call_gas_limit: 200_000_000,
        }
    }
}

/// Most entries of one `state_list` or `event_query` page.
pub const PAGE_MAX: u32 = 1_000;

/// The API implementation.
#[derive(Clone)]
pub struct Rpc {
    chain: Arc<Chain>,
    ordering: Arc<dyn Ordering>,
    config: RpcConfig,
}

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

fn internal(error_value: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::INTERNAL, error_value.to_string())
}

fn submit_error(refusal: SubmitError) -> ErrorObjectOwned {
    error(refusal.code, refusal.message)
}

fn parse_hex(field: &str, text: &str) -> RpcResult<Vec<u8>> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).map_err(|problem| {
        error(
            codes::INVALID_PARAMS,
            format!("{field} is not hex: {problem}"),
        )
    })
}

fn parse_hash(field: &str, text: &str) -> RpcResult<[u8; 32]> {
    let bytes = parse_hex(field, text)?;
    bytes.as_slice().try_into().map_err(|_| {
        error(
            codes::INVALID_PARAMS,
            format!("{field} holds {} bytes, expected 32", bytes.len()),
        )
    })
}

fn parse_account(field: &str, text: &str) -> RpcResult<Address> {
    parse_address(text)
        .map_err(|problem| error(codes::INVALID_PARAMS, format!("{field}: {problem}")))
}

fn block_info(block: &Block) -> BlockInfo {
    let header = &block.header;
    BlockInfo {
        height: header.height,
        hash: hex::encode(header.hash()),
        parent_hash: hex::encode(header.parent_hash),
        time_ms: header.time_ms,
        proposer: format_address(&header.proposer),
        transactions_root: hex::encode(header.transactions_root),
        state_root: hex::encode(header.state_root),
        transactions: block
            .transactions
            .iter()
            .map(|tx| hex::encode(tx.hash()))
            .collect(),
    }
}

fn executed(hash: &TxHash, receipt: ReceiptInfo) -> TxStatus {
    TxStatus {
        hash: hex::encode(hash),
        status: "executed".into(),
        receipt: Some(receipt),
    }
}

fn decode_tx(text: &str) -> RpcResult<SignedTransaction> {
    let bytes = parse_hex("tx", text)?;
    stele_types::decode_transaction(&bytes).map_err(|problem| {
        let code = match problem {
            stele_types::DecodeError::TooLarge { .. } => stele_chain::codes::TX_TOO_LARGE,
            _ => stele_chain::codes::TX_MALFORMED,
        };
        error(code, problem.to_string())
    })
}

impl Rpc {
    /// The API over `chain`, submitting through `ordering`.
    pub fn new(chain: Arc<Chain>, ordering: Arc<dyn Ordering>, config: RpcConfig) -> Self {
        Rpc {
            chain,
            ordering,
            config,
        }
    }

    fn status(&self, hash: &TxHash) -> RpcResult<TxStatus> {
        let store = self.chain.store();
        if let Some(location) = store.locate(hash).map_err(internal)?
            && let Some(receipt) = store.receipt(location).map_err(internal)?
        {
            return Ok(executed(hash, ReceiptInfo::from(&receipt)));
        }
        let status = if self.chain.mempool().contains(hash) {
            "pending"
        } else {
            "unknown"
        };
        Ok(TxStatus {
            hash: hex::encode(hash),
            status: status.into(),
            receipt: None,
        })
    }

    fn code_of(&self, contract: &Address) -> RpcResult<([u8; 32], Vec<u8>)> {
        let state = self.chain.state();
        let not_found = || {
            error(
                codes::NOT_FOUND,
                format!("no contract at {}", format_address(contract)),
            )
        };
        let hash = state
            .get(&runtime_keys::contract(contract))
            .map_err(internal)?
            .ok_or_else(not_found)?;
        let hash: [u8; 32] = hash.as_slice().try_into().map_err(internal_len)?;
        let code = state
            .get(&runtime_keys::code(&stele_host_api::CodeHash(hash)))
            .map_err(internal)?
            .ok_or_else(not_found)?;
        Ok((hash, code))
    }

    fn height_or_tip(&self, height: Option<u64>) -> RpcResult<u64> {
        let tip = self.chain.tip().height;
        match height {
            None => Ok(tip),
            Some(height) if height > tip => Err(error(
                codes::NOT_FOUND,
                format!("height {height} is above the tip {tip}"),
            )),
            Some(height) => Ok(height),
        }
    }
}

fn internal_len(_: std::array::TryFromSliceError) -> ErrorObjectOwned {
    internal("a stored code hash is not 32 bytes")
}

fn matches(contract: Option<&Address>, topics: &[[u8; 32]], event: &stele_host_api::Event) -> bool {
    contract.is_none_or(|contract| *contract == event.contract) && event.topics.starts_with(topics)
}

fn filter_parts(filter: &EventFilter) -> RpcResult<(Option<Address>, Vec<[u8; 32]>)> {
    let contract = filter
        .contract
        .as_deref()
        .map(|text| parse_account("filter.contract", text))
        .transpose()?;
    let topics = filter
        .topics
        .iter()
        .map(|topic| parse_hash("filter.topics[]", topic))
        .collect::<RpcResult<Vec<_>>>()?;
    Ok((contract, topics))
}

#[async_trait]
impl SteleApiServer for Rpc {
    async fn chain_get_info(&self) -> RpcResult<ChainInfo> {
        let tip = self.chain.tip();
        let spec = self.chain.spec();
        Ok(ChainInfo {
            chain_id: spec.chain_id.clone(),
            height: tip.height,
            block_hash: hex::encode(tip.hash),
            state_root: hex::encode(tip.state_root),
            genesis_hash: hex::encode(spec.genesis_hash),
            gas_price_min: spec.gas_price_min.to_string(),
            engine: self.ordering.name().into(),
        })
    }

    async fn chain_get_health(&self) -> RpcResult<Health> {
        let halted = self.chain.halted();
        Ok(Health {
            healthy: halted.is_none(),
            height: self.chain.tip().height,
            halted,
            mempool_transactions: self.chain.mempool().stats().transactions,
        })
    }

    async fn chain_get_block(&self, height: Option<u64>) -> RpcResult<BlockInfo> {
        let height = self.height_or_tip(height)?;
        if height == 0 {
            return Err(error(
                codes::NOT_FOUND,
                "height 0 is genesis state, not a block",
            ));
        }
        let block = self
            .chain
            .store()
            .block(height)
            .map_err(internal)?
            .ok_or_else(|| error(codes::NOT_FOUND, format!("no block at height {height}")))?;
        Ok(block_info(&block))
    }

    async fn tx_send(&self, tx: String, wait: Option<Wait>) -> RpcResult<TxStatus> {
        let tx = decode_tx(&tx)?;
        // Subscribed before submitting, so the block cannot slip by; not at
        // all when the client does not wait.
        let waiting = wait.unwrap_or_default() != Wait::None;
        let blocks = waiting.then(|| self.chain.subscribe());
        let hash = self.ordering.submit(tx).await.map_err(submit_error)?;
        let Some(mut blocks) = blocks else {
            return Ok(TxStatus {
                hash: hex::encode(hash),
                status: "pending".into(),
                receipt: None,
            });
        };
        let deadline = tokio::time::Instant::now() + self.config.wait_timeout;
        loop {
            match tokio::time::timeout_at(deadline, blocks.recv()).await {
                Ok(Ok(block)) => {
                    if let Some(receipt) = block.receipts.iter().find(|r| r.tx_hash == hash) {
                        return Ok(executed(&hash, ReceiptInfo::from(receipt)));
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    let status = self.status(&hash)?;
                    if status.receipt.is_some() {
                        return Ok(status);
                    }
                }
                Ok(Err(RecvError::Closed)) => {
                    return Err(error(codes::INTERNAL, "the node is shutting down"));
                }
                Err(_) => {
                    return Err(error(
                        codes::TIMEOUT,
                        format!(
                            "transaction {} not executed within {:?}; it is still pending \
                             (ask tx_get later)",
                            hex::encode(hash),
                            self.config.wait_timeout
                        ),
                    ));
                }
            }
        }
    }

    async fn tx_get(&self, hash: String) -> RpcResult<TxStatus> {
        let hash = parse_hash("hash", &hash)?;
        self.status(&hash)
    }

    async fn tx_simulate(&self, tx: String) -> RpcResult<ReceiptInfo> {
        let tx = decode_tx(&tx)?;
        let chain = self.chain.clone();
        let receipt = tokio::task::spawn_blocking(move || chain.simulate(&tx))
            .await
            .map_err(internal)?
            .map_err(|problem| error(codes::EXECUTION, problem.to_string()))?;
        Ok(ReceiptInfo::from(&receipt))
    }

    async fn tx_estimate_gas(&self, tx: String) -> RpcResult<u64> {
        let receipt = self.tx_simulate(tx).await?;
        match receipt.status.as_str() {
            "success" => Ok(receipt.gas_used),
            _ => Err(error(
                codes::EXECUTION,
                format!(
                    "the transaction would not succeed: {}",
                    receipt.error.unwrap_or_default()
                ),
            )),
        }
    }

    async fn contract_call(
        &self,
        contract: String,
        method: String,
        args: String,
        height: Option<u64>,
    ) -> RpcResult<CallResult> {
        let contract = parse_account("contract", &contract)?;
        let input = parse_hex("args", &args)?;
        let height = self.height_or_tip(height)?;
        let chain = self.chain.clone();
        let gas_limit = self.config.call_gas_limit;
        let outcome = tokio::task::spawn_blocking(move || {
            let tip = chain.tip();
            let ctx = Context {
                block_height: height,
                block_time_ms: tip.time_ms,
                origin: Address([0; 32]),
                tx_hash: [0; 32],
            };
            let call = Call {
                caller: Address([0; 32]),
                contract,
                method,
                input,
                gas_limit,
            };
            if height == tip.height {
                chain.runtime().call(&chain.latest_view(), &ctx, &call)
            } else {
                chain.runtime().call(&chain.view_at(height), &ctx, &call)
            }
        })
        .await
        .map_err(internal)?
        .map_err(|fault| error(codes::EXECUTION, fault.to_string()))?;
        Ok(CallResult {
            return_data: hex::encode(&outcome.return_data),
            gas_used: outcome.gas_used,
            events: outcome
                .events
                .iter()
                .map(|event| EventInfo::new(event, None))
                .collect(),
            error: outcome.trap.map(|trap| trap.to_string()),
        })
    }

    async fn contract_get_code(&self, contract: String) -> RpcResult<CodeInfo> {
        let contract = parse_account("contract", &contract)?;
        let (hash, code) = self.code_of(&contract)?;
        Ok(CodeInfo {
            code_hash: hex::encode(hash),
            code: hex::encode(code),
        })
    }

    async fn contract_get_spec(&self, contract: String) -> RpcResult<serde_json::Value> {
        let contract = parse_account("contract", &contract)?;
        let (_, code) = self.code_of(&contract)?;
        let spec = stele_runtime::spec::read(&code)
            .map_err(internal)?
            .ok_or_else(|| error(codes::NOT_FOUND, "the contract has no embedded spec"))?;
        Ok(crate::values::spec_json(&spec))
    }

    async fn state_get(&self, key: String, height: Option<u64>) -> RpcResult<StateValue> {
        let key_bytes = parse_hex("key", &key)?;
        let height = self.height_or_tip(height)?;
        let state = self.chain.state();
        let (value, proof) = state
            .prove(&key_bytes, height)
            .map_err(|problem| error(codes::PRUNED, format!("height {height}: {problem}")))?;
        let root = state.root_at(height).map_err(internal)?;
        Ok(StateValue {
            key: hex::encode(&key_bytes),
            value: value.map(hex::encode),
            proof: hex::encode(proof.to_bytes()),
            root: hex::encode(root),
            height,
        })
    }

    async fn state_list(
        &self,
        prefix: String,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<StatePage> {
        let prefix = parse_hex("prefix", &prefix)?;
        let mut start = match cursor {
            Some(cursor) => parse_hex("cursor", &cursor)?,
            None => prefix.clone(),
        };
        let limit = limit.unwrap_or(100).clamp(1, PAGE_MAX) as usize;
        let state = self.chain.state();
        let mut entries = Vec::new();
        while let Some((key, value)) = state.next(&start, &prefix).map_err(internal)? {
            if entries.len() == limit {
                return Ok(StatePage {
                    entries,
                    next_cursor: Some(hex::encode(key)),
                });
            }
            start = key.clone();
            start.push(0);
            entries.push(StateEntry {
                key: hex::encode(key),
                value: hex::encode(value),
            });
        }
        Ok(StatePage {
            entries,
            next_cursor: None,
        })
    }

    async fn account_get(&self, address: String) -> RpcResult<AccountInfo> {
        let account = parse_account("address", &address)?;
        let state = self.chain.state();
        let code_hash = state
            .get(&runtime_keys::contract(&account))
            .map_err(internal)?
            .map(hex::encode);
        let admin = state
            .get(&chain_keys::admin(&account))
            .map_err(internal)?
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .map(|bytes| format_address(&Address(bytes)));
        Ok(AccountInfo {
            address: format_address(&account),
            balance: self.chain.balance(&account).map_err(internal)?.to_string(),
            nonce: self.chain.nonce(&account).map_err(internal)?,
            code_hash,
            admin,
        })
    }

    async fn event_query(&self, filter: EventFilter) -> RpcResult<EventPage> {
        let (contract, topics) = filter_parts(&filter)?;
        let contract =
            contract.ok_or_else(|| error(codes::INVALID_PARAMS, "filter.contract is required"))?;
        let from = match &filter.cursor {
            Some(cursor) => {
                let bytes = parse_hex("filter.cursor", cursor)?;
                if bytes.len() != 16 {
                    return Err(error(
                        codes::INVALID_PARAMS,
                        "filter.cursor is not a cursor",
                    ));
                }
                (
                    u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
                    u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
                    u32::from_be_bytes(bytes[12..].try_into().expect("4 bytes")),
                )
            }
            None => (filter.from_height.unwrap_or(0), 0, 0),
        };
        let to = filter.to_height.unwrap_or(u64::MAX);
        let limit = filter.limit.unwrap_or(100).clamp(1, PAGE_MAX) as usize;
        let (events, next) = self
            .chain
            .store()
            .events(&contract, from, to, &topics, limit)
            .map_err(internal)?;
        Ok(EventPage {
            events: events
                .iter()
                .map(|indexed| {
                    EventInfo::new(
                        &indexed.event,
                        Some((indexed.height, indexed.tx_index, indexed.event_index)),
                    )
                })
                .collect(),
            next_cursor: next.map(|(height, tx, event)| {
                let mut bytes = height.to_be_bytes().to_vec();
                bytes.extend_from_slice(&tx.to_be_bytes());
                bytes.extend_from_slice(&event.to_be_bytes());
                hex::encode(bytes)
            }),
        })
    }

    async fn consensus_status(&self) -> RpcResult<ConsensusStatus> {
        Ok(self.ordering.status().into())
    }

    async fn node_get_version(&self) -> RpcResult<VersionInfo> {
        Ok(VersionInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            engine: self.ordering.name().into(),
            gas_schedule: self.chain.runtime().schedule().version,
        })
    }

    async fn chain_subscribe_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut blocks = self.chain.subscribe();
        let sink = pending.accept().await?;
        let timeout = self.config.slow_subscriber_timeout;
        tokio::spawn(async move {
            while let Some(block) = next_block(&sink, &mut blocks).await {
                let message = serde_json::value::to_raw_value(&block_info(&block.block))
                    .expect("block info serializes");
                if sink.send_timeout(message, timeout).await.is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    async fn event_subscribe(
        &self,
        pending: PendingSubscriptionSink,
        filter: EventFilter,
    ) -> SubscriptionResult {
        let (contract, topics) = match filter_parts(&filter) {
            Ok(parts) => parts,
            Err(problem) => {
                pending.reject(problem).await;
                return Ok(());
            }
        };
        let mut blocks = self.chain.subscribe();
        let sink = pending.accept().await?;
        let timeout = self.config.slow_subscriber_timeout;
        tokio::spawn(async move {
            'blocks: while let Some(block) = next_block(&sink, &mut blocks).await {
                for receipt in &block.receipts {
                    for (n, event) in receipt.events.iter().enumerate() {
                        if !matches(contract.as_ref(), &topics, event) {
                            continue;
                        }
                        let info =
                            EventInfo::new(event, Some((receipt.height, receipt.index, n as u32)));
                        let message =
                            serde_json::value::to_raw_value(&info).expect("events serialize");
                        if sink.send_timeout(message, timeout).await.is_err() {
                            break 'blocks;
                        }
                    }
                }
            }
        });
        Ok(())
    }

    async fn tx_subscribe_status(
        &self,
        pending: PendingSubscriptionSink,
        hash: String,
    ) -> SubscriptionResult {
        let hash = match parse_hash("hash", &hash) {
            Ok(hash) => hash,
            Err(problem) => {
                pending.reject(problem).await;
                return Ok(());
            }
        };
        let mut blocks = self.chain.subscribe();
        let sink = pending.accept().await?;
        let first = self.status(&hash)?;
        let done = first.receipt.is_some();
        let message = serde_json::value::to_raw_value(&first).expect("status serializes");
        sink.send(message).await?;
        if done {
            return Ok(());
        }
        tokio::spawn(async move {
            while let Some(block) = next_block(&sink, &mut blocks).await {
                if let Some(receipt) = block.receipts.iter().find(|r| r.tx_hash == hash) {
                    let status = executed(&hash, ReceiptInfo::from(receipt));
                    let message = serde_json::value::to_raw_value(&status).expect("serializes");
                    let _ = sink.send(message).await;
                    break;
                }
            }
        });
        Ok(())
    }
}

/// The next executed block for a subscriber, or `None` when it left, the
/// node stops, or it fell too far behind (it is then dropped).
async fn next_block(
    sink: &jsonrpsee::server::SubscriptionSink,
    blocks: &mut tokio::sync::broadcast::Receiver<Arc<ExecutedBlock>>,
) -> Option<Arc<ExecutedBlock>> {
    tokio::select! {
        _ = sink.closed() => None,
        received = blocks.recv() => received.ok(),
    }
}

/// A running server.
pub struct RpcServer {
    /// Stops the server.
    pub handle: ServerHandle,
    /// The address it listens on.
    pub addr: SocketAddr,
}

/// Starts the server on `config.addr` (port 0 picks a free port).
pub async fn start(
    chain: Arc<Chain>,
    ordering: Arc<dyn Ordering>,
    config: RpcConfig,
) -> std::io::Result<RpcServer> {
    let metrics_chain = chain.clone();
    let engine = ordering.name();
    let http = tower::ServiceBuilder::new().layer(MetricsLayer::new(Arc::new(move || {
        crate::metrics::render(&metrics_chain, engine)
    })));
    let server_config = ServerConfig::builder()
        .max_request_body_size(config.max_request_body_bytes)
        .max_response_body_size(config.max_response_body_bytes)
        .max_connections(config.max_connections)
        .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_len))
        .build();
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(http)
        .build(config.addr)
        .await?;
    let addr = server.local_addr()?;
    let mut module = Rpc::new(chain, ordering, config).into_rpc();
    let document = openrpc::document(&module);
    module
        .register_method("rpc.discover", move |_, _, _| document.clone())
        .map_err(|problem| std::io::Error::other(problem.to_string()))?;
    let handle = server.start(module);
    Ok(RpcServer { handle, addr })
}
