//! Execution of calls: frames, nested calls, upgrades and trap handling.
//!
//! A transaction's shared state ([`TxState`]: overlay, events, call stack)
//! lives in a box that moves into the store of whichever contract frame is
//! running, and back out when the frame ends. A nested call therefore needs
//! no locks and no shared references: the host function that makes the
//! call takes the box from its own store, runs the callee in a fresh store,
//! and puts the box back.

use std::sync::Arc;

use stele_host_api::limits::{
    MEMORY_BYTES_MAX, MEMORY_PAGE_BYTES, STACK_BYTES_MAX, TABLE_ELEMENTS_MAX,
};
use stele_host_api::{Address, CodeHash, Event, abi};
use wasmtime::{
    AsContextMut, Extern, Global, InstancePre, Memory, ModuleExport, ResourceLimiter, Store, Val,
};

use crate::Inner;
use crate::outcome::{Context, Trap, TrapKind};
use crate::overlay::Overlay;
use crate::storage::{Storage, StorageError, keys};

/// Why a frame stopped: a guest trap (an outcome) or a host fault (never
/// committed).
#[derive(Debug)]
pub(crate) enum Stop {
    Trap(Trap),
    Fault(String),
}

impl From<StorageError> for Stop {
    fn from(error: StorageError) -> Self {
        Stop::Fault(error.to_string())
    }
}

/// A host fault raised inside a host function, carried through wasm as an
/// error value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Fault(pub String);

/// A module ready to instantiate.
pub(crate) struct Prepared {
    pub code_hash: CodeHash,
    pub instance_pre: InstancePre<HostState>,
    pub memory: ModuleExport,
    pub stack: ModuleExport,
    pub gas: ModuleExport,
    /// Exported `[] -> []` functions by name, reserved names excluded.
    pub methods: std::collections::BTreeMap<String, ModuleExport>,
}

