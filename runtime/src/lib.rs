//! The Stele contract runtime: deterministic, metered execution of wasm
//! contracts on wasmtime.
//!
//! A [`Runtime`] validates contract code against the limits of
//! [`stele_host_api::limits`], rewrites it for deterministic gas and stack
//! accounting ([`meter`], [`instrument`]), compiles it with Cranelift
//! (NaN-canonicalizing) and keeps it ready to instantiate in two caches (memory and disk). It
//! executes calls, deployments and native transfers against a [`Storage`]
//! and returns an [`Outcome`]: return data, events, gas used, and the state
//! writes for the caller to commit. A guest trap is an outcome; a
//! [`HostFault`] is an error that must never be committed.
//!
//! The runtime knows nothing of RocksDB, networking or consensus: a node
//! plugs its state in through [`Storage`].
//!
//! ```
//! use stele_runtime::{Call, Context, MemoryStorage, Runtime, RuntimeConfig};
//! use stele_host_api::Address;
//!
//! let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
//! let code = wat::parse_str(r#"(module
//!     (import "stele" "return_set" (func $ret (param i32 i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 0) "hi")
//!     (func (export "hello") (call $ret (i32.const 0) (i32.const 2))))"#).unwrap();
//! let mut storage = MemoryStorage::new();
//! let contract = Address([1; 32]);
//! let deployed = runtime
//!     .deploy(&storage, &Context::default(), &stele_runtime::Deploy {
//!         deployer: Address([2; 32]), address: contract, code, init_input: None,
//!         gas_limit: 100_000_000,
//!     })
//!     .unwrap();
//! storage.apply(&deployed.writes);
//! let call = Call { caller: Address([2; 32]), contract, method: "hello".into(),
//!     input: vec![], gas_limit: 1_000_000 };
//! let outcome = runtime.call(&storage, &Context::default(), &call).unwrap();
//! assert_eq!(outcome.return_data, b"hi");
//! ```
#![deny(missing_docs)]

mod cache;
mod callgraph;
mod engine;
mod exec;
mod host;
pub mod instrument;
pub mod meter;
mod outcome;
pub mod overlay;
pub mod schedule;
pub mod spec;
pub mod storage;
pub mod validate;

use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use stele_host_api::{Address, CodeHash, abi};
use thiserror::Error;
use wasmtime::{Engine, ExternType, Linker, Module};

pub use cache::CacheStats;
pub use engine::NATIVE_WASM_STACK_BYTES;
pub use outcome::{Call, Context, Deploy, HostFault, Outcome, Trap, TrapKind, Upgrade};
pub use schedule::{GAS_SCHEDULE_V2, GasSchedule};
pub use storage::{MemoryStorage, Storage, StorageError, WriteSet};
pub use validate::{ModuleInfo, ValidationError};

use cache::{Counters, DiskCache, ModuleCache};
use exec::{Entry, HostState, Invocation, Prepared, Stop, StorageRef, TxState, invoke};
use overlay::Overlay;
use storage::{decode_balance, encode_balance, keys};

/// Configuration of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Directory of the disk cache of compiled modules; `None` disables it.
    /// Default: `None`. The directory is trusted like the binary itself.
    pub cache_dir: Option<PathBuf>,
    /// Most modules kept ready in memory. Default: 256.
    pub module_cache_entries: usize,
    /// Instance slots of the pooling allocator: the most contract frames
    /// alive at once across all threads. Default: 128 (each slot reserves
    /// address space, not memory).
    pub instance_slots: u32,
    /// The gas schedule. Default: [`GAS_SCHEDULE_V2`].
    pub schedule: GasSchedule,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            module_cache_entries: 256,
            instance_slots: 128,
            schedule: GAS_SCHEDULE_V2,
        }
    }
}

impl RuntimeConfig {
    /// Checks the configuration, naming the field at fault.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if self.module_cache_entries == 0 {
            return Err(RuntimeError::Config(
                "module_cache_entries must be at least 1".into(),
            ));
        }
        if (self.instance_slots as usize) < stele_host_api::limits::CALL_DEPTH_MAX {
            return Err(RuntimeError::Config(format!(
                "instance_slots is {}, below CALL_DEPTH_MAX = {}",
                self.instance_slots,
                stele_host_api::limits::CALL_DEPTH_MAX
            )));
        }
        Ok(())
    }
}

