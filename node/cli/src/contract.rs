//! `stele contract …`, `stele tx …` and `stele events`.

use std::path::Path;

use anyhow::{Context, bail};
use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::http_client::HttpClient;
use serde_json::{Value, json};
use stele_host_api::spec::{ContractSpec, MethodSpec};
use stele_rpc::SteleApiClient;
use stele_rpc::types::{EventFilter, EventInfo};
use stele_rpc::values;
use stele_runtime::{Runtime, RuntimeConfig};
use stele_types::{Action, parse_address};

use crate::client::{RpcContext, build_tx, describe, http, send_and_wait};
use crate::output::print;
use crate::{Remote, Signing, keys};

/// Builds contracts with the contract release settings and prints sizes.
pub fn build(dir: &Path, package: Option<&str>, json: bool) -> anyhow::Result<()> {
    let spinner = crate::output::spinner(json, "building contracts");
    let workspace = stele_testkit::build::workspace_at(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let packages: Vec<String> = match package {
        Some(name) => {
            if !workspace.contracts.iter().any(|contract| contract == name) {
                bail!(
                    "`{name}` is not a contract of {} (contracts: {})",
                    workspace.root.display(),
                    workspace.contracts.join(", ")
                );
            }
            vec![name.to_string()]
        }
        None => workspace.contracts.clone(),
    };
    if packages.is_empty() {
        bail!(
            "no contracts in {} (a contract is a cdylib package depending on stele-sdk)",
            workspace.root.display()
        );
    }
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let mut built = Vec::new();
    for name in &packages {
        spinner.set_message(format!("building {name}"));
        let path = stele_testkit::build::build_in(&workspace, name, &[])
            .map_err(|error| anyhow::anyhow!("{name}: {error}"))?;
        let wasm = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let info = runtime
            .validate(&wasm)
            .map_err(|error| anyhow::anyhow!("{name} is not valid contract code: {error}"))?;
        built.push(json!({
            "contract": name, "bytes": wasm.len(), "methods": info.methods.len(),
            "path": path.display().to_string(),
        }));
    }
    spinner.finish_and_clear();
    print(json, &Value::Array(built.clone()), || {
        let mut lines = vec![format!(
            "{:<20} {:>9} {:>8}  path",
            "contract", "bytes", "methods"
        )];
        for entry in &built {
            lines.push(format!(
                "{:<20} {:>9} {:>8}  {}",
                entry["contract"].as_str().unwrap_or_default(),
                entry["bytes"].as_u64().unwrap_or_default(),
                entry["methods"].as_u64().unwrap_or_default(),
                entry["path"].as_str().unwrap_or_default()
            ));
        }
        lines.join("\n")
    });
    Ok(())
}

fn read_spec(wasm: &[u8]) -> anyhow::Result<Option<ContractSpec>> {
    stele_runtime::spec::read(wasm).map_err(|error| anyhow::anyhow!("{error}"))
}

fn spec_lines(spec: &ContractSpec) -> Vec<String> {
    let mut lines = vec![format!("contract {}", spec.name)];
    for method in &spec.methods {
        let args: Vec<String> = method
            .args
            .iter()
            .map(|arg| format!("{}: {}", arg.name, arg.ty))
            .collect();
        lines.push(format!(
            "  {:?} {}({}) -> {}",
            method.kind,
            method.name,
            args.join(", "),
            method.returns
        ));
    }
    for event in &spec.events {
        lines.push(format!("  event {}", event.name));
    }
    lines
}

/// Validates a wasm file and shows its spec.
pub fn check(path: &Path, json: bool) -> anyhow::Result<()> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let info = runtime
        .validate(&wasm)
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    let spec = read_spec(&wasm)?;
    let value = json!({
        "bytes": wasm.len(),
        "code_hash": hex::encode(blake3::hash(&wasm).as_bytes()),
        "methods": info.methods.len(),
        "spec": spec.as_ref().map(values::spec_json),
    });
    print(json, &value, || {
        let mut lines = vec![format!(
            "{}: valid, {} bytes, {} methods, code hash {}",
            path.display(),
            wasm.len(),
            info.methods.len(),
            value["code_hash"].as_str().unwrap_or_default()
        )];
        if let Some(spec) = &spec {
            lines.extend(spec_lines(spec));
        }
        lines.join("\n")
    });
    Ok(())
}

fn method_spec<'a>(spec: Option<&'a ContractSpec>, method: &str) -> anyhow::Result<&'a MethodSpec> {
    let spec = spec.context("the contract has no embedded spec; pass arguments as hex")?;
    spec.method(method).with_context(|| {
        let names: Vec<&str> = spec.methods.iter().map(|m| m.name.as_str()).collect();
        format!(
            "the contract has no method `{method}` (methods: {})",
            names.join(", ")
        )
    })
}

