//! Runtime benchmarks (bench target `runtime`):
//!
//! * `runtime::call/cached` — a deployed contract called through the runtime
//!   (module from the in-memory cache): reads its input, one storage read,
//!   one write, returns 32 bytes; `runtime::call/bare_wasmtime` — the same
//!   wasm on plain wasmtime (pooling, `InstancePre`, no metering, trivial
//!   host functions): the floor.
//! * `runtime::compute/metered` and `/unmetered` — heapsort of 10,000
//!   integers in linear memory, then FNV-1a over them: branchy and
//!   memory-bound, so metering cost shows.
//! * `runtime::deploy/kb=64` and `/kb=512` — validate, instrument, compile
//!   and cache (memory and disk) a never-seen module.
//! * `runtime::gas_rate/<case>` — hostile item 15: the worst cases for wall
//!   time per gas; throughput is reported in gas per second.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use stele_benches::{bare::Bare, fixture, module_of_size};
use stele_host_api::Address;
use stele_runtime::{Call, Context, Deploy, MemoryStorage, Runtime, RuntimeConfig};

const CALLER: Address = Address([0xa1; 32]);

fn deployed(runtime: &Runtime, code: Vec<u8>) -> (MemoryStorage, Address) {
    let mut storage = MemoryStorage::new();
    let address = Address([1; 32]);
    let deploy = Deploy {
        deployer: CALLER,
        address,
        code,
        init_input: None,
        gas_limit: u64::MAX,
    };
    let outcome = runtime
        .deploy(&storage, &Context::default(), &deploy)
        .expect("no host fault");
    assert!(outcome.is_success(), "{:?}", outcome.trap);
    storage.apply(&outcome.writes);
    (storage, address)
}

fn call(contract: Address, method: &str, input: &[u8], gas_limit: u64) -> Call {
    Call {
        caller: CALLER,
        contract,
        method: method.into(),
        input: input.to_vec(),
        gas_limit,
    }
}

fn call_benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let (storage, contract) = deployed(&runtime, fixture("store"));
    let ctx = Context::default();
    let request = call(contract, "run", &[7; 32], 10_000_000);
    let bare = Bare::new(&fixture("store"));
    // Both must do the same work.
    let ours = runtime.call(&storage, &ctx, &request).unwrap();
    assert!(ours.is_success());
    assert_eq!(ours.return_data.len(), 32);
    assert_eq!(bare.call("run", &[7; 32]).len(), 32);

    let mut group = c.benchmark_group("runtime::call");
    group.bench_function("cached", |b| {
        b.iter(|| black_box(runtime.call(&storage, &ctx, &request).unwrap()))
    });
    group.bench_function("bare_wasmtime", |b| {
        b.iter(|| black_box(bare.call("run", &[7; 32])))
    });
    group.finish();
}

fn compute_benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let (storage, contract) = deployed(&runtime, fixture("compute"));
    let ctx = Context::default();
    let request = call(contract, "sort", &[], u64::MAX / 2);
    let bare = Bare::new(&fixture("compute"));
    let metered = runtime.call(&storage, &ctx, &request).unwrap();
    assert_eq!(
        metered.return_data,
        bare.call("sort", &[]),
        "same result metered and not"
    );
    println!("runtime::compute: the sort uses {} gas", metered.gas_used);

    let mut group = c.benchmark_group("runtime::compute");
    group.sample_size(30);
    group.bench_function("metered", |b| {
        b.iter(|| black_box(runtime.call(&storage, &ctx, &request).unwrap()))
    });
    group.bench_function("unmetered", |b| {
        b.iter(|| black_box(bare.call("sort", &[])))
    });
    group.finish();
}

fn deploy_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().into()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let salt = AtomicU64::new(1);
    let mut group = c.benchmark_group("runtime::deploy");
    group.sample_size(10);
    for kib in [64, 512] {
        let size = module_of_size(kib, 0).len();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("kb={kib}"), |b| {
            b.iter_batched(
                || module_of_size(kib, salt.fetch_add(1, Ordering::Relaxed)),
                |code| black_box(runtime.prepare(&code).expect("valid module")),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn gas_rate_benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let (storage, contract) = deployed(&runtime, fixture("worst"));
    let ctx = Context::default();
    const GAS: u64 = 20_000_000;
    let mut group = c.benchmark_group("runtime::gas_rate");
    group.sample_size(20);
    group.throughput(Throughput::Elements(GAS));
    for method in [
        "branchy",
        "memory_heavy",
        "host_cheap",
        "host_storage",
        "host_hash",
    ] {
        let request = call(contract, method, &[], GAS);
        let outcome = runtime.call(&storage, &ctx, &request).unwrap();
        assert_eq!(outcome.gas_used, GAS, "{method} runs out of gas");
        group.bench_function(method, |b| {
            b.iter(|| black_box(runtime.call(&storage, &ctx, &request).unwrap()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = call_benches, compute_benches, deploy_benches, gas_rate_benches
}
criterion_main!(benches);
