//! Architecture invariants that can be checked mechanically.

/// `runtime` knows nothing of RocksDB, tokio, networking or consensus.
#[test]
fn the_runtime_depends_on_no_storage_engine_network_or_consensus_crate() {
    let manifest = include_str!("../../Cargo.toml");
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table");
    let dependencies = dependencies.split("\n[").next().unwrap_or_default();
    for forbidden in [
        "rocksdb",
        "tokio",
        "jsonrpsee",
        "hyper",
        "openraft",
        "commonware",
        "stele-state",
        "stele-chain",
    ] {
        assert!(
            !dependencies
                .lines()
                .any(|line| line.trim_start().starts_with(forbidden)),
            "stele-runtime must not depend on {forbidden}"
        );
    }
    assert!(
        dependencies.contains("wasmtime"),
        "the check reads the right table"
    );
}
