//! The API as a jsonrpsee trait: the server implements it, and the macro
//! generates the typed client (`SteleApiClient`).

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;

use crate::types::{
    AccountInfo, BlockInfo, CallResult, ChainInfo, CodeInfo, ConsensusStatus, EventFilter,
    EventInfo, EventPage, Health, ReceiptInfo, StatePage, StateValue, TxStatus, VersionInfo, Wait,
};

/// Every method and subscription of a Stele node.
#[rpc(server, client)]
pub trait SteleApi {
    /// Chain id, tip, roots, gas price, engine.
    #[method(name = "chain_getInfo")]
    async fn chain_get_info(&self) -> RpcResult<ChainInfo>;

    /// Whether the node is up and not halted.
    #[method(name = "chain_getHealth")]
    async fn chain_get_health(&self) -> RpcResult<Health>;

    /// A block by height (the tip when omitted).
    #[method(name = "chain_getBlock")]
    async fn chain_get_block(&self, height: Option<u64>) -> RpcResult<BlockInfo>;

    /// Submits a borsh-encoded signed transaction (hex) and waits as asked.
    #[method(name = "tx_send")]
    async fn tx_send(&self, tx: String, wait: Option<Wait>) -> RpcResult<TxStatus>;

    /// A transaction's status and receipt.
    #[method(name = "tx_get")]
    async fn tx_get(&self, hash: String) -> RpcResult<TxStatus>;

    /// Executes a transaction against the latest state without committing.
    #[method(name = "tx_simulate")]
    async fn tx_simulate(&self, tx: String) -> RpcResult<ReceiptInfo>;

    /// The gas a transaction would use.
    #[method(name = "tx_estimateGas")]
    async fn tx_estimate_gas(&self, tx: String) -> RpcResult<u64>;

    /// Calls a method read-only (borsh arguments in hex) at a height.
    #[method(name = "contract_call")]
    async fn contract_call(
        &self,
        contract: String,
        method: String,
        args: String,
        height: Option<u64>,
    ) -> RpcResult<CallResult>;

    /// A contract's code.
    #[method(name = "contract_getCode")]
    async fn contract_get_code(&self, contract: String) -> RpcResult<CodeInfo>;

    /// A contract's embedded spec (methods, events, errors).
    #[method(name = "contract_getSpec")]
    async fn contract_get_spec(&self, contract: String) -> RpcResult<serde_json::Value>;

    /// A state value with its proof at a height (the tip when omitted).
    #[method(name = "state_get")]
    async fn state_get(&self, key: String, height: Option<u64>) -> RpcResult<StateValue>;

    /// State entries under a prefix, paginated.
    #[method(name = "state_list")]
    async fn state_list(
        &self,
        prefix: String,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<StatePage>;

    /// An account's balance, nonce and contract facts.
    #[method(name = "account_get")]
    async fn account_get(&self, address: String) -> RpcResult<AccountInfo>;

    /// A contract's events, filtered by topics and heights, paginated.
    #[method(name = "event_query")]
    async fn event_query(&self, filter: EventFilter) -> RpcResult<EventPage>;

    /// The ordering engine's view of the cluster.
    #[method(name = "consensus_status")]
    async fn consensus_status(&self) -> RpcResult<ConsensusStatus>;

    /// Node software version.
    #[method(name = "node_getVersion")]
    async fn node_get_version(&self) -> RpcResult<VersionInfo>;

    /// New block headers as they execute.
    #[subscription(name = "chain_subscribeHeads" => "chain_head", unsubscribe = "chain_unsubscribeHeads", item = BlockInfo)]
    async fn chain_subscribe_heads(&self) -> SubscriptionResult;

    /// Events matching a filter as they happen.
    #[subscription(name = "event_subscribe" => "event_event", unsubscribe = "event_unsubscribe", item = EventInfo)]
    async fn event_subscribe(&self, filter: EventFilter) -> SubscriptionResult;

    /// A transaction's status changes until it executes.
    #[subscription(name = "tx_subscribeStatus" => "tx_status", unsubscribe = "tx_unsubscribeStatus", item = TxStatus)]
    async fn tx_subscribe_status(&self, hash: String) -> SubscriptionResult;
}
