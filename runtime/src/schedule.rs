//! The versioned gas schedule.
//!
//! Gas is the one measure of work every node agrees on. Most wasm operators
//! cost 1, structural ones (`block`, `loop`, `end`, `drop`, `nop`, ...)
//! cost 0, and bulk memory operators cost 1 per byte on top; code pays for
//! the dearest path through each region it enters (see [`crate::meter`]). Host functions charge a base cost plus
//! per-byte costs from this table, calibrated so that one gas is roughly one
//! nanosecond of work on a small machine.
//!
//! Any change to a value here changes which transactions run out of gas, so
//! it must come with a new [`GasSchedule::version`]: the version is part of
//! every compiled-module cache key, so a new schedule never runs code
//! compiled for an old one.

use wasmparser::Operator;

/// Costs of everything a contract can do, and the stack-frame estimate used
/// for the deterministic stack limit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GasSchedule {
    /// Version of this table; part of every compiled-code cache key.
    pub version: u32,
    /// Entering a wasm function, on top of the `call` operator: as with
    /// wasmtime's fuel, every invocation costs something.
    pub function_entry: u64,
    /// Per byte moved by `memory.copy`, `memory.fill` and `memory.init`.
    pub bulk_memory_per_byte: u8,
    /// Per element moved by `table.copy`, `table.fill`, `table.init` and
    /// `table.grow`.
    pub table_per_element: u8,
    /// Per wasm page (64 KiB) a `memory.grow` adds.
    pub memory_grow_per_page: u64,
    /// Flat cost of a `memory.grow` that is refused.
    pub memory_grow_refused: u64,
    /// Base cost of every host function call.
    pub host_call_base: u64,
    /// Per byte copied between guest memory and the host.
    pub host_copy_per_byte: u64,
    /// Base cost of a storage read (`storage_read`, `storage_has`, `balance`).
    pub storage_read_base: u64,
    /// Per byte of key and value read.
    pub storage_read_per_byte: u64,
    /// Base cost of a storage write.
    pub storage_write_base: u64,
    /// Per byte of key and value written: state is kept by every node.
    pub storage_write_per_byte: u64,
    /// Base cost of a storage removal.
    pub storage_remove_base: u64,
    /// Base cost of one `storage_next` step.
    pub storage_next_base: u64,
    /// Per removed entry a `storage_next` step has to skip.
    pub storage_next_skip: u64,
    /// Base cost of emitting an event.
    pub event_base: u64,
    /// Per byte of event topics and data.
    pub event_per_byte: u64,
    /// Base cost of a debug log line.
    pub log_base: u64,
    /// Base cost of a cross-contract call (an instantiation).
    pub contract_call_base: u64,
    /// Base cost of a native transfer.
    pub transfer_base: u64,
    /// Base cost of `blake3`.
    pub blake3_base: u64,
    /// Per byte hashed by `blake3`.
    pub blake3_per_byte: u64,
    /// Base cost of `ed25519_verify`.
    pub ed25519_verify_base: u64,
    /// Per byte of message verified.
    pub ed25519_verify_per_byte: u64,
    /// Base cost of deploying or upgrading code.
    pub deploy_base: u64,
    /// Per byte of code validated, compiled and stored.
    pub deploy_per_byte: u64,
    /// Stack estimate of a wasm frame, on top of its slots (return address,
    /// frame pointer, spills).
    pub stack_frame_base_bytes: u32,
    /// Stack estimate per local, parameter and operand-stack slot.
    pub stack_slot_bytes: u32,
    /// Stack charged for the host frames of one cross-contract call.
    pub stack_host_call_bytes: u32,
}

/// Version 2 of the gas schedule: regions of code charged in advance for
/// their dearest path (version 1 charged wasmtime fuel per operator run).
pub const GAS_SCHEDULE_V2: GasSchedule = GasSchedule {
    version: 2,
    function_entry: 1,
    bulk_memory_per_byte: 1,
    table_per_element: 1,
    memory_grow_per_page: 5_000,
    memory_grow_refused: 100,
    host_call_base: 40,
    host_copy_per_byte: 1,
    storage_read_base: 2_000,
    storage_read_per_byte: 2,
    storage_write_base: 5_000,
    storage_write_per_byte: 20,
    storage_remove_base: 3_000,
    storage_next_base: 3_000,
    storage_next_skip: 500,
    event_base: 1_000,
    event_per_byte: 10,
    log_base: 200,
    contract_call_base: 10_000,
    transfer_base: 5_000,
    blake3_base: 200,
    blake3_per_byte: 2,
    ed25519_verify_base: 50_000,
    ed25519_verify_per_byte: 2,
    deploy_base: 100_000,
    deploy_per_byte: 2_000,
    stack_frame_base_bytes: 64,
    stack_slot_bytes: 8,
    stack_host_call_bytes: 16 * 1024,
};

impl Default for GasSchedule {
    fn default() -> Self {
        GAS_SCHEDULE_V2
    }
}

impl GasSchedule {
    /// Static cost of one wasm operator: 0 for those that generate no code
    /// or only steer control (`nop`, `drop`, `block`, `loop`, `else`,
    /// `end`, `return`, `unreachable`), 1 for every other. Operators with a
    /// size operand pay per byte or element on top, when they run; see
    /// [`GasSchedule::bulk_memory_per_byte`] and
    /// [`GasSchedule::table_per_element`].
    pub fn operator_cost(&self, op: &Operator<'_>) -> u64 {
        match op {
            Operator::Nop
            | Operator::Drop
            | Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::Else
            | Operator::End
            | Operator::Return
            | Operator::Unreachable => 0,
            _ => 1,
        }
    }

    /// Cost per unit of the size operand of `op`, for operators that have
    /// one (`memory.copy`, `memory.fill`, `memory.init` and the table
    /// operators); `None` for all others.
    pub fn per_unit_cost(&self, op: &Operator<'_>) -> Option<u64> {
        match op {
            Operator::MemoryCopy { .. }
            | Operator::MemoryFill { .. }
            | Operator::MemoryInit { .. } => Some(u64::from(self.bulk_memory_per_byte)),
            Operator::TableCopy { .. }
            | Operator::TableFill { .. }
            | Operator::TableInit { .. }
            | Operator::TableGrow { .. } => Some(u64::from(self.table_per_element)),
            _ => None,
        }
    }

    /// Stack estimate of a frame with `n_slots` locals, parameters and
    /// operand-stack slots.
    pub fn frame_bytes(&self, n_slots: u64) -> u64 {
        u64::from(self.stack_frame_base_bytes) + u64::from(self.stack_slot_bytes) * n_slots
    }

    /// Cost of copying `n_bytes` between guest memory and the host.
    pub fn copy(&self, n_bytes: usize) -> u64 {
        self.host_copy_per_byte.saturating_mul(n_bytes as u64)
    }
}