/// Failure to set up a runtime.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A configuration value is out of range.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// wasmtime refused the engine configuration.
    #[error("engine setup failed: {0}")]
    Engine(String),
    /// The disk cache directory could not be created.
    #[error("cannot open the compiled-code cache at {path}: {error}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// Code that passed validation and compilation and is cached.
#[derive(Clone)]
pub struct PreparedCode {
    inner: Arc<Prepared>,
}

impl PreparedCode {
    /// BLAKE3 hash of the original code.
    pub fn code_hash(&self) -> CodeHash {
        self.inner.code_hash
    }

    /// Names of the callable methods, sorted (`init` and `migrate` included).
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.inner.methods.keys().map(String::as_str)
    }
}

/// The runtime: engine, host functions and code caches. Cheap to clone;
/// clones share everything. `Send + Sync`: calls may run on many threads.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    schedule: GasSchedule,
    modules: ModuleCache<Prepared>,
    disk: Option<DiskCache>,
    counters: Counters,
}

impl Runtime {
    /// Builds the engine and the caches.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        config.validate()?;
        let engine = engine::build(config.instance_slots)
            .map_err(|error| RuntimeError::Engine(error.to_string()))?;
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).map_err(|error| RuntimeError::Engine(error.to_string()))?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(
                DiskCache::open(dir, engine::fingerprint(&engine, &config.schedule)).map_err(
                    |error| RuntimeError::Cache {
                        path: dir.clone(),
                        error,
                    },
                )?,
            ),
            None => None,
        };
        let capacity = NonZeroUsize::new(config.module_cache_entries).expect("validated above");
        let inner = Inner {
            engine,
            linker,
            schedule: config.schedule,
            modules: ModuleCache::new(capacity),
            disk,
            counters: Counters::default(),
        };
        Ok(Runtime {
            inner: Arc::new(inner),
        })
    }

    /// The gas schedule in force.
    pub fn schedule(&self) -> &GasSchedule {
        &self.inner.schedule
    }

    /// Checks code against every deploy-time limit without compiling it.
    pub fn validate(&self, code: &[u8]) -> Result<ModuleInfo, ValidationError> {
        validate::validate(code, &self.inner.schedule)
    }

    /// Validates, instruments and compiles code, and caches the result in
    /// memory and on disk. Does not touch state.
    pub fn prepare(&self, code: &[u8]) -> Result<PreparedCode, PrepareError> {
        match self.inner.prepare_code(code) {
            Ok(inner) => Ok(PreparedCode { inner }),
            Err(Stop::Trap(trap)) => Err(PrepareError::Invalid(trap.message)),
            Err(Stop::Fault(message)) => Err(PrepareError::Fault(message)),
        }
    }

    /// Cache counters since start.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// Empties the in-memory module cache (the disk cache stays).
    pub fn clear_memory_cache(&self) {
        self.inner.modules.clear();
    }

    /// Executes a top-level method call.
    pub fn call(
        &self,
        storage: &dyn Storage,
        ctx: &Context,
        call: &Call,
    ) -> Result<Outcome, HostFault> {
        self.execute(storage, ctx, call.gas_limit, |tx| {
            let invocation = Invocation {
                caller: call.caller,
                contract: call.contract,
                method: &call.method,
                input: call.input.clone(),
                gas: call.gas_limit,
                stack_start: 0,
                entry: Entry::Method,
            };
            let (tx, invoked) = invoke(tx, invocation);
            (tx, invoked.result, invoked.gas_used)
        })
    }

    /// Deploys code at a fresh address and runs its `init` export if asked.
    pub fn deploy(
        &self,
        storage: &dyn Storage,
        ctx: &Context,
        deploy: &Deploy,
    ) -> Result<Outcome, HostFault> {
        self.execute(storage, ctx, deploy.gas_limit, |mut tx| {
            let schedule = &self.inner.schedule;
            let cost = schedule.deploy_base.saturating_add(
                schedule
                    .deploy_per_byte
                    .saturating_mul(deploy.code.len() as u64),
            );
            if cost > deploy.gas_limit {
                return (tx, Err(Stop::Trap(exec::out_of_gas())), deploy.gas_limit);
            }
            let result = (|| -> Result<(), Stop> {
                if tx.read(&keys::contract(&deploy.address))?.is_some() {
                    let message = format!("a contract already exists at {}", deploy.address);
                    return Err(Stop::Trap(Trap::new(TrapKind::ContractExists, message)));
                }
                let prepared = self.inner.prepare_code(&deploy.code)?;
                let code_key = keys::code(&prepared.code_hash);
                if tx.read(&code_key)?.is_none() {
                    tx.overlay.set(code_key, Some(deploy.code.clone()));
                }
                tx.overlay.set(
                    keys::contract(&deploy.address),
                    Some(prepared.code_hash.0.to_vec()),
                );
                Ok(())
            })();
            if let Err(stop) = result {
                return (tx, Err(stop), cost);
            }
            let Some(init_input) = &deploy.init_input else {
                return (tx, Ok(Vec::new()), cost);
            };
            let invocation = Invocation {
                caller: deploy.deployer,
                contract: deploy.address,
                method: abi::INIT_EXPORT,
                input: init_input.clone(),
                gas: deploy.gas_limit - cost,
                stack_start: 0,
                entry: Entry::Init,
            };
            let (tx, invoked) = invoke(tx, invocation);
            (tx, invoked.result, cost + invoked.gas_used)
        })
    }

    /// Replaces the code of an existing contract and runs the new code's
    /// `migrate` export when input is given and the export exists. Who may
    /// upgrade is the caller's decision (a node allows the deployer).
    pub fn upgrade(
        &self,
        storage: &dyn Storage,
        ctx: &Context,
        upgrade: &Upgrade,
    ) -> Result<Outcome, HostFault> {
        self.execute(storage, ctx, upgrade.gas_limit, |mut tx| {
            let schedule = &self.inner.schedule;
            let cost = schedule.deploy_base.saturating_add(
                schedule
                    .deploy_per_byte
                    .saturating_mul(upgrade.code.len() as u64),
            );
            if cost > upgrade.gas_limit {
                return (tx, Err(Stop::Trap(exec::out_of_gas())), upgrade.gas_limit);
            }
            let result = (|| -> Result<bool, Stop> {
                if tx.read(&keys::contract(&upgrade.contract))?.is_none() {
                    let message = format!("no contract at {}", upgrade.contract);
                    return Err(Stop::Trap(Trap::new(TrapKind::NotAContract, message)));
                }
                let prepared = self.inner.prepare_code(&upgrade.code)?;
                let code_key = keys::code(&prepared.code_hash);
                if tx.read(&code_key)?.is_none() {
                    tx.overlay.set(code_key, Some(upgrade.code.clone()));
                }
                tx.overlay.set(
                    keys::contract(&upgrade.contract),
                    Some(prepared.code_hash.0.to_vec()),
                );
                Ok(prepared.methods.contains_key(abi::MIGRATE_EXPORT))
            })();
            let migrates = match result {
                Ok(migrates) => migrates,
                Err(stop) => return (tx, Err(stop), cost),
            };
            let Some(input) = upgrade.migrate_input.as_ref().filter(|_| migrates) else {
                return (tx, Ok(Vec::new()), cost);
            };
            let invocation = Invocation {
                caller: upgrade.caller,
                contract: upgrade.contract,
                method: abi::MIGRATE_EXPORT,
                input: input.clone(),
                gas: upgrade.gas_limit - cost,
                stack_start: 0,
                entry: Entry::Migrate,
            };
            let (tx, invoked) = invoke(tx, invocation);
            (tx, invoked.result, cost + invoked.gas_used)
        })
    }

    /// Moves native coin between accounts.
    pub fn transfer(
        &self,
        storage: &dyn Storage,
        ctx: &Context,
        from: &Address,
        to: &Address,
        amount: u128,
        gas_limit: u64,
    ) -> Result<Outcome, HostFault> {
        self.execute(storage, ctx, gas_limit, |mut tx| {
            let cost = self.inner.schedule.transfer_base;
            if cost > gas_limit {
                return (tx, Err(Stop::Trap(exec::out_of_gas())), gas_limit);
            }
            let result = (|| -> Result<Vec<u8>, Stop> {
                let read = |tx: &TxState, address: &Address| -> Result<u128, Stop> {
                    match tx.read(&keys::balance(address))? {
                        Some(bytes) => Ok(decode_balance(&bytes)?),
                        None => Ok(0),
                    }
                };
                let from_balance = read(&tx, from)?;
                if from_balance < amount {
                    let message = format!("balance {from_balance} is less than {amount}");
                    return Err(Stop::Trap(Trap::new(
                        TrapKind::InsufficientBalance,
                        message,
                    )));
                }
                if from != to && amount > 0 {
                    let to_balance = read(&tx, to)?.checked_add(amount).ok_or_else(|| {
                        Stop::Trap(Trap::new(
                            TrapKind::HostLimit,
                            "transfer overflows the recipient's balance",
                        ))
                    })?;
                    tx.overlay.set(
                        keys::balance(from),
                        Some(encode_balance(from_balance - amount)),
                    );
                    tx.overlay
                        .set(keys::balance(to), Some(encode_balance(to_balance)));
                }
                Ok(Vec::new())
            })();
            (tx, result, cost)
        })
    }

    fn execute(
        &self,
        storage: &dyn Storage,
        ctx: &Context,
        gas_limit: u64,
        body: impl FnOnce(Box<TxState>) -> (Box<TxState>, Result<Vec<u8>, Stop>, u64),
    ) -> Result<Outcome, HostFault> {
        let tx = Box::new(TxState {
            runtime: self.inner.clone(),
            // SAFETY: the `TxState` is consumed below, before `storage`'s
            // borrow ends; on a panic it is dropped while unwinding out of
            // `body`, which `catch_unwind` contains within this function.
            storage: unsafe { StorageRef::new(storage) },
            ctx: ctx.clone(),
            overlay: Overlay::default(),
            events: Vec::new(),
            logs: Vec::new(),
            call_stack: Vec::new(),
        });
        let ran = catch_unwind(AssertUnwindSafe(|| body(tx)));
        let (tx, result, gas_used) = match ran {
            Ok(ran) => ran,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                return Err(HostFault {
                    message: format!("host panicked: {message}"),
                    gas_used: gas_limit,
                });
            }
        };
        let tx = *tx;
        match result {
            Ok(return_data) => Ok(Outcome {
                trap: None,
                return_data,
                events: tx.events,
                gas_used,
                writes: tx.overlay.into_writes(),
                logs: tx.logs,
            }),
            Err(Stop::Trap(trap)) => {
                let gas_used = if trap.kind == TrapKind::OutOfGas {
                    gas_limit
                } else {
                    gas_used
                };
                Ok(Outcome {
                    trap: Some(trap),
                    return_data: Vec::new(),
                    events: Vec::new(),
                    gas_used,
                    writes: WriteSet::new(),
                    logs: tx.logs,
                })
            }
            Err(Stop::Fault(message)) => Err(HostFault { message, gas_used }),
        }
    }
}

