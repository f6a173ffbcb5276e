//! Determinism: one module and input give an identical outcome (return
//! data, gas, writes, events) after a fresh compile, from the disk cache and
//! from the memory cache; NaN bits are canonical (a golden hash).

use stele_runtime::{Call, Outcome, Runtime, RuntimeConfig};

use crate::harness::{ALICE, Chain, address, fixture, runtime_with};

/// Enough gas for the sort.
const GAS: u64 = 1_000_000_000;

/// The contracts and calls compared across cache paths.
fn calls() -> Vec<(u8, &'static str, Vec<u8>)> {
    vec![
        (1, "run", b"determinism".to_vec()),
        (2, "nan", vec![]),
        (3, "env", vec![]),
        (
            3,
            "emit",
            [[1u8; 32], [2u8; 32]]
                .concat()
                .into_iter()
                .chain(*b"data")
                .collect(),
        ),
        (4, "sort", vec![]),
    ]
}

fn run_all(runtime: &Runtime, chain: &Chain) -> Vec<Outcome> {
    calls()
        .into_iter()
        .map(|(n, method, input)| {
            let call = Call {
                caller: ALICE,
                contract: address(n),
                method: method.into(),
                input,
                gas_limit: GAS,
            };
            runtime
                .call(&chain.storage, &chain.ctx, &call)
                .expect("no host fault")
        })
        .collect()
}

#[test]
fn fresh_compile_disk_cache_and_memory_cache_give_identical_outcomes() {
    // State is set up by a runtime the others never see.
    let mut chain = Chain::new();
    for (n, name) in [(1, "store"), (2, "nan"), (3, "sink"), (4, "compute")] {
        chain.deploy(n, &fixture(name));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };

    let compiling = runtime_with(config());
    let fresh = run_all(&compiling, &chain);
    assert_eq!(compiling.cache_stats().compiles, 4);
    assert_eq!(compiling.cache_stats().disk_hits, 0);

    let from_memory = run_all(&compiling, &chain);
    assert_eq!(compiling.cache_stats().compiles, 4, "served from memory");
    assert!(compiling.cache_stats().memory_hits >= 5);

    let loading = runtime_with(config());
    let from_disk = run_all(&loading, &chain);
    assert_eq!(loading.cache_stats().compiles, 0, "served from disk");
    assert_eq!(loading.cache_stats().disk_hits, 4);

    for outcome in &fresh {
        assert!(outcome.is_success(), "{:?}", outcome.trap);
        assert!(outcome.gas_used > 0);
    }
    assert!(!fresh[0].writes.is_empty() && !fresh[3].events.is_empty());
    assert_eq!(fresh, from_memory);
    assert_eq!(fresh, from_disk);
}

/// The canonical quiet NaNs wasmtime produces for arithmetic.
const F32_NAN: u32 = 0x7fc0_0000;
const F64_NAN: u64 = 0x7ff8_0000_0000_0000;

/// BLAKE3 of the bytes `nan` returns; changing it is a consensus change.
const NAN_GOLDEN_HASH: &str = "0b4c8642f0187d56a4f711c3b535afda26e6fc12f9304255966d7cb7e4dc325f";

#[test]
fn nan_producing_float_ops_hash_to_the_golden_value() {
    let mut expected = Vec::new();
    // 12 arithmetic f32 results, then neg, abs and copysign keep payloads.
    for _ in 0..12 {
        expected.extend_from_slice(&F32_NAN.to_le_bytes());
    }
    for bits in [0xffa0_0000u32, 0x7f80_0001, 0xffa0_0000, 0] {
        expected.extend_from_slice(&bits.to_le_bytes());
    }
    for _ in 0..8 {
        expected.extend_from_slice(&F64_NAN.to_le_bytes());
    }
    expected.extend_from_slice(&0xfff4_0000_0000_0001u64.to_le_bytes());

    for _ in 0..2 {
        let mut chain = Chain::new();
        let contract = chain.deploy(1, &fixture("nan"));
        let outcome = chain.call(contract, "nan", &[]);
        assert!(outcome.is_success(), "{:?}", outcome.trap);
        assert_eq!(outcome.return_data, expected);
        assert_eq!(
            blake3::hash(&outcome.return_data).to_hex().as_str(),
            NAN_GOLDEN_HASH
        );
    }
}
