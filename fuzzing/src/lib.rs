//! Generators and oracles for Stele's fuzz targets.
//!
//! The targets in `fuzz/` are thin glue around the three `check_*`
//! functions here, which build inputs and assert the properties the runtime
//! promises:
//!
//! * [`check_deploy_raw`] — arbitrary bytes through validation and
//!   compilation: never a panic, and validation and the engine agree.
//! * [`check_exec_smith`] — a wasm-smith module importing the host ABI, run
//!   under a gas limit: always terminates, never a host fault, and the same
//!   outcome twice; then [`check_gas_covers_fuel`] on a module without
//!   imports.
//! * [`check_gas_covers_fuel`] — a wasm-smith module without imports run by
//!   the runtime and by plain wasmtime counting fuel (one per operator run):
//!   the runtime's gas, charged in advance per region, is never below fuel.
//! * [`check_host_calls`] — a contract making arbitrary host calls with
//!   arbitrary pointers and lengths: never a host fault, the same outcome
//!   twice.
//!
//! Living outside `fuzz/`, this crate is built and its tests run on stable
//! with the rest of the workspace.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use stele_host_api::{Address, abi};
use stele_runtime::{
    Call, Context, Deploy, MemoryStorage, Outcome, PrepareError, Runtime, RuntimeConfig,
};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, ImportSection, Instruction, MemorySection, MemoryType, Module, TypeSection,
    ValType,
};

/// Gas each fuzzed call may use.
pub const FUZZ_GAS: u64 = 2_000_000;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            instance_slots: 32,
            ..RuntimeConfig::default()
        })
        .unwrap()
    })
}

const DEPLOYER: Address = Address([0xd0; 32]);
const CONTRACT: Address = Address([0xc0; 32]);
const PEER: Address = Address([0xc1; 32]);

/// Arbitrary bytes through validation and compilation.
///
/// # Panics
/// When the runtime panics, or when validation and compilation disagree.
pub fn check_deploy_raw(bytes: &[u8]) {
    let runtime = runtime();
    let validated = runtime.validate(bytes);
    let prepared = runtime.prepare(bytes);
    match (validated, prepared) {
        (Ok(_), Ok(_)) | (Err(_), Err(PrepareError::Invalid(_))) => {}
        (Ok(_), Err(error)) => panic!("validation accepted code that preparation refused: {error}"),
        (Err(error), Ok(_)) => panic!("preparation accepted code that validation refused: {error}"),
        (Err(_), Err(PrepareError::Fault(fault))) => panic!("host fault on invalid code: {fault}"),
    }
}

/// A module that imports every host function, for wasm-smith to draw from.
pub fn abi_imports_module() -> Vec<u8> {
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    for (idx, function) in abi::IMPORTS.iter().enumerate() {
        types.ty().function(
            function.params.iter().map(val_type),
            function.results.iter().map(val_type),
        );
        imports.import(abi::MODULE, function.name, EntityType::Function(idx as u32));
    }
    let mut module = Module::new();
    module.section(&types).section(&imports);
    module.finish()
}

fn val_type(ty: &abi::ValType) -> ValType {
    match ty {
        abi::ValType::I32 => ValType::I32,
        abi::ValType::I64 => ValType::I64,
    }
}

/// wasm-smith settings: the host ABI as the imports, a `memory` and a
/// `run` method as the exports, and only the wasm features Stele accepts.
pub fn smith_config() -> wasm_smith::Config {
    let exports = {
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = ExportSection::new();
        exports
            .export(abi::MEMORY_EXPORT, ExportKind::Memory, 0)
            .export("run", ExportKind::Func, 0);
        let mut code = CodeSection::new();
        let mut body = Function::new([]);
        body.instruction(&Instruction::End);
        code.function(&body);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&memories)
            .section(&exports)
            .section(&code);
        module.finish()
    };
    wasm_smith::Config {
        available_imports: Some(abi_imports_module()),
        exports: Some(exports),
        allow_start_export: false,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        tail_call_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        memory64_enabled: false,
        extended_const_enabled: false,
        wide_arithmetic_enabled: false,
        custom_page_sizes_enabled: false,
        reference_types_enabled: false,
        bulk_memory_enabled: true,
        multi_value_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        // The exported memory is always generated; no others.
        max_memories: 0,
        max_memory32_bytes: stele_host_api::limits::MEMORY_BYTES_MAX as u64,
        max_tables: 1,
        max_table_elements: stele_host_api::limits::TABLE_ELEMENTS_MAX as u64,
        max_funcs: 50,
        max_instructions: 500,
        max_nesting_depth: 16,
        ..wasm_smith::Config::default()
    }
}

