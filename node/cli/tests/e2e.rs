//! End to end with the real binary: a dev node on 127.0.0.1, the CLI, JSON-RPC
//! over HTTP and WebSocket, a verified proof, and SIGKILL recovery.

mod common;

use std::time::Duration;

use common::{Node, free_port, repo_root};
use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use stele_rpc::SteleApiClient;
use stele_rpc::types::{EventFilter, EventInfo, Wait};
use stele_types::parse_address;

fn text(value: &serde_json::Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no `{field}` in {value}"))
        .to_string()
}

#[test]
fn dev_node_deploy_transfer_prove_subscribe_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let port = free_port();
    let mut node = Node::start(&data_dir, port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = node.client();

    // Build fungible-token through the CLI, deploy it with JSON init args.
    let root = repo_root();
    let built = node.cli(&[
        "contract",
        "build",
        root.to_str().unwrap(),
        "--package",
        "fungible-token",
    ]);
    let wasm = text(&built[0], "path");
    let checked = node.cli(&["contract", "check", &wasm]);
    assert!(checked["methods"].as_u64().unwrap() >= 10, "{checked}");
    let deployed = node.cli(&[
        "contract",
        "deploy",
        &wasm,
        "--init",
        r#"{"name":"Token","symbol":"TOK","decimals":2,"initial_supply":"1000000"}"#,
    ]);
    assert_eq!(text(&deployed, "status"), "success", "{deployed}");
    let token = deployed["deployed"][0].as_str().unwrap().to_string();
    let token_address = parse_address(&token).unwrap();

    let bob = text(&node.cli(&["keys", "generate", "bob"]), "address");
    let dev = text(&node.cli(&["keys", "show", "dev"]), "address");

    // Subscribe to the token's events before transferring.
    let ws = runtime
        .block_on(WsClientBuilder::default().build(node.ws_url()))
        .unwrap();
    let filter = EventFilter {
        contract: Some(token.clone()),
        ..EventFilter::default()
    };
    let mut events = runtime
        .block_on(ws.subscribe::<EventInfo, _>(
            "event_subscribe",
            rpc_params![filter.clone()],
            "event_unsubscribe",
        ))
        .unwrap();

    let args = format!(r#"{{"to":"{bob}","amount":"250"}}"#);
    let transfer = node.cli(&["contract", "invoke", &token, "transfer", "--args", &args]);
    assert_eq!(text(&transfer, "status"), "success", "{transfer}");
    let transfer_hash = text(&transfer, "tx_hash");
    let event = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), events.next()).await })
        .expect("the transfer event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(event.contract, token);
    assert_eq!(event.height, transfer["height"].as_u64());
    assert!(
        event.data.contains(&hex::encode(250u128.to_le_bytes())),
        "the event carries the amount: {event:?}"
    );

    // The balance, read-only and as a proven state value.
    let view = node.cli(&[
        "contract",
        "view",
        &token,
        "balance",
        "--args",
        &format!(r#"["{bob}"]"#),
    ]);
    assert_eq!(view["returned"], "250");
    let bob_address = parse_address(&bob).unwrap();
    let mut map_key = vec![5u8]; // `balances` is the token's sixth field.
    map_key.extend_from_slice(&bob_address.0);
    let key = stele_runtime::storage::keys::contract_storage(&token_address, &map_key);
    let proven = runtime
        .block_on(client.state_get(hex::encode(&key), None))
        .unwrap();
    let value = hex::decode(proven.value.as_ref().expect("bob has a balance")).unwrap();
    assert_eq!(value, 250u128.to_le_bytes());
    let root: [u8; 32] = hex::decode(&proven.root).unwrap().try_into().unwrap();
    let proof = stele_state::Proof::from_bytes(&hex::decode(&proven.proof).unwrap()).unwrap();
    proof
        .verify(&root, &key, Some(&value))
        .expect("the proof verifies");
    let mut forged = value.clone();
    forged[0] ^= 1;
    assert!(proof.verify(&root, &key, Some(&forged)).is_err());
    // The next block's header carries this root.
    let next = runtime.block_on(async {
        loop {
            match client.chain_get_block(Some(proven.height + 1)).await {
                Ok(block) => break block,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    assert_eq!(next.state_root, proven.root);

    // Acknowledged transactions, then SIGKILL while more are in flight.
    let mut acknowledged = vec![text(&deployed, "tx_hash"), transfer_hash];
    let dev_key_bytes = std::fs::read_to_string(data_dir.join("keys/dev.json")).unwrap();
    let dev_key: serde_json::Value = serde_json::from_str(&dev_key_bytes).unwrap();
    let secret: [u8; 32] = hex::decode(text(&dev_key, "secret_key"))
        .unwrap()
        .try_into()
        .unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let info = runtime.block_on(client.chain_get_info()).unwrap();
    let mut nonce = runtime
        .block_on(client.account_get(dev.clone()))
        .unwrap()
        .nonce;
    let mut sign_transfer = |amount: u128| {
        let mut args = bob_address.0.to_vec();
        args.extend_from_slice(&amount.to_le_bytes());
        let tx = stele_types::Transaction {
            chain_id: info.chain_id.clone(),
            signer: parse_address(&dev).unwrap(),
            nonce,
            gas_limit: 500_000,
            gas_price: 0,
            actions: vec![stele_types::Action::Call {
                contract: token_address,
                method: "transfer".into(),
                args,
            }],
        }
        .sign(&signing);
        nonce += 1;
        hex::encode(stele_types::encode_transaction(&tx))
    };
    for amount in 1..=5 {
        let status = runtime
            .block_on(client.tx_send(sign_transfer(amount), Some(Wait::Executed)))
            .unwrap();
        assert_eq!(status.receipt.as_ref().unwrap().status, "success");
        acknowledged.push(status.hash);
    }
    for amount in 6..=40 {
        // Admitted, maybe executed: not acknowledged.
        runtime
            .block_on(client.tx_send(sign_transfer(amount), Some(Wait::None)))
            .unwrap();
    }
    let before = runtime.block_on(client.chain_get_info()).unwrap();
    node.kill();

    let data_dir = node.data_dir.clone();
    drop(node);
    let node = Node::start(&data_dir, port);
    assert!(
        node.startup < Duration::from_secs(2),
        "chain_getHealth answered {:?} after the restart",
        node.startup
    );
    let client = node.client();
    let after = runtime.block_on(client.chain_get_info()).unwrap();
    assert!(after.height >= before.height);
    let proven_then = runtime
        .block_on(client.state_get(hex::encode(&key), Some(before.height)))
        .unwrap();
    assert_eq!(
        proven_then.root, before.state_root,
        "same root at the height seen before the kill"
    );
    for hash in &acknowledged {
        let status = runtime.block_on(client.tx_get(hash.clone())).unwrap();
        assert_eq!(
            status.status, "executed",
            "acknowledged {hash} survives SIGKILL"
        );
    }
    // Blocks keep coming after the restart.
    let later = runtime.block_on(async {
        loop {
            let info = client.chain_get_info().await.unwrap();
            if info.height > after.height + 2 {
                break info;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(later.height > after.height);
    // Metrics are served beside JSON-RPC.
    let metrics = http_get(node.port, "/metrics");
    assert!(metrics.contains("stele_height"), "{metrics}");
    assert!(metrics.contains("stele_mempool_transactions"), "{metrics}");
    let _ = dir;
}

/// A plain HTTP GET on 127.0.0.1; returns the whole response.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn node_init_writes_a_genesis_that_a_plain_start_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cluster");
    let funded = stele_types::format_address(&stele_host_api::Address([7; 32]));
    let run = |args: &[&str]| {
        std::process::Command::new(common::STELE)
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap()
    };
    // A bad funding entry names the problem.
    let refused = run(&[
        "node",
        "init",
        "--chain-id",
        "c1",
        "--fund",
        "not-an-address=5",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("accounts[0].address"));
    assert!(!data_dir.exists(), "a refused init writes nothing");

    let out = run(&[
        "--json",
        "node",
        "init",
        "--chain-id",
        "c1",
        "--fund",
        &format!("{funded}=77"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let genesis: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(genesis["chain_id"], "c1");
    assert_eq!(genesis["accounts"][0]["balance"], "77");
    let again = run(&["node", "init", "--chain-id", "c1"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let keys = run(&["--json", "keys", "list"]);
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).unwrap();
    assert_eq!(keys[0]["name"], "node");

    // `node start` without --dev runs it.
    let port = free_port();
    let child = std::process::Command::new(common::STELE)
        .args(["node", "start", "--rpc-addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data_dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut node = Node {
        child,
        data_dir: data_dir.clone(),
        port,
        log: dir.path().join("none.log"),
        startup: Duration::ZERO,
    };
    node.wait_healthy(Duration::from_secs(60));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = node.client();
    assert_eq!(
        runtime.block_on(client.chain_get_info()).unwrap().chain_id,
        "c1"
    );
    let account = runtime
        .block_on(client.account_get(funded.clone()))
        .unwrap();
    assert_eq!(account.balance, "77");
}
