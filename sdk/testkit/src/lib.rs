//! Test Stele contracts natively, against the real runtime.
//!
//! A [`TestKit`] is a chain in a box: the production runtime (validation,
//! metering, caches), in-memory state, a block height and a clock. Deploy
//! any number of contracts, call them as any account through their typed
//! clients, advance time, and read gas, events, logs and storage:
//!
//! ```no_run
//! use stele_testkit::TestKit;
//!
//! let kit = TestKit::new();
//! let alice = kit.account("alice");
//! // `fungible-token` is built to wasm (release profile) on first use.
//! let token = kit.deploy_crate("fungible-token", alice, &("Gold".to_string(), "GLD".to_string(), 2u8, 1_000u128));
//! let balance: u128 = kit.call(alice, token, "balance", &(alice,)).unwrap();
//! assert_eq!(balance, 1_000);
//! kit.print_gas_table();
//! ```
//!
//! A failed call returns the contract's own message (`TokenError::
//! InsufficientBalance: balance too low`), so `unwrap()` in a test prints
//! what went wrong. Host faults are bugs of the host and panic.

pub mod build;

use std::cell::RefCell;
use std::collections::BTreeMap;

use stele_host_api::spec::ContractSpec;
use stele_host_api::{Address, Event as RawEvent, status};
use stele_runtime::{
    Call, Context, Deploy, MemoryStorage, Outcome, Runtime, RuntimeConfig, Storage, TrapKind,
};
use stele_sdk::codec::{self, Decode, Encode};
use stele_sdk::{Backend, CallError};

/// Default gas limit of each call.
pub const DEFAULT_GAS_LIMIT: u64 = 1_000_000_000;

/// Gas figures of one method, over every call made in a test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GasStat {
    /// Calls made.
    pub calls: u64,
    /// Fewest gas used.
    pub min: u64,
    /// Most gas used.
    pub max: u64,
    /// Total gas used.
    pub total: u64,
}

/// What the last call produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Gas used.
    pub gas_used: u64,
    /// Events, in order.
    pub events: Vec<RawEvent>,
    /// Debug log lines.
    pub logs: Vec<String>,
    /// Raw return data.
    pub return_data: Vec<u8>,
    /// The failure, if any.
    pub error: Option<CallError>,
}

struct Inner {
    state: MemoryStorage,
    height: u64,
    time_ms: u64,
    n_txs: u64,
    n_contracts: u64,
    gas_limit: u64,
    labels: BTreeMap<Address, String>,
    gas: BTreeMap<(String, String), GasStat>,
    last: Receipt,
}

/// The real runtime with in-memory state, a height and a clock.
pub struct TestKit {
    runtime: Runtime,
    inner: RefCell<Inner>,
}

impl Default for TestKit {
    fn default() -> Self {
        Self::new()
    }
}

/// One account calling through a typed client: `Client::new(address,
/// kit.caller(alice))`.
#[derive(Clone, Copy)]
pub struct Caller<'kit> {
    kit: &'kit TestKit,
    account: Address,
}

impl Backend for Caller<'_> {
    fn call(&self, contract: &Address, method: &str, input: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.kit.call_raw(self.account, *contract, method, input)
    }
}

impl TestKit {
    /// A fresh chain at height 1, time 2024-01-01T00:00:00Z.
    pub fn new() -> Self {
        let runtime = Runtime::new(RuntimeConfig {
            instance_slots: 32,
            ..RuntimeConfig::default()
        })
        .expect("the runtime starts");
        TestKit {
            runtime,
            inner: RefCell::new(Inner {
                state: MemoryStorage::new(),
                height: 1,
                time_ms: 1_704_067_200_000,
                n_txs: 0,
                n_contracts: 0,
                gas_limit: DEFAULT_GAS_LIMIT,
                labels: BTreeMap::new(),
                gas: BTreeMap::new(),
                last: Receipt::default(),
            }),
        }
    }

    /// The runtime underneath.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A deterministic account address for `name`.
    pub fn account(&self, name: &str) -> Address {
        Address(*blake3::hash(format!("stele-testkit account {name}").as_bytes()).as_bytes())
    }