fn encode_args(
    spec: Option<&ContractSpec>,
    method: &str,
    args: Option<String>,
    args_hex: Option<String>,
) -> anyhow::Result<Vec<u8>> {
    if let Some(hex_text) = args_hex {
        return hex::decode(hex_text.trim_start_matches("0x")).context("--args-hex is not hex");
    }
    let method = method_spec(spec, method)?;
    let value: Value = match args {
        Some(text) => serde_json::from_str(&text).context("--args is not JSON")?,
        None => Value::Null,
    };
    values::encode_args(method, &value).map_err(|problem| anyhow::anyhow!("{problem}"))
}

async fn remote_spec(client: &HttpClient, contract: &str) -> anyhow::Result<Option<ContractSpec>> {
    let code = client.contract_get_code(contract.to_string()).await.rpc()?;
    let wasm = hex::decode(&code.code).context("code is not hex")?;
    read_spec(&wasm)
}

fn decoded_return(spec: Option<&ContractSpec>, method: &str, data_hex: &str) -> Value {
    let bytes = hex::decode(data_hex).unwrap_or_default();
    spec.and_then(|spec| spec.method(method))
        .and_then(|method| values::decode_all(&method.returns, &bytes).ok())
        .unwrap_or_else(|| Value::String(data_hex.to_string()))
}

/// Deploys a wasm file.
pub async fn deploy(
    remote: &Remote,
    signing: &Signing,
    path: &Path,
    init: Option<String>,
    init_hex: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = read_spec(&wasm)?;
    let init_args = if init.is_some() || init_hex.is_some() {
        Some(encode_args(spec.as_ref(), "init", init, init_hex)?)
    } else if spec
        .as_ref()
        .and_then(|spec| spec.method("init"))
        .is_some_and(|method| method.args.is_empty())
    {
        Some(Vec::new())
    } else {
        None
    };
    let key = keys::load(&remote.data_dir, &signing.key)?;
    let client = http(remote)?;
    let tx = build_tx(
        &client,
        &key,
        vec![Action::Deploy {
            code: wasm,
            init_args,
        }],
        signing.gas,
    )
    .await?;
    let receipt = send_and_wait(&client, &tx, json).await?;
    if receipt.status != "success" {
        bail!("{}", describe(&receipt));
    }
    print(json, &serde_json::to_value(&receipt)?, || {
        format!(
            "deployed {}\n{}",
            receipt.deployed.first().cloned().unwrap_or_default(),
            describe(&receipt)
        )
    });
    Ok(())
}

/// The spec of a deployed contract and a call action with encoded arguments.
async fn call_action(
    client: &HttpClient,
    contract: &str,
    method: &str,
    args: Option<String>,
    args_hex: Option<String>,
) -> anyhow::Result<(Option<ContractSpec>, Action)> {
    let address = parse_address(contract)?;
    let spec = remote_spec(client, contract).await?;
    let input = encode_args(spec.as_ref(), method, args, args_hex)?;
    let action = Action::Call {
        contract: address,
        method: method.into(),
        args: input,
    };
    Ok((spec, action))
}

/// Calls a method in a transaction.
pub async fn invoke(
    remote: &Remote,
    signing: &Signing,
    contract: &str,
    method: &str,
    args: Option<String>,
    args_hex: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let key = keys::load(&remote.data_dir, &signing.key)?;
    let client = http(remote)?;
    let (spec, action) = call_action(&client, contract, method, args, args_hex).await?;
    let tx = build_tx(&client, &key, vec![action], signing.gas).await?;
    let receipt = send_and_wait(&client, &tx, json).await?;
    let returned = decoded_return(spec.as_ref(), method, &receipt.return_data);
    let mut value = serde_json::to_value(&receipt)?;
    value["returned"] = returned.clone();
    print(json, &value, || {
        format!("{}\n  returned {returned}", describe(&receipt))
    });
    if receipt.status != "success" {
        std::process::exit(1);
    }
    Ok(())
}

/// Calls a method read-only.
pub async fn view(
    remote: &Remote,
    contract: &str,
    method: &str,
    args: Option<String>,
    args_hex: Option<String>,
    height: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    parse_address(contract)?;
    let client = http(remote)?;
    let spec = remote_spec(&client, contract).await?;
    let input = encode_args(spec.as_ref(), method, args, args_hex)?;
    let result = client
        .contract_call(contract.into(), method.into(), hex::encode(input), height)
        .await
        .rpc()?;
    if let Some(error) = &result.error {
        bail!("{error}");
    }
    let returned = decoded_return(spec.as_ref(), method, &result.return_data);
    print(
        json,
        &json!({"returned": returned, "return_data": result.return_data, "gas_used": result.gas_used}),
        || match &returned {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        },
    );
    Ok(())
}

