//! Shared helpers: fixtures, a runtime, and a tiny chain over memory storage.

use std::path::PathBuf;

use stele_host_api::Address;
use stele_runtime::{Call, Context, Deploy, MemoryStorage, Outcome, Runtime, RuntimeConfig};

/// Gas for ordinary test calls.
pub const GAS: u64 = 10_000_000;

/// The wasm of `tests/fixtures/<name>.wat`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|error| panic!("fixture {name}: {error}"))
}

/// A runtime with a small instance pool, as tests create many.
pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::new(RuntimeConfig {
        instance_slots: 16,
        ..config
    })
    .expect("runtime builds")
}

pub fn address(n: u8) -> Address {
    Address([n; 32])
}

/// The account tests call from.
pub const ALICE: Address = Address([0xa1; 32]);

/// A runtime and the state it executes against; successful calls commit.
pub struct Chain {
    pub runtime: Runtime,
    pub storage: MemoryStorage,
    pub ctx: Context,
}

impl Chain {
    pub fn new() -> Self {
        Self::with_runtime(runtime())
    }

    pub fn with_runtime(runtime: Runtime) -> Self {
        let ctx = Context {
            block_height: 7,
            block_time_ms: 1_700_000_000_000,
            origin: ALICE,
            tx_hash: [0x7a; 32],
        };
        Chain {
            runtime,
            storage: MemoryStorage::new(),
            ctx,
        }
    }

    /// Deploys `code` at `address(n)` without `init`; returns the outcome.
    pub fn try_deploy(&mut self, n: u8, code: &[u8]) -> Outcome {
        let deploy = Deploy {
            deployer: ALICE,
            address: address(n),
            code: code.to_vec(),
            init_input: None,
            gas_limit: 10_000_000_000,
        };
        let outcome = self
            .runtime
            .deploy(&self.storage, &self.ctx, &deploy)
            .expect("no host fault");
        self.storage.apply(&outcome.writes);
        outcome
    }

    /// Deploys `code` at `address(n)`, which must succeed.
    pub fn deploy(&mut self, n: u8, code: &[u8]) -> Address {
        let outcome = self.try_deploy(n, code);
        assert!(outcome.is_success(), "deploy failed: {:?}", outcome.trap);
        address(n)
    }

    pub fn call(&mut self, contract: Address, method: &str, input: &[u8]) -> Outcome {
        self.call_with_gas(contract, method, input, GAS)
    }

    pub fn call_with_gas(
        &mut self,
        contract: Address,
        method: &str,
        input: &[u8],
        gas_limit: u64,
    ) -> Outcome {
        let call = Call {
            caller: ALICE,
            contract,
            method: method.into(),
            input: input.to_vec(),
            gas_limit,
        };
        let outcome = self
            .runtime
            .call(&self.storage, &self.ctx, &call)
            .expect("no host fault");
        self.storage.apply(&outcome.writes);
        outcome
    }

    /// Sets a native balance directly in state.
    pub fn fund(&mut self, account: Address, amount: u128) {
        self.storage.insert(
            stele_runtime::storage::keys::balance(&account),
            amount.to_le_bytes().to_vec(),
        );
    }
}
