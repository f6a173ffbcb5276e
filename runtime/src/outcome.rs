//! What a call produces: an [`Outcome`] (recorded on chain, success or
//! guest trap alike) or a [`HostFault`] (never committed).

use borsh::{BorshDeserialize, BorshSerialize};
use stele_host_api::{Address, Event};
use thiserror::Error;

use crate::storage::WriteSet;

/// Why a call stopped early. Every kind is deterministic: the same code,
/// input and state give the same kind and message on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub enum TrapKind {
    /// The gas limit was reached; the whole limit is charged.
    OutOfGas,
    /// The deterministic stack budget (`STACK_BYTES_MAX`) was exhausted.
    StackExhausted,
    /// A wasm `unreachable` (a Rust panic without a message, for instance).
    Unreachable,
    /// A memory access outside linear memory, by wasm or through a host call.
    MemoryOutOfBounds,
    /// A table access outside the table, or a call through a null entry.
    TableOutOfBounds,
    /// An indirect call with the wrong signature.
    BadSignature,
    /// Integer overflow (`i32.div_s` of `MIN` by -1, for instance).
    IntegerOverflow,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero,
    /// A trapping float-to-int conversion of a NaN or out-of-range value.
    BadConversionToInteger,
    /// The contract called `abort`; the message is the contract's.
    ContractAbort,
    /// A host call broke an ABI limit (sizes, counts).
    HostLimit,
    /// No contract at the called address.
    NotAContract,
    /// The contract has no such callable method.
    MethodNotFound,
    /// Deployed or upgraded code failed validation.
    InvalidCode,
    /// A contract is already deployed at the address.
    ContractExists,
    /// A native transfer exceeded the sender's balance.
    InsufficientBalance,
}

/// A guest trap: the kind and a deterministic message.
#[derive(Clone, Debug, PartialEq, Eq, Error, BorshSerialize, BorshDeserialize)]
#[error("{}: {message}", kind.name())]
pub struct Trap {
    /// What happened.
    pub kind: TrapKind,
    /// Details: the contract's abort message, the limit broken, ...
    pub message: String,
}

impl TrapKind {
    /// A short readable name.
    pub fn name(self) -> &'static str {
        match self {
            TrapKind::OutOfGas => "out of gas",
            TrapKind::StackExhausted => "stack exhausted",
            TrapKind::Unreachable => "unreachable",
            TrapKind::MemoryOutOfBounds => "memory out of bounds",
            TrapKind::TableOutOfBounds => "table out of bounds",
            TrapKind::BadSignature => "bad signature",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::IntegerDivisionByZero => "integer division by zero",
            TrapKind::BadConversionToInteger => "bad conversion to integer",
            TrapKind::ContractAbort => "contract abort",
            TrapKind::HostLimit => "host limit",
            TrapKind::NotAContract => "not a contract",
            TrapKind::MethodNotFound => "method not found",
            TrapKind::InvalidCode => "invalid code",
            TrapKind::ContractExists => "contract exists",
            TrapKind::InsufficientBalance => "insufficient balance",
        }
    }
}

impl Trap {
    pub(crate) fn new(kind: TrapKind, message: impl Into<String>) -> Self {
        Trap {
            kind,
            message: message.into(),
        }
    }

    /// The text a calling contract receives through `call_result_read`: a
    /// contract's own abort message verbatim, otherwise `kind: message`.
    pub fn caller_message(&self) -> String {
        match self.kind {
            TrapKind::ContractAbort => self.message.clone(),
            kind => format!("{}: {}", kind.name(), self.message),
        }
    }
}

/// A fault of the host itself (storage I/O, resource exhaustion, a bug).
/// Never recorded as an outcome: the block executing it must stop.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("host fault after {gas_used} gas: {message}")]
pub struct HostFault {
    /// What went wrong.
    pub message: String,
    /// Gas used before the fault.
    pub gas_used: u64,
}

/// The result of executing one top-level call, deployment or transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `None` on success; the trap otherwise (then `writes`, `events` and
    /// `return_data` are empty).
    pub trap: Option<Trap>,
    /// Data the called method returned.
    pub return_data: Vec<u8>,
    /// Events emitted, in order, by every contract of the call tree that
    /// did not fail.
    pub events: Vec<Event>,
    /// Gas consumed; the whole limit when out of gas.
    pub gas_used: u64,
    /// State writes to apply when committing.
    pub writes: WriteSet,
    /// Debug log lines (never consensus-relevant).
    pub logs: Vec<String>,
}

impl Outcome {
    /// Whether the call succeeded.
    pub fn is_success(&self) -> bool {
        self.trap.is_none()
    }
}

/// Block and transaction facts a contract can read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Height of the block being executed.
    pub block_height: u64,
    /// Block time, milliseconds since the Unix epoch.
    pub block_time_ms: u64,
    /// The account that signed the transaction.
    pub origin: Address,
    /// Hash of the transaction.
    pub tx_hash: [u8; 32],
}

/// A top-level method call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Who calls (the transaction's signer, for a transaction).
    pub caller: Address,
    /// The contract called.
    pub contract: Address,
    /// Method (export) name.
    pub method: String,
    /// Borsh-encoded arguments, as the method expects them.
    pub input: Vec<u8>,
    /// Most gas the call may use.
    pub gas_limit: u64,
}

/// A deployment of new code at a fresh address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deploy {
    /// Who deploys; the caller of `init`.
    pub deployer: Address,
    /// Address of the new contract (chosen by the chain).
    pub address: Address,
    /// Original wasm code.
    pub code: Vec<u8>,
    /// Input for the `init` export; `None` skips it.
    pub init_input: Option<Vec<u8>>,
    /// Most gas the deployment (validation, compilation, init) may use.
    pub gas_limit: u64,
}

/// A replacement of a contract's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// Who upgrades; the caller of `migrate`.
    pub caller: Address,
    /// The contract.
    pub contract: Address,
    /// New wasm code.
    pub code: Vec<u8>,
    /// Input for the new code's `migrate` export; `None` skips it.
    pub migrate_input: Option<Vec<u8>>,
    /// Most gas the upgrade (validation, compilation, migration) may use.
    pub gas_limit: u64,
}
