//! Shared pieces of Stele's benchmarks: fixtures, generated modules, and a
//! bare wasmtime baseline.

use std::path::PathBuf;

/// The wasm of `runtime/tests/fixtures/<name>.wat`, shared with the tests.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/tests/fixtures")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|error| panic!("fixture {name}: {error}"))
}

/// One generated function: a loop over memory with branches and arithmetic,
/// the shape compiled contract code has. `salt` makes every module unique.
fn function(idx: usize, salt: u64) -> String {
    format!(
        r#"(func $f{idx}
    (local $i i32) (local $acc i64) (local $x i32)
    (local.set $x (i32.const {x}))
    (block $done (loop $again
      (br_if $done (i32.ge_u (local.get $i) (i32.const 64)))
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1103515245)) (i32.const 12345)))
      (if (i32.and (local.get $x) (i32.const 0x100))
        (then (local.set $acc (i64.add (local.get $acc) (i64.load (i32.and (local.get $x) (i32.const 0xfff8))))))
        (else (local.set $acc (i64.xor (local.get $acc) (i64.extend_i32_u (local.get $x))))))
      (i64.store (i32.and (i32.shr_u (local.get $x) (i32.const 7)) (i32.const 0xfff8)) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $again)))
    (i64.store (i32.const 0) (i64.rotl (local.get $acc) (i64.const {rot}))))"#,
        x = (salt as i64 as i32).wrapping_add(idx as i32),
        rot = (idx % 63) + 1,
    )
}

/// A valid contract of about `kib` KiB of code; `salt` changes its hash.
pub fn module_of_size(kib: usize, salt: u64) -> Vec<u8> {
    let build = |n: usize| {
        let functions: String = (0..n).map(|idx| function(idx, salt)).collect();
        let text = format!(
            "(module (memory (export \"memory\") 1) {functions} (export \"f0\" (func $f0)))"
        );
        wat::parse_str(text).expect("generated module")
    };
    let per_function = build(16).len() / 16;
    build(kib * 1024 / per_function)
}

/// The floor: the same wasm on a plain wasmtime engine with pooling and a
/// ready `InstancePre`, no metering and trivial host functions.
pub mod bare {
    use wasmtime::{
        Caller, Config, Engine, Inlining, InstanceAllocationStrategy, InstancePre, Linker, Module,
        PoolingAllocationConfig, Store,
    };

    /// Store data of the bare engine.
    #[derive(Default)]
    pub struct Data {
        /// Call input.
        pub input: Vec<u8>,
        /// Return data.
        pub output: Vec<u8>,
        /// The one storage value.
        pub value: [u8; 8],
    }

    /// A bare engine with one module ready to instantiate.
    pub struct Bare {
        engine: Engine,
        pre: InstancePre<Data>,
    }

    fn memory(caller: &mut Caller<'_, Data>) -> wasmtime::Memory {
        caller
            .get_export("memory")
            .and_then(wasmtime::Extern::into_memory)
            .expect("memory export")
    }

    impl Bare {
        /// Compiles `wasm` with the runtime's compiler settings (NaN
        /// canonicalization, inlining) and pooling allocator tuning, without
        /// gas or stack accounting.
        pub fn new(wasm: &[u8]) -> Self {
            let mut config = Config::new();
            config
                .cranelift_nan_canonicalization(true)
                .compiler_inlining(Inlining::Yes);
            let mut pooling = PoolingAllocationConfig::new();
            pooling
                .total_core_instances(128)
                .total_memories(128)
                .total_tables(128);
            pooling
                .linear_memory_keep_resident(128 * 1024)
                .table_keep_resident(16 * 1024);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
            let engine = Engine::new(&config).expect("engine");
            let module = Module::new(&engine, wasm).expect("module");
            let mut linker = Linker::<Data>::new(&engine);
            linker
                .func_wrap("stele", "input_len", |caller: Caller<'_, Data>| {
                    caller.data().input.len() as i32
                })
                .unwrap();
            linker
                .func_wrap(
                    "stele",
                    "input_read",
                    |mut caller: Caller<'_, Data>, dst: i32| {
                        let memory = memory(&mut caller);
                        let input = std::mem::take(&mut caller.data_mut().input);
                        memory
                            .write(&mut caller, dst as usize, &input)
                            .expect("in bounds");
                        caller.data_mut().input = input;
                    },
                )
                .unwrap();
            linker
                .func_wrap(
                    "stele",
                    "storage_read",
                    |mut caller: Caller<'_, Data>,
                     _key: i32,
                     _key_len: i32,
                     dst: i32,
                     _cap: i32| {
                        let memory = memory(&mut caller);
                        let value = caller.data().value;
                        memory
                            .write(&mut caller, dst as usize, &value)
                            .expect("in bounds");
                        8
                    },
                )
                .unwrap();
            linker
                .func_wrap(
                    "stele",
                    "storage_write",
                    |mut caller: Caller<'_, Data>,
                     _key: i32,
                     _key_len: i32,
                     value: i32,
                     _len: i32| {
                        let memory = memory(&mut caller);
                        let mut bytes = [0u8; 8];
                        memory
                            .read(&caller, value as usize, &mut bytes)
                            .expect("in bounds");
                        caller.data_mut().value = bytes;
                    },
                )
                .unwrap();
            linker
                .func_wrap(
                    "stele",
                    "return_set",
                    |mut caller: Caller<'_, Data>, ptr: i32, len: i32| {
                        let memory = memory(&mut caller);
                        let mut output = vec![0; len as usize];
                        memory
                            .read(&caller, ptr as usize, &mut output)
                            .expect("in bounds");
                        caller.data_mut().output = output;
                    },
                )
                .unwrap();
            let pre = linker.instantiate_pre(&module).expect("instantiate_pre");
            Bare { engine, pre }
        }

        /// New store, instantiate, call `method` with `input`; returns the
        /// return data.
        pub fn call(&self, method: &str, input: &[u8]) -> Vec<u8> {
            let mut store = Store::new(
                &self.engine,
                Data {
                    input: input.to_vec(),
                    ..Data::default()
                },
            );
            let instance = self.pre.instantiate(&mut store).expect("instantiate");
            let func = instance
                .get_typed_func::<(), ()>(&mut store, method)
                .expect("method");
            func.call(&mut store, ()).expect("call");
            store.into_data().output
        }
    }
}
