//! Hostile 6 and the compile-once rule: the disk cache never serves code
//! compiled under another gas schedule, never trusts a damaged file, and
//! concurrent callers of one new module compile it once.

use std::fs;

use stele_runtime::{Call, GAS_SCHEDULE_V2, GasSchedule, Runtime, RuntimeConfig};

use crate::harness::{ALICE, Chain, GAS, address, fixture, runtime_with};

fn chain_with_store() -> Chain {
    let mut chain = Chain::new();
    chain.deploy(1, &fixture("store"));
    chain
}

fn call_store(runtime: &Runtime, chain: &Chain) -> stele_runtime::Outcome {
    let call = Call {
        caller: ALICE,
        contract: address(1),
        method: "run".into(),
        input: b"x".to_vec(),
        gas_limit: GAS,
    };
    runtime
        .call(&chain.storage, &chain.ctx, &call)
        .expect("no host fault")
}

fn cached(dir: &std::path::Path, schedule: GasSchedule) -> Runtime {
    runtime_with(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        schedule,
        ..RuntimeConfig::default()
    })
}

#[test]
fn a_gas_schedule_change_invalidates_every_cached_module() {
    let chain = chain_with_store();
    let dir = tempfile::tempdir().unwrap();
    let v1 = cached(dir.path(), GAS_SCHEDULE_V2);
    let v1_outcome = call_store(&v1, &chain);
    assert_eq!(v1.cache_stats().compiles, 1);

    let v2_schedule = GasSchedule {
        version: 2,
        storage_write_base: 6_000,
        ..GAS_SCHEDULE_V2
    };
    let v2 = cached(dir.path(), v2_schedule);
    let v2_outcome = call_store(&v2, &chain);
    assert_eq!(v2.cache_stats().disk_hits, 0, "v1 artifacts are not v2's");
    assert_eq!(v2.cache_stats().compiles, 1);
    assert_eq!(
        v2_outcome.gas_used,
        v1_outcome.gas_used + 1_000,
        "the new price applies"
    );

    // Each schedule finds its own artifact again.
    let v1_again = cached(dir.path(), GAS_SCHEDULE_V2);
    assert_eq!(call_store(&v1_again, &chain), v1_outcome);
    assert_eq!(v1_again.cache_stats().disk_hits, 1);
}

#[test]
fn corrupt_truncated_or_foreign_cache_files_are_recompiled() {
    let chain = chain_with_store();
    let dir = tempfile::tempdir().unwrap();
    let reference = call_store(&cached(dir.path(), GAS_SCHEDULE_V2), &chain);
    let files = || {
        fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect::<Vec<_>>()
    };
    assert_eq!(files().len(), 1);

    let damages: [(&str, fn(&mut Vec<u8>)); 4] = [
        ("flipped payload byte", |bytes| {
            *bytes.last_mut().unwrap() ^= 0x40
        }),
        ("truncated", |bytes| bytes.truncate(bytes.len() / 2)),
        ("empty", |bytes| bytes.clear()),
        ("valid header, garbage payload", |bytes| {
            let len = bytes.len();
            bytes[80..len].fill(0xcc);
        }),
    ];
    for (damage, apply) in damages {
        let path = &files()[0];
        let mut bytes = fs::read(path).unwrap();
        apply(&mut bytes);
        fs::write(path, &bytes).unwrap();

        let runtime = cached(dir.path(), GAS_SCHEDULE_V2);
        assert_eq!(call_store(&runtime, &chain), reference, "{damage}");
        let stats = runtime.cache_stats();
        assert_eq!(
            (stats.disk_rejects, stats.disk_hits, stats.compiles),
            (1, 0, 1),
            "{damage}"
        );
    }
    // The last recompilation rewrote a good file.
    let runtime = cached(dir.path(), GAS_SCHEDULE_V2);
    assert_eq!(call_store(&runtime, &chain), reference);
    assert_eq!(runtime.cache_stats().disk_hits, 1);
}

#[test]
fn concurrent_first_calls_compile_once() {
    let chain = chain_with_store();
    let runtime = runtime_with(RuntimeConfig::default());
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| call_store(&runtime, &chain)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert_eq!(runtime.cache_stats().compiles, 1);
    assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
}
