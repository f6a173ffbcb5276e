//! The wasmtime engine, configured for determinism and speed.

use std::hash::{Hash, Hasher};

use stele_host_api::limits;
use wasmtime::{
    Config, Engine, Inlining, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    Strategy,
};

use crate::instrument::INSTRUMENTATION_VERSION;
use crate::schedule::GasSchedule;

/// Native stack window wasmtime allows one store's wasm frames. The
/// deterministic budget (`STACK_BYTES_MAX` of estimated frame bytes) is far
/// below it, so wasmtime's own check never decides a trap.
pub const NATIVE_WASM_STACK_BYTES: usize = 1024 * 1024;

// Accounted frames stay within `STACK_BYTES_MAX` of estimate, the
// unaccounted (statically bounded) frames on top of them within as much
// again; real frames are smaller than their estimates, and this leaves a
// further factor of two.
const _: () = assert!(NATIVE_WASM_STACK_BYTES >= 4 * limits::STACK_BYTES_MAX);

/// Builds the engine: Cranelift with NaN canonicalization and inlining,
/// only the accepted wasm features, and the pooling allocator with
/// copy-on-write memory images. Gas and stack accounting are in the code
/// itself (see [`crate::instrument`]), so the engine meters nothing.
pub(crate) fn build(n_instances: u32) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .cranelift_nan_canonicalization(true)
        // Inlining changes no gas figure: gas is charged by instructions
        // written into the wasm before compilation. It removes most of the
        // cost of small functions.
        .compiler_inlining(Inlining::Yes)
        .max_wasm_stack(NATIVE_WASM_STACK_BYTES)
        .wasm_backtrace_max_frames(None)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        .wasm_simd(false)
        .wasm_relaxed_simd(false)
        .wasm_tail_call(false)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .wasm_extended_const(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(n_instances)));
    Engine::new(&config)
}

fn pooling(n_instances: u32) -> PoolingAllocationConfig {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_core_instances(n_instances)
        .total_memories(n_instances)
        .total_tables(n_instances)
        .max_memories_per_module(limits::MEMORIES_MAX as u32)
        .max_tables_per_module(limits::TABLES_MAX as u32)
        .max_memory_size(limits::MEMORY_BYTES_MAX)
        .table_elements(limits::TABLE_ELEMENTS_MAX)
        // Keep a small resident prefix of each slot: re-zeroing it is cheaper
        // than faulting pages back in on the next call.
        .linear_memory_keep_resident(256 * 1024)
        .table_keep_resident(16 * 1024);
    pooling
}

/// A 32-byte fingerprint of everything that decides compiled code: the
/// engine's compatibility hash (wasmtime version, target, flags), the gas
/// schedule and the instrumentation version.
pub(crate) fn fingerprint(engine: &Engine, schedule: &GasSchedule) -> [u8; 32] {
    let mut hasher = Blake3Hasher(blake3::Hasher::new());
    hasher.0.update(b"stele compiled-code fingerprint v1");
    engine.precompile_compatibility_hash().hash(&mut hasher);
    schedule.hash(&mut hasher);
    INSTRUMENTATION_VERSION.hash(&mut hasher);
    *hasher.0.finalize().as_bytes()
}

/// Feeds `std::hash::Hash` values into BLAKE3.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
