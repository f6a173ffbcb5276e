//! The OpenRPC document describes exactly the methods the server registers.

use std::sync::Arc;

use stele_chain::{Chain, ChainConfig, Genesis};
use stele_consensus::solo::{Solo, SoloConfig};
use stele_rpc::{Rpc, RpcConfig, SteleApiServer, openrpc};

#[test]
fn the_document_lists_every_registered_method_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = Genesis {
        chain_id: "doc".into(),
        genesis_time_ms: 0,
        gas_price_min: "0".into(),
        accounts: vec![],
        deploy_allow_list: None,
        consensus: None,
    };
    let chain = Chain::open(ChainConfig::new(dir.path()), genesis.parse().unwrap()).unwrap();
    let solo = Solo::start(SoloConfig::default(), chain.clone()).unwrap();
    let module = Rpc::new(chain, Arc::new(solo), RpcConfig::default()).into_rpc();
    let described = openrpc::described_methods();
    let mut registered: Vec<&str> = module.method_names().collect();
    registered.push("rpc.discover");
    registered.sort_unstable();
    let mut expected = described.clone();
    expected.sort_unstable();
    assert_eq!(registered, expected);
    let document = openrpc::document(&module);
    let names: Vec<&str> = document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|method| method["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), described.len());
    for method in [
        "chain_getInfo",
        "tx_send",
        "state_get",
        "event_subscribe",
        "rpc.discover",
    ] {
        assert!(names.contains(&method), "{method} is described");
    }
}