fn call(runtime: &Runtime, storage: &MemoryStorage, method: &str, input: &[u8]) -> Outcome {
    let ctx = Context {
        block_height: 1,
        block_time_ms: 1,
        origin: DEPLOYER,
        tx_hash: [1; 32],
    };
    let call = Call {
        caller: DEPLOYER,
        contract: CONTRACT,
        method: method.into(),
        input: input.to_vec(),
        gas_limit: FUZZ_GAS,
    };
    let outcome = runtime
        .call(storage, &ctx, &call)
        .unwrap_or_else(|fault| panic!("host fault: {fault}"));
    assert!(
        outcome.gas_used <= FUZZ_GAS,
        "used {} gas of {FUZZ_GAS}",
        outcome.gas_used
    );
    outcome
}

/// State with `code` deployed at the fuzzed address and a peer contract
/// (the same code) for cross-contract calls; `None` if deployment failed.
fn deploy(runtime: &Runtime, code: &[u8]) -> Option<MemoryStorage> {
    let mut storage = MemoryStorage::new();
    storage.insert(
        stele_runtime::storage::keys::balance(&CONTRACT),
        1_000u128.to_le_bytes().to_vec(),
    );
    for address in [CONTRACT, PEER] {
        let deploy = Deploy {
            deployer: DEPLOYER,
            address,
            code: code.to_vec(),
            init_input: None,
            gas_limit: u64::MAX,
        };
        let outcome = runtime
            .deploy(&storage, &Context::default(), &deploy)
            .unwrap_or_else(|fault| panic!("host fault deploying: {fault}"));
        if !outcome.is_success() {
            return None;
        }
        storage.apply(&outcome.writes);
    }
    Some(storage)
}

/// A wasm-smith module run under a gas limit. Returns whether it ran (the
/// module may break one of Stele's limits and be refused at deployment).
///
/// # Panics
/// On a host fault, on gas over the limit, or when two runs differ.
pub fn check_exec_smith(u: &mut Unstructured<'_>) -> arbitrary::Result<bool> {
    let module = wasm_smith::Module::new(smith_config(), u)?;
    let code = module.to_bytes();
    let runtime = runtime();
    let Some(storage) = deploy(runtime, &code) else {
        return Ok(false);
    };
    let input: Vec<u8> = u.arbitrary()?;
    let first = call(runtime, &storage, "run", &input);
    let second = call(runtime, &storage, "run", &input);
    assert_eq!(first, second, "two runs of the same call differ");
    check_gas_covers_fuel(u)?;
    Ok(true)
}

/// A wasm-smith module without imports, run by the runtime and by plain
/// wasmtime with fuel under the same limits. Returns whether the comparison
/// was made (the module may be refused, or exhaust the deterministic stack
/// budget, which plain wasmtime does not have).
///
/// # Panics
/// When the runtime's gas is below the fuel of the same run: some operator
/// ran without being paid for.
pub fn check_gas_covers_fuel(u: &mut Unstructured<'_>) -> arbitrary::Result<bool> {
    use wasmtime::{Config, Engine, Linker, StoreLimitsBuilder};
    let config = wasm_smith::Config {
        available_imports: None,
        max_imports: 0,
        ..smith_config()
    };
    let code = wasm_smith::Module::new(config, u)?.to_bytes();
    let runtime = runtime();
    let Some(storage) = deploy(runtime, &code) else {
        return Ok(false);
    };
    let ours = call(runtime, &storage, "run", &[]);
    if ours
        .trap
        .as_ref()
        .is_some_and(|trap| trap.kind == stele_runtime::TrapKind::StackExhausted)
    {
        return Ok(false);
    }

    static FUEL_ENGINE: OnceLock<Engine> = OnceLock::new();
    let engine = FUEL_ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        Engine::new(&config).expect("fuel engine")
    });
    let module = wasmtime::Module::new(engine, &code).expect("the runtime accepted it");
    // The runtime's memory and table limits, so growth goes the same way.
    let limits = StoreLimitsBuilder::new()
        .memory_size(stele_host_api::limits::MEMORY_BYTES_MAX)
        .table_elements(stele_host_api::limits::TABLE_ELEMENTS_MAX)
        .build();
    let mut store = wasmtime::Store::new(engine, limits);
    store.limiter(|limits| limits);
    store.set_fuel(u64::MAX).expect("fuel is on");
    let instance = Linker::new(engine)
        .instantiate(&mut store, &module)
        .expect("instantiates");
    let run = instance
        .get_typed_func::<(), ()>(&mut store, "run")
        .expect("`run` is exported");
    // Instantiation spends fuel too (on passive element segments): the
    // call alone gets the runtime's limit, and counts trap or not.
    store.set_fuel(FUZZ_GAS).expect("fuel is on");
    let _ = run.call(&mut store, ());
    let fuel = FUZZ_GAS - store.get_fuel().expect("fuel is on");
    assert!(
        ours.gas_used >= fuel,
        "gas {} is below the fuel {fuel} of the same run ({:?})",
        ours.gas_used,
        ours.trap
    );
    Ok(true)
}