    /// Sets the gas limit of later calls.
    pub fn set_gas_limit(&self, gas_limit: u64) {
        self.inner.borrow_mut().gas_limit = gas_limit;
    }

    /// Gives `account` native coin.
    pub fn fund(&self, account: Address, amount: u128) {
        let key = stele_runtime::storage::keys::balance(&account);
        let balance = self.balance(account) + amount;
        self.inner
            .borrow_mut()
            .state
            .insert(key, stele_runtime::storage::encode_balance(balance));
    }

    /// Native balance of `account`.
    pub fn balance(&self, account: Address) -> u128 {
        stele_runtime::storage::balance_of(&self.inner.borrow().state, &account)
            .expect("memory storage")
    }

    /// Current block height.
    pub fn height(&self) -> u64 {
        self.inner.borrow().height
    }

    /// Current block time, milliseconds since the Unix epoch.
    pub fn time_ms(&self) -> u64 {
        self.inner.borrow().time_ms
    }

    /// Moves the chain forward by `blocks` blocks and `ms` milliseconds.
    pub fn advance(&self, blocks: u64, ms: u64) {
        let mut inner = self.inner.borrow_mut();
        inner.height += blocks;
        inner.time_ms += ms;
    }

    fn context(inner: &mut Inner, origin: Address) -> Context {
        inner.n_txs += 1;
        let tx_hash = *blake3::hash(&inner.n_txs.to_le_bytes()).as_bytes();
        Context {
            block_height: inner.height,
            block_time_ms: inner.time_ms,
            origin,
            tx_hash,
        }
    }

    /// Deploys `wasm` under a readable `label`, running `init` with
    /// `init_args` (an argument tuple, encoded by `stele_sdk::codec`) when given.
    pub fn deploy<A: Encode>(
        &self,
        label: &str,
        wasm: &[u8],
        deployer: Address,
        init_args: Option<&A>,
    ) -> Result<Address, CallError> {
        let mut inner = self.inner.borrow_mut();
        inner.n_contracts += 1;
        let address = Address(
            *blake3::hash(format!("stele-testkit contract {}", inner.n_contracts).as_bytes())
                .as_bytes(),
        );
        let ctx = Self::context(&mut inner, deployer);
        let deploy = Deploy {
            deployer,
            address,
            code: wasm.to_vec(),
            init_input: init_args.map(codec::to_vec),
            gas_limit: u64::MAX / 2,
        };
        let outcome = self
            .runtime
            .deploy(&inner.state, &ctx, &deploy)
            .unwrap_or_else(|fault| panic!("{fault}"));
        inner.labels.insert(address, label.to_string());
        Self::record(&mut inner, label, "(deploy)", &outcome);
        match outcome.trap {
            None => {
                inner.state.apply(&outcome.writes);
                Ok(address)
            }
            Some(trap) => Err(call_error(&trap)),
        }
    }

    /// Builds the contract crate `package` to wasm (once per process) and
    /// deploys it with `init_args`; panics with the reason if either fails.
    pub fn deploy_crate<A: Encode>(
        &self,
        package: &str,
        deployer: Address,
        init_args: &A,
    ) -> Address {
        let wasm = build::contract_wasm(package).unwrap_or_else(|error| panic!("{error}"));
        self.deploy(package, &wasm, deployer, Some(init_args))
            .unwrap_or_else(|error| panic!("deploying {package} failed: {error}"))
    }

