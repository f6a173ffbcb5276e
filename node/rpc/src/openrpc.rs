//! The OpenRPC document served at `rpc.discover`.

use jsonrpsee::RpcModule;
use serde_json::{Value, json};

/// `(name, summary, params as (name, schema, required), result schema)`.
type Entry = (
    &'static str,
    &'static str,
    Vec<(&'static str, Value, bool)>,
    Value,
);

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn integer(description: &str) -> Value {
    json!({"type": "integer", "minimum": 0, "description": description})
}

fn object(reference: &str) -> Value {
    json!({"type": "object", "title": reference})
}

fn entries() -> Vec<Entry> {
    let hex_tx = || string("borsh-encoded signed transaction, hex");
    let address = |what: &str| string(&format!("{what}, a stele1… address"));
    let height = || integer("block height; the tip when omitted");
    vec![
        (
            "chain_getInfo",
            "Chain id, tip, roots, gas price and engine.",
            vec![],
            object("ChainInfo"),
        ),
        (
            "chain_getHealth",
            "Whether the node is up and not halted.",
            vec![],
            object("Health"),
        ),
        (
            "chain_getBlock",
            "A block header and its transaction hashes.",
            vec![("height", height(), false)],
            object("BlockInfo"),
        ),
        (
            "tx_send",
            "Submits a transaction; waits for none, included, executed or final.",
            vec![
                ("tx", hex_tx(), true),
                (
                    "wait",
                    json!({"enum": ["none", "included", "executed", "final"]}),
                    false,
                ),
            ],
            object("TxStatus"),
        ),
        (
            "tx_get",
            "A transaction's status and receipt.",
            vec![("hash", string("transaction hash, hex"), true)],
            object("TxStatus"),
        ),
        (
            "tx_simulate",
            "Executes a transaction on the latest state without committing.",
            vec![("tx", hex_tx(), true)],
            object("ReceiptInfo"),
        ),
        (
            "tx_estimateGas",
            "The gas a transaction would use.",
            vec![("tx", hex_tx(), true)],
            integer("gas"),
        ),
        (
            "contract_call",
            "Calls a method read-only.",
            vec![
                ("contract", address("contract"), true),
                ("method", string("method name"), true),
                ("args", string("borsh arguments, hex"), true),
                ("height", height(), false),
            ],
            object("CallResult"),
        ),
        (
            "contract_getCode",
            "A contract's wasm code and code hash.",
            vec![("contract", address("contract"), true)],
            object("CodeInfo"),
        ),
        (
            "contract_getSpec",
            "A contract's embedded spec.",
            vec![("contract", address("contract"), true)],
            object("ContractSpec"),
        ),
        (
            "state_get",
            "A state value and its proof against the state root at a height.",
            vec![
                ("key", string("key, hex"), true),
                ("height", height(), false),
            ],
            object("StateValue"),
        ),
        (
            "state_list",
            "State entries under a prefix, paginated.",
            vec![
                ("prefix", string("prefix, hex"), true),
                ("cursor", string("next_cursor of the previous page"), false),
                ("limit", integer("page size, at most 1000"), false),
            ],
            object("StatePage"),
        ),
        (
            "account_get",
            "Balance, nonce and contract facts of an account.",
            vec![("address", address("account"), true)],
            object("AccountInfo"),
        ),
        (
            "event_query",
            "A contract's events by topics and heights, paginated.",
            vec![("filter", object("EventFilter"), true)],
            object("EventPage"),
        ),
        (
            "consensus_status",
            "The ordering engine's view: role, leader, term, members, commit index.",
            vec![],
            object("ConsensusStatus"),
        ),
        (
            "node_getVersion",
            "Node version, engine and gas schedule.",
            vec![],
            object("VersionInfo"),
        ),
        (
            "chain_subscribeHeads",
            "Subscription: executed block headers.",
            vec![],
            object("BlockInfo"),
        ),
        (
            "chain_unsubscribeHeads",
            "Ends a chain_subscribeHeads subscription.",
            vec![("subscription", string("subscription id"), true)],
            json!({"type": "boolean"}),
        ),
        (
            "event_subscribe",
            "Subscription: events matching a filter.",
            vec![("filter", object("EventFilter"), true)],
            object("EventInfo"),
        ),
        (
            "event_unsubscribe",
            "Ends an event_subscribe subscription.",
            vec![("subscription", string("subscription id"), true)],
            json!({"type": "boolean"}),
        ),
        (
            "tx_subscribeStatus",
            "Subscription: a transaction's status until it executes.",
            vec![("hash", string("transaction hash, hex"), true)],
            object("TxStatus"),
        ),
        (
            "tx_unsubscribeStatus",
            "Ends a tx_subscribeStatus subscription.",
            vec![("subscription", string("subscription id"), true)],
            json!({"type": "boolean"}),
        ),
        ("rpc.discover", "This document.", vec![], object("OpenRPC")),
    ]
}

/// The document for the methods registered in `module`. Every method of
/// the module must be described (a test checks both ways).
pub fn document<C>(module: &RpcModule<C>) -> Value {
    let described = entries();
    let methods: Vec<Value> = described
        .iter()
        .filter(|(name, ..)| *name == "rpc.discover" || module.method(name).is_some())
        .map(|(name, summary, params, result)| {
            json!({
                "name": name,
                "summary": summary,
                "params": params.iter().map(|(param, schema, required)| json!({
                    "name": param, "schema": schema, "required": required,
                })).collect::<Vec<_>>(),
                "result": {"name": "result", "schema": result},
            })
        })
        .collect();
    json!({
        "openrpc": "1.2.6",
        "info": {"title": "Stele node JSON-RPC", "version": env!("CARGO_PKG_VERSION")},
        "methods": methods,
    })
}

/// Names the document describes.
pub fn described_methods() -> Vec<&'static str> {
    entries().into_iter().map(|(name, ..)| name).collect()
}
