//! Deploys a contract into the runtime, calls it, and prints the return
//! value, events and gas.
//!
//! Run with `cargo run --release -p stele-examples --bin runtime-quickstart`.

use stele_host_api::Address;
use stele_runtime::{Call, Context, Deploy, MemoryStorage, Runtime, RuntimeConfig};

fn main() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime starts");
    let code = wat::parse_str(include_str!("greeter.wat")).expect("greeter.wat is valid text");
    let mut state = MemoryStorage::new();
    let alice = Address([0xa1; 32]);
    let greeter = Address([0x01; 32]);
    let ctx = Context {
        block_height: 1,
        block_time_ms: 1_700_000_000_000,
        origin: alice,
        tx_hash: [0; 32],
    };

    let deploy = Deploy {
        deployer: alice,
        address: greeter,
        code,
        init_input: None,
        gas_limit: 1_000_000_000,
    };
    let deployed = runtime
        .deploy(&state, &ctx, &deploy)
        .expect("no host fault");
    assert!(
        deployed.is_success(),
        "deployment failed: {:?}",
        deployed.trap
    );
    state.apply(&deployed.writes);
    println!(
        "deployed the greeter at {greeter} for {} gas",
        deployed.gas_used
    );

    for name in ["Ada", "Grace"] {
        let call = Call {
            caller: alice,
            contract: greeter,
            method: "greet".into(),
            input: name.into(),
            gas_limit: 1_000_000,
        };
        let outcome = runtime.call(&state, &ctx, &call).expect("no host fault");
        if let Some(trap) = &outcome.trap {
            eprintln!("greet({name}) trapped: {trap}");
            std::process::exit(1);
        }
        state.apply(&outcome.writes);
        println!("greet({name:?})");
        println!(
            "  returned {:?}",
            String::from_utf8_lossy(&outcome.return_data)
        );
        for event in &outcome.events {
            let topic: String = event.topics[0]
                .iter()
                .take(4)
                .map(|byte| format!("{byte:02x}"))
                .collect();
            println!(
                "  event from {}: topic {topic}…, data {:?}",
                event.contract,
                String::from_utf8_lossy(&event.data)
            );
        }
        println!(
            "  gas used {} of {}; {} state writes",
            outcome.gas_used,
            call.gas_limit,
            outcome.writes.len()
        );
    }
}