    /// An account as a typed client's backend.
    pub fn caller(&self, account: Address) -> Caller<'_> {
        Caller { kit: self, account }
    }

    /// Calls `method` with an argument tuple and decodes the result.
    pub fn call<A: Encode, R: Decode>(
        &self,
        caller: Address,
        contract: Address,
        method: &str,
        args: &A,
    ) -> Result<R, CallError> {
        let reply = self.call_raw(caller, contract, method, codec::to_vec(args))?;
        codec::from_slice(&reply).ok_or_else(CallError::bad_reply)
    }

    /// Calls `method` with raw input; successful calls are committed.
    pub fn call_raw(
        &self,
        caller: Address,
        contract: Address,
        method: &str,
        input: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let mut inner = self.inner.borrow_mut();
        let ctx = Self::context(&mut inner, caller);
        let call = Call {
            caller,
            contract,
            method: method.to_string(),
            input,
            gas_limit: inner.gas_limit,
        };
        let outcome = self
            .runtime
            .call(&inner.state, &ctx, &call)
            .unwrap_or_else(|fault| panic!("{fault}"));
        let label = inner
            .labels
            .get(&contract)
            .cloned()
            .unwrap_or_else(|| contract.to_string());
        Self::record(&mut inner, &label, method, &outcome);
        match &outcome.trap {
            None => {
                inner.state.apply(&outcome.writes);
                Ok(outcome.return_data)
            }
            Some(trap) => Err(call_error(trap)),
        }
    }

    fn record(inner: &mut Inner, label: &str, method: &str, outcome: &Outcome) {
        let stat = inner
            .gas
            .entry((label.to_string(), method.to_string()))
            .or_default();
        stat.min = if stat.calls == 0 {
            outcome.gas_used
        } else {
            stat.min.min(outcome.gas_used)
        };
        stat.max = stat.max.max(outcome.gas_used);
        stat.total += outcome.gas_used;
        stat.calls += 1;
        inner.last = Receipt {
            gas_used: outcome.gas_used,
            events: outcome.events.clone(),
            logs: outcome.logs.clone(),
            return_data: outcome.return_data.clone(),
            error: outcome.trap.as_ref().map(call_error),
        };
    }

    /// What the last call or deployment produced.
    pub fn last(&self) -> Receipt {
        self.inner.borrow().last.clone()
    }

    /// Gas the last call used.
    pub fn last_gas(&self) -> u64 {
        self.inner.borrow().last.gas_used
    }

    /// Whether the last call emitted `event` (same topics and data).
    pub fn emitted<E: stele_sdk::Event>(&self, event: &E) -> bool {
        let (topics, data) = (event.topics(), event.data());
        self.inner
            .borrow()
            .last
            .events
            .iter()
            .any(|raw| raw.topics == topics && raw.data == data)
    }

    /// A raw entry of `contract`'s storage.
    pub fn storage(&self, contract: Address, key: &[u8]) -> Option<Vec<u8>> {
        let key = stele_runtime::storage::keys::contract_storage(&contract, key);
        self.inner.borrow().state.get(&key).expect("memory storage")
    }

    /// The spec embedded in `contract`'s code.
    pub fn spec(&self, contract: Address) -> ContractSpec {
        let inner = self.inner.borrow();
        let code_hash = inner
            .state
            .get(&stele_runtime::storage::keys::contract(&contract))
            .expect("memory storage");
        let code_hash =
            stele_host_api::CodeHash(code_hash.expect("a contract").try_into().expect("32 bytes"));
        let code = inner
            .state
            .get(&stele_runtime::storage::keys::code(&code_hash))
            .expect("memory storage");
        stele_runtime::spec::read(&code.expect("code"))
            .expect("a readable spec")
            .unwrap_or_default()
    }

    /// Gas per method over every call so far.
    pub fn gas_stats(&self) -> BTreeMap<(String, String), GasStat> {
        self.inner.borrow().gas.clone()
    }

    /// The per-method gas table, as text.
    pub fn gas_table(&self) -> String {
        let mut table = format!(
            "{:<18} {:<22} {:>6} {:>12} {:>12} {:>12}\n",
            "contract", "method", "calls", "min gas", "avg gas", "max gas"
        );
        for ((contract, method), stat) in &self.inner.borrow().gas {
            let average = stat.total / stat.calls.max(1);
            table.push_str(&format!(
                "{contract:<18} {method:<22} {:>6} {:>12} {average:>12} {:>12}\n",
                stat.calls, stat.min, stat.max
            ));
        }
        table
    }

    /// Prints the gas table (shown with `cargo test -- --nocapture`).
    pub fn print_gas_table(&self) {
        println!("{}", self.gas_table());
    }
}

fn call_error(trap: &stele_runtime::Trap) -> CallError {
    let status = match trap.kind {
        TrapKind::NotAContract => status::NOT_A_CONTRACT,
        TrapKind::MethodNotFound => status::METHOD_NOT_FOUND,
        _ => status::CALLEE_FAILED,
    };
    CallError {
        status,
        message: trap.caller_message(),
    }
}