/// Shows a deployed contract's spec.
pub async fn spec(remote: &Remote, contract: &str, json: bool) -> anyhow::Result<()> {
    let client = http(remote)?;
    let value = client.contract_get_spec(contract.into()).await.rpc()?;
    let spec = remote_spec(&client, contract).await?;
    print(json, &value, || {
        spec.as_ref()
            .map(|spec| spec_lines(spec).join("\n"))
            .unwrap_or_default()
    });
    Ok(())
}

/// Sends native coin.
pub async fn send(
    remote: &Remote,
    signing: &Signing,
    to: &str,
    amount: u128,
    json: bool,
) -> anyhow::Result<()> {
    let to = parse_address(to)?;
    let key = keys::load(&remote.data_dir, &signing.key)?;
    let client = http(remote)?;
    let tx = build_tx(
        &client,
        &key,
        vec![Action::Transfer { to, amount }],
        signing.gas,
    )
    .await?;
    let receipt = send_and_wait(&client, &tx, json).await?;
    print(json, &serde_json::to_value(&receipt)?, || {
        describe(&receipt)
    });
    if receipt.status != "success" {
        std::process::exit(1);
    }
    Ok(())
}

/// Shows a transaction.
pub async fn get(remote: &Remote, hash: &str, json: bool) -> anyhow::Result<()> {
    let client = http(remote)?;
    let status = client.tx_get(hash.into()).await.rpc()?;
    print(json, &serde_json::to_value(&status)?, || {
        match &status.receipt {
            Some(receipt) => describe(receipt),
            None => format!("transaction {}: {}", status.hash, status.status),
        }
    });
    Ok(())
}

/// Simulates a call as a transaction.
pub async fn simulate(
    remote: &Remote,
    signing: &Signing,
    contract: &str,
    method: &str,
    args: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let key = keys::load(&remote.data_dir, &signing.key)?;
    let client = http(remote)?;
    let (spec, action) = call_action(&client, contract, method, args, None).await?;
    // A fixed limit, not an estimate: simulating is how one learns the gas.
    let gas = signing.gas.unwrap_or(1_000_000_000);
    let tx = build_tx(&client, &key, vec![action], Some(gas)).await?;
    let receipt = client
        .tx_simulate(hex::encode(stele_types::encode_transaction(&tx)))
        .await
        .rpc()?;
    let returned = decoded_return(spec.as_ref(), method, &receipt.return_data);
    let mut value = serde_json::to_value(&receipt)?;
    value["returned"] = returned.clone();
    print(json, &value, || {
        format!(
            "{}\n  returned {returned} (simulated, nothing committed)",
            describe(&receipt)
        )
    });
    Ok(())
}

fn event_line(event: &EventInfo) -> String {
    format!(
        "height {} tx {} #{}  topics [{}] data {}",
        event.height.unwrap_or_default(),
        event.tx_index.unwrap_or_default(),
        event.event_index.unwrap_or_default(),
        event.topics.join(", "),
        event.data
    )
}

/// Lists a contract's events, then follows new ones.
pub async fn events(
    remote: &Remote,
    contract: &str,
    topics: Vec<String>,
    from: Option<u64>,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    parse_address(contract)?;
    let filter = EventFilter {
        contract: Some(contract.into()),
        topics,
        from_height: from,
        ..EventFilter::default()
    };
    let show = |event: &EventInfo| {
        print(
            json,
            &serde_json::to_value(event).expect("serializes"),
            || event_line(event),
        )
    };
    // Subscribe first so nothing falls between the query and the stream.
    let ws = if follow {
        Some(crate::client::ws(&remote.rpc).await?)
    } else {
        None
    };
    let mut subscription = match &ws {
        Some(ws) => Some(
            ws.subscribe::<EventInfo, _>(
                "event_subscribe",
                jsonrpsee::rpc_params![filter.clone()],
                "event_unsubscribe",
            )
            .await
            .rpc()?,
        ),
        None => None,
    };
    let client = http(remote)?;
    let tip = client.chain_get_info().await.rpc()?.height;
    let mut page_filter = filter.clone();
    page_filter.to_height = Some(tip);
    loop {
        let page = client.event_query(page_filter.clone()).await.rpc()?;
        for event in &page.events {
            show(event);
        }
        match page.next_cursor {
            Some(cursor) => page_filter.cursor = Some(cursor),
            None => break,
        }
    }
    if let Some(subscription) = subscription.as_mut() {
        while let Some(event) = subscription.next().await {
            let event = event.context("the event stream failed")?;
            if event.height.unwrap_or_default() > tip {
                show(&event);
            }
        }
    }
    Ok(())
}