const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Runtime>();
};

/// Why [`Runtime::prepare`] refused code.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PrepareError {
    /// The code failed validation; the message names the limit or rule.
    #[error("invalid code: {0}")]
    Invalid(String),
    /// Compilation failed for a reason that is not the code's fault.
    #[error("host fault while preparing code: {0}")]
    Fault(String),
}

impl Inner {
    /// The prepared module for `code_hash`: from memory, from disk, or
    /// compiled from the code `code` returns.
    fn load(
        &self,
        code_hash: &CodeHash,
        code: impl FnOnce() -> Result<Vec<u8>, Stop>,
    ) -> Result<Arc<Prepared>, Stop> {
        let mut hit = false;
        let prepared = self.modules.get_or_load(*code_hash, &mut hit, || {
            if let Some(prepared) = self.load_from_disk(code_hash) {
                return Ok(prepared);
            }
            let code = code()?;
            self.compile(*code_hash, &code)
        })?;
        if hit {
            Counters::bump(&self.counters.memory_hits);
        }
        Ok(prepared)
    }

    fn load_from_disk(&self, code_hash: &CodeHash) -> Option<Arc<Prepared>> {
        let disk = self.disk.as_ref()?;
        let mut rejected = false;
        let payload = disk.load(code_hash, &mut rejected);
        if rejected {
            Counters::bump(&self.counters.disk_rejects);
        }
        // SAFETY: the payload was written by `Module::serialize` of an engine
        // with the same fingerprint (the key says so) and its BLAKE3 hash
        // matches, so it is the artifact we wrote, unmodified.
        let module = unsafe { Module::deserialize(&self.engine, payload?) };
        let prepared = module
            .ok()
            .and_then(|module| self.prepared(*code_hash, module).ok());
        match prepared {
            Some(prepared) => {
                Counters::bump(&self.counters.disk_hits);
                Some(Arc::new(prepared))
            }
            None => {
                Counters::bump(&self.counters.disk_rejects);
                None
            }
        }
    }