/// An argument of a host call: mostly the values that find bugs.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Arg {
    /// A small value: a plausible length or an offset near zero.
    Small(u8),
    /// A value at a boundary.
    Edge(Edge),
    /// Anything.
    Any(i64),
}

/// Boundary values for pointers and lengths.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Edge {
    /// Zero.
    Zero,
    /// The end of the memory (two pages).
    MemoryEnd,
    /// One byte short of the end.
    MemoryEndMinusOne,
    /// `u32::MAX`, as `-1`.
    U32Max,
    /// `i32::MAX`.
    I32Max,
    /// `i32::MIN`.
    I32Min,
    /// A limit of the ABI plus one.
    OverKeyLimit,
    /// An offset where the module keeps an address.
    Address,
}

impl Arg {
    fn value(self) -> i64 {
        const MEMORY_BYTES: i64 = 2 * 65_536;
        match self {
            Arg::Small(value) => i64::from(value),
            Arg::Edge(Edge::Zero) => 0,
            Arg::Edge(Edge::MemoryEnd) => MEMORY_BYTES,
            Arg::Edge(Edge::MemoryEndMinusOne) => MEMORY_BYTES - 1,
            Arg::Edge(Edge::U32Max) => -1,
            Arg::Edge(Edge::I32Max) => i64::from(i32::MAX),
            Arg::Edge(Edge::I32Min) => i64::from(i32::MIN),
            Arg::Edge(Edge::OverKeyLimit) => {
                stele_host_api::limits::STORAGE_KEY_BYTES_MAX as i64 + 1
            }
            Arg::Edge(Edge::Address) => 1024,
            Arg::Any(value) => value,
        }
    }
}

/// One host call: which function (modulo the ABI's size) and its arguments.
#[derive(Arbitrary, Clone, Debug)]
pub struct HostCall {
    /// Index into `abi::IMPORTS`, taken modulo its length.
    pub function: u8,
    /// Arguments; the first ones the function takes are used.
    pub args: [Arg; 6],
}

/// A sequence of host calls, compiled into a contract's `run` method.
#[derive(Arbitrary, Clone, Debug)]
pub struct HostCalls {
    /// The calls, in order.
    pub calls: Vec<HostCall>,
}

impl HostCalls {
    /// The contract: every ABI import, two pages of memory holding the
    /// peer's address at offset 1024, and `run` making the calls.
    pub fn to_wasm(&self) -> Vec<u8> {
        let n_imports = abi::IMPORTS.len() as u32;
        let mut types = TypeSection::new();
        let mut imports = ImportSection::new();
        for (idx, function) in abi::IMPORTS.iter().enumerate() {
            types.ty().function(
                function.params.iter().map(val_type),
                function.results.iter().map(val_type),
            );
            imports.import(abi::MODULE, function.name, EntityType::Function(idx as u32));
        }
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(n_imports);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 2,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = ExportSection::new();
        exports
            .export(abi::MEMORY_EXPORT, ExportKind::Memory, 0)
            .export("run", ExportKind::Func, n_imports);
        let mut body = Function::new([]);
        for call in self.calls.iter().take(64) {
            let idx = call.function as usize % abi::IMPORTS.len();
            let function = &abi::IMPORTS[idx];
            for (param, arg) in function.params.iter().zip(call.args) {
                body.instruction(&match param {
                    abi::ValType::I32 => Instruction::I32Const(arg.value() as i32),
                    abi::ValType::I64 => Instruction::I64Const(arg.value()),
                });
            }
            body.instruction(&Instruction::Call(idx as u32));
            for _ in function.results {
                body.instruction(&Instruction::Drop);
            }
        }
        body.instruction(&Instruction::End);
        let mut code = CodeSection::new();
        code.function(&body);
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(1024), PEER.0);
        data.active(0, &ConstExpr::i32_const(0), *b"run\0key\0value");
        let mut module = Module::new();
        module
            .section(&types)
            .section(&imports)
            .section(&functions)
            .section(&memories)
            .section(&exports)
            .section(&code)
            .section(&data);
        module.finish()
    }
}