/// A reference to the caller's storage with its lifetime erased, so it can
/// sit in `Store` data (which must be `'static`).
#[derive(Clone, Copy)]
pub(crate) struct StorageRef(*const (dyn Storage + 'static));

impl StorageRef {
    /// # Safety
    /// The returned value must not be used after `storage`'s borrow ends.
    /// `Runtime::execute` upholds this: every `TxState` (the only holder)
    /// is dropped before it returns, on the normal path and when unwinding.
    pub unsafe fn new(storage: &dyn Storage) -> Self {
        // SAFETY: only the lifetime changes; see the function's contract.
        let storage: &'static dyn Storage = unsafe { std::mem::transmute(storage) };
        StorageRef(storage)
    }

    pub fn get(&self) -> &dyn Storage {
        // SAFETY: valid for as long as the `TxState` holding it (see `new`).
        unsafe { &*self.0 }
    }
}

/// State shared by every frame of one transaction.
pub(crate) struct TxState {
    pub runtime: Arc<Inner>,
    pub storage: StorageRef,
    pub ctx: Context,
    pub overlay: Overlay,
    pub events: Vec<Event>,
    pub logs: Vec<String>,
    /// Contracts currently executing, outermost first.
    pub call_stack: Vec<Address>,
}

impl TxState {
    pub fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.overlay.get(self.storage.get(), key)
    }
}

/// State of one contract frame.
#[derive(Default)]
pub(crate) struct Frame {
    pub contract: Address,
    pub caller: Address,
    pub input: Vec<u8>,
    pub return_data: Vec<u8>,
    /// Result of the frame's last `contract_call`.
    pub call_result: Vec<u8>,
    /// Code hash and migration input of a requested upgrade.
    pub upgrade: Option<(CodeHash, Vec<u8>)>,
}

/// The data of each store.
pub(crate) struct HostState {
    pub tx: Option<Box<TxState>>,
    pub frame: Frame,
    pub limiter: Limiter,
    pub memory: Option<Memory>,
    pub stack: Option<Global>,
    /// The frame's gas counter (gas left), injected by the instrumentation.
    pub gas: Option<Global>,
}

/// Gas left in the running frame's counter.
pub(crate) fn gas_left(mut store: impl AsContextMut<Data = HostState>) -> u64 {
    let counter = store
        .as_context()
        .data()
        .gas
        .expect("the gas counter is set before any call");
    match counter.get(&mut store) {
        // Negative only just before an out-of-gas trap.
        Val::I64(left) => left.max(0) as u64,
        _ => unreachable!("the gas counter is an i64"),
    }
}

/// Sets the gas left in the running frame's counter; `left` is at most
/// `i64::MAX` (see [`run_frame`]).
pub(crate) fn set_gas_left(
    mut store: impl AsContextMut<Data = HostState>,
    left: u64,
) -> wasmtime::Result<()> {
    let counter = store
        .as_context()
        .data()
        .gas
        .expect("the gas counter is set before any call");
    let left = i64::try_from(left).unwrap_or(i64::MAX);
    counter.set(&mut store, Val::I64(left))
}

impl HostState {
    pub fn tx(&self) -> &TxState {
        self.tx
            .as_deref()
            .expect("transaction state is present while a frame runs")
    }

    pub fn tx_mut(&mut self) -> &mut TxState {
        self.tx
            .as_deref_mut()
            .expect("transaction state is present while a frame runs")
    }
}

/// Enforces the memory and table limits, and prices memory growth (the
/// limiter cannot reach the gas counter, so the price is charged at the
/// next host call or when the frame ends).
#[derive(Default)]
pub(crate) struct Limiter {
    /// Set once the instance exists: the initial memory is not charged.
    pub instantiated: bool,
    pub pending_gas: u64,
    pub page_gas: u64,
    pub refused_gas: u64,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MEMORY_BYTES_MAX {
            if self.instantiated {
                self.pending_gas = self.pending_gas.saturating_add(self.refused_gas);
            }
            return Ok(false);
        }
        if self.instantiated {
            let pages = (desired.saturating_sub(current) / MEMORY_PAGE_BYTES) as u64;
            self.pending_gas = self
                .pending_gas
                .saturating_add(pages.saturating_mul(self.page_gas));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Which exports a call may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// An ordinary method; `init`, `migrate` and reserved names are refused.
    Method,
    /// The `init` export, during deployment.
    Init,
    /// The `migrate` export, right after an upgrade.
    Migrate,
}

/// The result of invoking a contract.
pub(crate) struct Invoked {
    pub result: Result<Vec<u8>, Stop>,
    pub gas_used: u64,
}

/// A call's parameters inside a transaction.
pub(crate) struct Invocation<'a> {
    pub caller: Address,
    pub contract: Address,
    pub method: &'a str,
    pub input: Vec<u8>,
    pub gas: u64,
    pub stack_start: i32,
    pub entry: Entry,
}

/// Calls a contract inside a transaction: resolves its code, checks the
/// method, runs the frame and completes any upgrade it requested. Rolling
/// back on failure is the caller's job.
pub(crate) fn invoke(tx: Box<TxState>, call: Invocation<'_>) -> (Box<TxState>, Invoked) {
    let runtime = tx.runtime.clone();
    let prepared = match resolve(&runtime, &tx, &call.contract) {
        Ok(prepared) => prepared,
        Err(stop) => {
            return (
                tx,
                Invoked {
                    result: Err(stop),
                    gas_used: 0,
                },
            );
        }
    };
    let export = match find_export(&prepared, call.method, call.entry) {
        Ok(export) => export,
        Err(trap) => {
            return (
                tx,
                Invoked {
                    result: Err(Stop::Trap(trap)),
                    gas_used: 0,
                },
            );
        }
    };
    let frame = Frame {
        contract: call.contract,
        caller: call.caller,
        input: call.input,
        ..Frame::default()
    };
    let mut tx = tx;
    tx.call_stack.push(call.contract);
    let (mut tx, ran) = run_frame(
        &runtime,
        tx,
        &prepared,
        frame,
        &export,
        call.gas,
        call.stack_start,
    );
    tx.call_stack.pop();
    let mut gas_used = call.gas - ran.gas_left;
    let return_data = match ran.result {
        Ok(()) => ran.return_data,
        Err(stop) => {
            return (
                tx,
                Invoked {
                    result: Err(stop),
                    gas_used,
                },
            );
        }
    };
    let Some((new_code_hash, migrate_input)) = ran.upgrade else {
        return (
            tx,
            Invoked {
                result: Ok(return_data),
                gas_used,
            },
        );
    };
    // Complete the upgrade: point the contract at the new code, then let
    // the new code migrate its state.
    tx.overlay.set(
        keys::contract(&call.contract),
        Some(new_code_hash.0.to_vec()),
    );
    let migrates = match resolve(&runtime, &tx, &call.contract) {
        Ok(prepared) => prepared.methods.contains_key(abi::MIGRATE_EXPORT),
        Err(stop) => {
            return (
                tx,
                Invoked {
                    result: Err(stop),
                    gas_used,
                },
            );
        }
    };
    if !migrates {
        return (
            tx,
            Invoked {
                result: Ok(return_data),
                gas_used,
            },
        );
    }
    let migration = Invocation {
        caller: call.caller,
        contract: call.contract,
        method: abi::MIGRATE_EXPORT,
        input: migrate_input,
        gas: call.gas - gas_used,
        stack_start: call.stack_start,
        entry: Entry::Migrate,
    };
    let (tx, migrated) = invoke(tx, migration);
    gas_used += migrated.gas_used;
    let result = migrated.result.map(|_| return_data);
    (tx, Invoked { result, gas_used })
}

/// The prepared code of the contract at `address`.
fn resolve(runtime: &Arc<Inner>, tx: &TxState, address: &Address) -> Result<Arc<Prepared>, Stop> {
    let Some(code_hash) = tx.read(&keys::contract(address))? else {
        return Err(Stop::Trap(Trap::new(
            TrapKind::NotAContract,
            format!("no contract at {address}"),
        )));
    };
    let code_hash = CodeHash(code_hash.as_slice().try_into().map_err(|_| {
        Stop::Fault(format!(
            "contract entry of {address} has {} bytes, expected 32",
            code_hash.len()
        ))
    })?);
    runtime.load(&code_hash, || {
        tx.read(&keys::code(&code_hash))?.ok_or_else(|| {
            Stop::Fault(format!(
                "code {code_hash} of contract {address} is missing from state"
            ))
        })
    })
}

fn find_export(prepared: &Prepared, method: &str, entry: Entry) -> Result<ModuleExport, Trap> {
    let allowed = match entry {
        Entry::Method => method != abi::INIT_EXPORT && method != abi::MIGRATE_EXPORT,
        Entry::Init => method == abi::INIT_EXPORT,
        Entry::Migrate => method == abi::MIGRATE_EXPORT,
    };
    match prepared.methods.get(method) {
        Some(export) if allowed => Ok(*export),
        _ => Err(Trap::new(
            TrapKind::MethodNotFound,
            format!(
                "contract {} has no callable method `{}`",
                prepared.code_hash,
                method.escape_debug()
            ),
        )),
    }
}

struct FrameRun {
    result: Result<(), Stop>,
    gas_left: u64,
    return_data: Vec<u8>,
    upgrade: Option<(CodeHash, Vec<u8>)>,
}

fn run_frame(
    runtime: &Arc<Inner>,
    tx: Box<TxState>,
    prepared: &Prepared,
    frame: Frame,
    export: &ModuleExport,
    gas: u64,
    stack_start: i32,
) -> (Box<TxState>, FrameRun) {
    let schedule = &runtime.schedule;
    let limiter = Limiter {
        instantiated: false,
        pending_gas: 0,
        page_gas: schedule.memory_grow_per_page,
        refused_gas: schedule.memory_grow_refused,
    };
    let state = HostState {
        tx: Some(tx),
        frame,
        limiter,
        memory: None,
        stack: None,
        gas: None,
    };
    // The counter is an i64; what does not fit (never reachable) is set
    // aside and returned untouched.
    let counted = gas.min(i64::MAX as u64);
    let set_aside = gas - counted;
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|state| &mut state.limiter);
    let result = (|| {
        let instance = prepared
            .instance_pre
            .instantiate(&mut store)
            .map_err(|error| classify(error, None))?;
        store.data_mut().limiter.instantiated = true;
        let memory = instance
            .get_module_export(&mut store, &prepared.memory)
            .and_then(Extern::into_memory);
        let stack = instance
            .get_module_export(&mut store, &prepared.stack)
            .and_then(Extern::into_global);
        let counter = instance
            .get_module_export(&mut store, &prepared.gas)
            .and_then(Extern::into_global);
        let func = instance
            .get_module_export(&mut store, export)
            .and_then(Extern::into_func);
        let (Some(memory), Some(stack), Some(counter), Some(func)) = (memory, stack, counter, func)
        else {
            return Err(Stop::Fault(
                "prepared module lacks a required export".into(),
            ));
        };
        stack
            .set(&mut store, Val::I32(stack_start))
            .map_err(|error| Stop::Fault(error.to_string()))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().stack = Some(stack);
        store.data_mut().gas = Some(counter);
        set_gas_left(&mut store, counted).map_err(|error| Stop::Fault(error.to_string()))?;
        let func = func
            .typed::<(), ()>(&store)
            .map_err(|error| Stop::Fault(error.to_string()))?;
        func.call(&mut store, ())
            .map_err(|error| classify(error, Some((&mut store, stack, counter))))?;
        settle_pending_gas(&mut store)
    })();
    let gas_left = match &result {
        Err(Stop::Trap(trap)) if trap.kind == TrapKind::OutOfGas => 0,
        // Before instantiation there is no counter: nothing was spent.
        _ if store.data().gas.is_none() => counted,
        _ => gas_left(&mut store),
    } + set_aside;
    let state = store.into_data();
    let tx = state.tx.expect("transaction state returns with its frame");
    let run = FrameRun {
        result,
        gas_left,
        return_data: state.frame.return_data,
        upgrade: state.frame.upgrade,
    };
    (tx, run)
}