    /// Validates, instruments and compiles `code`, writing the artifact to
    /// the disk cache.
    fn compile(&self, code_hash: CodeHash, code: &[u8]) -> Result<Arc<Prepared>, Stop> {
        let info = validate::validate(code, &self.schedule)
            .map_err(|error| Stop::Trap(Trap::new(TrapKind::InvalidCode, error.to_string())))?;
        let instrumented = instrument::instrument(code, &info, &self.schedule)
            .map_err(|error| Stop::Fault(format!("instrumentation failed: {error:?}")))?;
        let module = Module::new(&self.engine, &instrumented)
            .map_err(|error| Stop::Fault(format!("compilation failed: {error}")))?;
        Counters::bump(&self.counters.compiles);
        if let Some(disk) = &self.disk {
            match module.serialize() {
                Ok(payload) => disk.store(&code_hash, &payload),
                Err(error) => tracing::warn!(%error, "could not serialize a compiled module"),
            }
        }
        self.prepared(code_hash, module)
            .map(Arc::new)
            .map_err(Stop::Fault)
    }

    /// Prepares `code` (validate, instrument, compile) under its hash, or
    /// returns the cached result.
    pub(crate) fn prepare_code(&self, code: &[u8]) -> Result<Arc<Prepared>, Stop> {
        // Refuse oversized code before hashing or caching anything.
        validate::validate_size(code)
            .map_err(|error| Stop::Trap(Trap::new(TrapKind::InvalidCode, error.to_string())))?;
        let code_hash = CodeHash(*blake3::hash(code).as_bytes());
        self.load(&code_hash, || Ok(code.to_vec()))
    }

    fn prepared(&self, code_hash: CodeHash, module: Module) -> Result<Prepared, String> {
        let instance_pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|error| error.to_string())?;
        let memory = module
            .get_export_index(abi::MEMORY_EXPORT)
            .ok_or("module exports no memory")?;
        let stack = module
            .get_export_index(instrument::STACK_GLOBAL_EXPORT)
            .ok_or("module lacks stack accounting")?;
        let gas = module
            .get_export_index(instrument::GAS_GLOBAL_EXPORT)
            .ok_or("module lacks gas accounting")?;
        let mut methods = std::collections::BTreeMap::new();
        for export in module.exports() {
            let ExternType::Func(ty) = export.ty() else {
                continue;
            };
            let name = export.name();
            if ty.params().len() == 0
                && ty.results().len() == 0
                && !name.starts_with(abi::RESERVED_EXPORT_PREFIX)
            {
                let index = module.get_export_index(name).ok_or("export vanished")?;
                methods.insert(name.to_string(), index);
            }
        }
        Ok(Prepared {
            code_hash,
            instance_pre,
            memory,
            stack,
            gas,
            methods,
        })
    }
}
