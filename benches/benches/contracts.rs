//! Contract benchmarks (bench target `contracts`):
//!
//! * `contracts::token/transfer` — one fungible-token `transfer` through the
//!   runtime (module from the memory cache) against in-memory state, its
//!   writes committed, per call.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use stele_host_api::Address;
use stele_runtime::{Call, Context, Deploy, MemoryStorage, Runtime, RuntimeConfig};

fn token_benches(c: &mut Criterion) {
    let wasm =
        stele_testkit::build::contract_wasm("fungible-token").expect("fungible-token builds");
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let mut state = MemoryStorage::new();
    let (admin, token) = (Address([0xad; 32]), Address([0x70; 32]));
    let init = borsh::to_vec(&("Gold".to_string(), "GLD".to_string(), 6u8, u128::MAX / 2)).unwrap();
    let deploy = Deploy {
        deployer: admin,
        address: token,
        code: wasm,
        init_input: Some(init),
        gas_limit: u64::MAX / 2,
    };
    let ctx = Context {
        origin: admin,
        ..Context::default()
    };
    let deployed = runtime.deploy(&state, &ctx, &deploy).unwrap();
    assert!(deployed.is_success(), "{:?}", deployed.trap);
    state.apply(&deployed.writes);

    let recipients: Vec<Address> = (0..1024u32)
        .map(|n| Address(*blake3::hash(&n.to_le_bytes()).as_bytes()))
        .collect();
    let mut next = 0usize;
    let mut transfer = |state: &mut MemoryStorage| {
        let to = recipients[next % recipients.len()];
        next += 1;
        let input = borsh::to_vec(&(to, 1u128)).unwrap();
        let call = Call {
            caller: admin,
            contract: token,
            method: "transfer".into(),
            input,
            gas_limit: 10_000_000,
        };
        let outcome = runtime.call(state, &ctx, &call).unwrap();
        debug_assert!(outcome.is_success());
        state.apply(&outcome.writes);
        outcome.gas_used
    };
    let gas = transfer(&mut state);
    println!("contracts::token/transfer uses {gas} gas per transfer");

    let mut group = c.benchmark_group("contracts::token");
    group.bench_function("transfer", |b| b.iter(|| black_box(transfer(&mut state))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = token_benches
}
criterion_main!(benches);