/// Arbitrary host calls with arbitrary pointers and lengths.
///
/// # Panics
/// On a host fault, on gas over the limit, or when two runs differ.
pub fn check_host_calls(calls: &HostCalls) {
    let code = calls.to_wasm();
    let runtime = runtime();
    let storage = deploy(runtime, &code).expect("the generated contract is always valid");
    let first = call(runtime, &storage, "run", b"input");
    let second = call(runtime, &storage, "run", b"input");
    assert_eq!(first, second, "two runs of the same call differ");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes, so the oracles run in CI.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn deploy_raw_holds_on_garbage_and_on_real_modules() {
        for seed in 0..64 {
            check_deploy_raw(&bytes(seed, 200));
        }
        let mut module = HostCalls { calls: vec![] }.to_wasm();
        check_deploy_raw(&module);
        for cut in [1, 8, module.len() / 2] {
            check_deploy_raw(&module[..module.len() - cut]);
        }
        module[9] ^= 0xff;
        check_deploy_raw(&module);
    }

    /// How many of `seeds` give a module that `check` ran to the end.
    fn seeds_run<E: PartialEq>(
        seeds: std::ops::Range<u64>,
        check: impl Fn(&mut Unstructured<'_>) -> Result<bool, E>,
    ) -> usize {
        seeds
            .filter(|&seed| check(&mut Unstructured::new(&bytes(seed, 4096))) == Ok(true))
            .count()
    }

    #[test]
    fn exec_smith_holds_on_many_seeds() {
        let executed = seeds_run(0..40, check_exec_smith);
        // Generated modules stay within Stele's limits and get executed.
        assert!(executed >= 30, "only {executed} of 40 modules ran");
    }

    #[test]
    fn gas_covers_fuel_on_many_seeds() {
        let compared = seeds_run(100..160, check_gas_covers_fuel);
        // Some modules are refused or exhaust the deterministic stack.
        assert!(compared >= 30, "only {compared} of 60 modules compared");
    }

    #[test]
    fn host_calls_hold_on_many_seeds_and_on_every_function() {
        for seed in 0..40 {
            let data = bytes(seed, 2048);
            let calls = HostCalls::arbitrary(&mut Unstructured::new(&data)).unwrap();
            check_host_calls(&calls);
        }
        // Every function at least once with edge arguments.
        let every = HostCalls {
            calls: (0..abi::IMPORTS.len() as u8)
                .flat_map(|function| {
                    [
                        Edge::Zero,
                        Edge::U32Max,
                        Edge::MemoryEndMinusOne,
                        Edge::Address,
                    ]
                    .map(|edge| HostCall {
                        function,
                        args: [Arg::Edge(edge); 6],
                    })
                })
                .collect(),
        };
        check_host_calls(&every);
    }
}

/// The authenticated state tree against a `BTreeMap` model.
pub mod trie {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use arbitrary::Arbitrary;
    use stele_state::proof::prove;
    use stele_state::tree::{
        self, Child, EMPTY, Node, NodeKey, NodeReader, key_hash, root_of, value_hash,
    };
    use stele_state::{Proof, ProofError};

    /// One write: a key from a small space (so keys collide and get
    /// removed), and a value or a removal.
    #[derive(Arbitrary, Clone, Debug)]
    pub struct Write {
        /// Key index.
        pub key: u16,
        /// `None` removes.
        pub value: Option<Vec<u8>>,
    }

    /// Batches of writes, one version each.
    #[derive(Arbitrary, Clone, Debug)]
    pub struct Ops {
        /// The batches.
        pub batches: Vec<Vec<Write>>,
    }

    fn key(idx: u16) -> Vec<u8> {
        format!("key-{}", idx % 512).into_bytes()
    }

    #[derive(Default)]
    struct Memory(HashMap<NodeKey, Arc<Node>>);

    impl NodeReader for Memory {
        type Error = String;
        fn node(&self, key: &NodeKey) -> Result<Arc<Node>, String> {
            self.0
                .get(key)
                .cloned()
                .ok_or_else(|| format!("missing node {key:?}"))
        }
    }

    struct Tree {
        /// Whether updates also sweep (see [`tree::Refresh`]): about half
        /// the slices at each version, ending chains two versions old.
        sweeping: bool,
        memory: Memory,
        /// The stored entries, with every entry an update reports stale
        /// dropped at once (no retention window).
        entries: HashMap<NodeKey, Vec<u8>>,
        root: Option<Child>,
        version: u64,
    }

    impl Tree {
        fn new(sweeping: bool) -> Self {
            Tree {
                sweeping,
                memory: Memory::default(),
                entries: HashMap::new(),
                root: None,
                version: 0,
            }
        }

        fn apply(&mut self, writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
            self.version += 1;
            let mut updates: Vec<_> = writes
                .iter()
                .map(|(key, value)| (key_hash(key), value.as_deref().map(value_hash)))
                .collect();
            updates.sort_by(|a, b| a.0.cmp(&b.0));
            let refresh = self.sweeping.then(|| {
                // SplitMix64 of the version and word: about half the bits.
                let mix = |word: u64| {
                    let mut z = (self.version * 4 + word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^ (z >> 31)
                };
                tree::Refresh {
                    base_at_most: self.version.saturating_sub(3),
                    swept: std::array::from_fn(|word| mix(word as u64)),
                }
            });
            let update = tree::update_refreshing(
                &self.memory,
                self.root.clone(),
                self.version,
                &updates,
                refresh,
            )
            .expect("nodes present");
            for stale in &update.stale_nodes {
                assert!(
                    self.entries.remove(stale).is_some(),
                    "{stale:?} reported stale but not stored"
                );
            }
            for new in &update.new_nodes {
                self.entries.insert(new.key, new.bytes.clone());
            }
            // Every new node rebuilds from the entries that are left: no
            // entry a live node is stored over was reported stale.
            for new in update.new_nodes {
                let rebuilt = tree::assemble(
                    &new.key,
                    |at| {
                        self.entries
                            .get(at)
                            .ok_or_else(|| format!("{at:?} dropped"))
                    },
                    |what| what,
                )
                .expect("the node's entries are kept");
                assert_eq!(rebuilt, *new.node, "{:?} rebuilt", new.key);
                self.memory.0.insert(new.key, new.node);
            }
            self.root = update.root;
        }

        fn root_hash(&self) -> [u8; 32] {
            self.root.as_ref().map_or(EMPTY, Child::hash)
        }

        /// Every node the root reaches rebuilds from the stored entries
        /// that are left.
        fn assert_reachable_stored(&self) {
            let mut pending = Vec::new();
            if let Some(Child::Node { version, .. }) = &self.root {
                pending.push((*version, Vec::new()));
            }
            while let Some((version, path)) = pending.pop() {
                let key = NodeKey::new(version, &path);
                let node = tree::assemble(
                    &key,
                    |at| {
                        self.entries
                            .get(at)
                            .ok_or_else(|| format!("{at:?} dropped"))
                    },
                    |what| what,
                )
                .unwrap_or_else(|error| panic!("{key:?} reachable but not stored: {error}"));
                for (idx, child) in node.children.iter().enumerate() {
                    if let Some(Child::Node { version, .. }) = child {
                        let mut below = path.clone();
                        below.push(idx as u8);
                        pending.push((*version, below));
                    }
                }
            }
        }

        fn prove(&self, key: &[u8]) -> Proof {
            prove(&self.memory, self.root.as_ref(), key).expect("nodes present")
        }
    }

    /// Applies `ops` batch by batch and checks after each: the root equals
    /// the root of the model's contents; every present key has a verifying
    /// inclusion proof and every other key a verifying exclusion proof;
    /// forged proofs fail; a tree whose updates also sweep (rewriting
    /// nodes whose chains are old) has the same root, and its stored
    /// entries rebuild every node too. At the end, applying the same writes
    /// one at a time gives the same root.
    ///
    /// # Panics
    /// When a property fails.
    pub fn check(ops: &Ops) {
        let mut tree = Tree::new(false);
        let mut swept = Tree::new(true);
        let mut one_by_one = Tree::new(false);
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for batch in ops.batches.iter().take(32) {
            let mut writes = BTreeMap::new();
            for write in batch.iter().take(64) {
                let value = write.value.clone().map(|mut value| {
                    value.truncate(64);
                    value
                });
                writes.insert(key(write.key), value.clone());
                one_by_one.apply(&BTreeMap::from([(key(write.key), value)]));
            }
            tree.apply(&writes);
            swept.apply(&writes);
            assert_eq!(
                swept.root_hash(),
                tree.root_hash(),
                "sweeping keeps the root"
            );
            tree.assert_reachable_stored();
            swept.assert_reachable_stored();
            for (key, value) in &writes {
                match value {
                    Some(value) => model.insert(key.clone(), value.clone()),
                    None => model.remove(key),
                };
            }
            let entries: Vec<_> = model
                .iter()
                .map(|(key, value)| (key_hash(key), value_hash(value)))
                .collect();
            let root = tree.root_hash();
            assert_eq!(
                root,
                root_of(&entries),
                "the root depends only on the contents"
            );
            for idx in (0..512u16)
                .step_by(17)
                .chain(batch.iter().map(|write| write.key % 512))
            {
                let key = key(idx);
                let value = model.get(&key).map(Vec::as_slice);
                let proof = tree.prove(&key);
                proof
                    .verify(&root, &key, value)
                    .expect("a true proof verifies");
                let decoded = Proof::from_bytes(&proof.to_bytes()).expect("encoding round-trips");
                assert_eq!(decoded, proof);
                let opposite = if value.is_some() {
                    None
                } else {
                    Some(&b"forged"[..])
                };
                assert_eq!(
                    proof.verify(&root, &key, opposite),
                    Err(ProofError::WrongTerminal)
                );
                if let Some(position) = proof.siblings.iter().position(|hash| *hash != EMPTY) {
                    let mut forged = proof.clone();
                    forged.siblings[position][31] ^= 0x80;
                    assert!(
                        forged.verify(&root, &key, value).is_err(),
                        "a forged sibling fails"
                    );
                }
            }
        }
        assert_eq!(
            tree.root_hash(),
            one_by_one.root_hash(),
            "batching does not change the root"
        );
    }
}

#[cfg(test)]
mod trie_tests {
    use super::trie::{Ops, Write, check};
    use arbitrary::{Arbitrary, Unstructured};

    #[test]
    fn trie_ops_hold_on_seeded_inputs() {
        for seed in 0..30u64 {
            let data: Vec<u8> = (0..4096u64)
                .map(|idx| ((idx * 2654435761 + seed * 97) >> 7) as u8)
                .collect();
            if let Ok(ops) = Ops::arbitrary(&mut Unstructured::new(&data)) {
                check(&ops);
            }
        }
        // Fill, then remove everything: back to the empty root.
        let fill: Vec<Write> = (0..300)
            .map(|key| Write {
                key,
                value: Some(vec![key as u8]),
            })
            .collect();
        let clear: Vec<Write> = (0..300).map(|key| Write { key, value: None }).collect();
        check(&Ops {
            batches: vec![fill.clone(), clear],
        });
        // Fill, then touch one key at a time: the sweeps rewrite what the
        // writes leave alone.
        let mut batches = vec![fill];
        batches.extend((0..24).map(|key| {
            vec![Write {
                key,
                value: Some(vec![0xaa]),
            }]
        }));
        check(&Ops { batches });
    }
}

/// Transaction decoding: never a panic; what decodes re-encodes to the same
/// bytes (the encoding is canonical).
///
/// # Panics
/// When decoding panics or a decoded transaction re-encodes differently.
pub fn check_tx_decode(bytes: &[u8]) {
    if let Ok(tx) = stele_types::decode_transaction(bytes) {
        let again = stele_types::codec::encode_transaction(&tx);
        assert_eq!(again, bytes, "decode then encode must give the same bytes");
        let _ = tx.check_cheap("stele-dev");
        let _ = tx.verify_signature();
    }
}

#[cfg(test)]
mod tx_decode_tests {
    #[test]
    fn tx_decode_holds_on_seeded_and_edited_inputs() {
        for seed in 0..200u64 {
            let data: Vec<u8> = (0..(seed as usize * 7))
                .map(|idx| ((idx as u64 * 2654435761 + seed) >> 5) as u8)
                .collect();
            super::check_tx_decode(&data);
        }
    }
}