fn settle_pending_gas(store: &mut Store<HostState>) -> Result<(), Stop> {
    let pending = std::mem::take(&mut store.data_mut().limiter.pending_gas);
    if pending == 0 {
        return Ok(());
    }
    let left = gas_left(&mut *store);
    if pending > left {
        return Err(Stop::Trap(out_of_gas()));
    }
    set_gas_left(store, left - pending).map_err(|error| Stop::Fault(error.to_string()))
}

pub(crate) fn out_of_gas() -> Trap {
    Trap::new(TrapKind::OutOfGas, "out of gas")
}

/// Turns an error out of wasm into a guest trap or a host fault.
fn classify(
    error: wasmtime::Error,
    store: Option<(&mut Store<HostState>, Global, Global)>,
) -> Stop {
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return Stop::Trap(trap.clone());
    }
    if let Some(fault) = error.downcast_ref::<Fault>() {
        return Stop::Fault(fault.0.clone());
    }
    let Some(code) = error.downcast_ref::<wasmtime::Trap>() else {
        return Stop::Fault(format!("unexpected engine error: {error}"));
    };
    use wasmtime::Trap as W;
    let (kind, message) = match code {
        W::UnreachableCodeReached => {
            let (out_of_gas_now, exhausted) = match store {
                Some((store, stack, counter)) => (
                    matches!(counter.get(&mut *store), Val::I64(left) if left < 0),
                    matches!(stack.get(&mut *store), Val::I32(sp) if sp > STACK_BYTES_MAX as i32),
                ),
                None => (false, false),
            };
            if out_of_gas_now {
                return Stop::Trap(out_of_gas());
            }
            if exhausted {
                (
                    TrapKind::StackExhausted,
                    "stack budget STACK_BYTES_MAX exhausted",
                )
            } else {
                (TrapKind::Unreachable, "unreachable executed")
            }
        }
        W::MemoryOutOfBounds => (TrapKind::MemoryOutOfBounds, "memory access out of bounds"),
        W::TableOutOfBounds => (TrapKind::TableOutOfBounds, "table access out of bounds"),
        W::IndirectCallToNull => (
            TrapKind::TableOutOfBounds,
            "indirect call to a null table entry",
        ),
        W::BadSignature => (TrapKind::BadSignature, "indirect call signature mismatch"),
        W::IntegerOverflow => (TrapKind::IntegerOverflow, "integer overflow"),
        W::IntegerDivisionByZero => (TrapKind::IntegerDivisionByZero, "integer division by zero"),
        W::BadConversionToInteger => (
            TrapKind::BadConversionToInteger,
            "invalid conversion to integer",
        ),
        // Native stack overflow cannot happen under the deterministic
        // budget; if it does, it is not deterministic and must not commit.
        other => return Stop::Fault(format!("non-deterministic engine trap: {other}")),
    };
    Stop::Trap(Trap::new(kind, message))
}
