//! Every limit of the ABI, as a named constant with its unit last.
//!
//! Deploy-time limits bound what the runtime accepts as contract code;
//! execution limits bound what a running contract may ask of the host.
//! Related limits are tied together by `const` assertions at the bottom, so
//! changing one without the other fails to compile.

// ---------------------------------------------------------------- sizes

/// Size of an account or contract address.
pub const ADDRESS_BYTES: usize = 32;
/// Size of a BLAKE3 hash (code hashes, transaction hashes, topics).
pub const HASH_BYTES: usize = 32;
/// Size of an event topic.
pub const TOPIC_BYTES: usize = 32;
/// Size of a native amount: a little-endian `u128`.
pub const AMOUNT_BYTES: usize = 16;
/// Size of an ed25519 public key.
pub const ED25519_PUBLIC_KEY_BYTES: usize = 32;
/// Size of an ed25519 signature.
pub const ED25519_SIGNATURE_BYTES: usize = 64;
/// Size of one wasm memory page.
pub const MEMORY_PAGE_BYTES: usize = 65_536;

// ---------------------------------------------------------------- deploy

/// Largest contract module, custom sections included; checked before parsing.
pub const CODE_BYTES_MAX: usize = 1024 * 1024;
/// Largest single function body.
pub const FUNCTION_BODY_BYTES_MAX: usize = 256 * 1024;
/// Most functions a module may define.
pub const FUNCTIONS_MAX: usize = 10_000;
/// Most entries in the type section.
pub const TYPES_MAX: usize = 4_096;
/// Most parameters of one function type.
pub const FUNCTION_PARAMS_MAX: usize = 64;
/// Most results of one function type.
pub const FUNCTION_RESULTS_MAX: usize = 8;
/// Most locals of one function, parameters included.
pub const FUNCTION_LOCALS_MAX: usize = 4_096;
/// Most locals over all functions of a module, parameters included.
pub const LOCALS_TOTAL_MAX: usize = 262_144;
/// Deepest nesting of blocks, loops and ifs in one function.
pub const CONTROL_DEPTH_MAX: usize = 1_024;
/// Most globals a module may define.
pub const GLOBALS_MAX: usize = 128;
/// Most tables a module may define.
pub const TABLES_MAX: usize = 1;
/// Most elements of a table, initially or at its declared maximum.
pub const TABLE_ELEMENTS_MAX: usize = 8_192;
/// Most memories a module may define (exactly one is required).
pub const MEMORIES_MAX: usize = 1;
/// Most pages of linear memory, initially or after growing.
pub const MEMORY_PAGES_MAX: usize = 512;
/// Most bytes of linear memory.
pub const MEMORY_BYTES_MAX: usize = MEMORY_PAGES_MAX * MEMORY_PAGE_BYTES;
/// Most data segments.
pub const DATA_SEGMENTS_MAX: usize = 1_024;
/// Most element segments.
pub const ELEMENT_SEGMENTS_MAX: usize = 128;
/// Most imports (all from the host ABI).
pub const IMPORTS_MAX: usize = 128;
/// Most exports, the memory included.
pub const EXPORTS_MAX: usize = 512;
/// Longest export name, and so the longest method name.
pub const METHOD_NAME_BYTES_MAX: usize = 64;

// ---------------------------------------------------------------- execution

/// Deterministic stack budget: the runtime estimates each wasm frame's size
/// from its locals and operand stack height and traps when the frames of a
/// transaction (over every nested contract) would exceed this many bytes.
pub const STACK_BYTES_MAX: usize = 256 * 1024;
/// Most contracts on the call stack at once, the first included.
pub const CALL_DEPTH_MAX: usize = 8;
/// Largest call input.
pub const INPUT_BYTES_MAX: usize = 256 * 1024;
/// Largest return data.
pub const RETURN_BYTES_MAX: usize = 256 * 1024;
/// Longest abort message.
pub const ABORT_MESSAGE_BYTES_MAX: usize = 4 * 1024;
/// Longest storage key (as the contract sees it).
pub const STORAGE_KEY_BYTES_MAX: usize = 1_024;
/// Largest storage value.
pub const STORAGE_VALUE_BYTES_MAX: usize = 256 * 1024;
/// Most topics of one event.
pub const EVENT_TOPICS_MAX: usize = 4;
/// Largest data of one event.
pub const EVENT_DATA_BYTES_MAX: usize = 16 * 1024;
/// Most events one transaction may emit.
pub const EVENTS_PER_TX_MAX: usize = 256;
/// Longest debug log line.
pub const LOG_BYTES_MAX: usize = 4 * 1024;
/// Most debug log lines one transaction may write.
pub const LOGS_PER_TX_MAX: usize = 64;
/// Largest message given to `ed25519_verify` or `blake3`.
pub const HASH_INPUT_BYTES_MAX: usize = 1024 * 1024;

// ---------------------------------------------------------------- ties

// Lengths cross the ABI as non-negative `i32` values.
const _: () = assert!(CODE_BYTES_MAX <= i32::MAX as usize);
const _: () = assert!(INPUT_BYTES_MAX <= i32::MAX as usize);
const _: () = assert!(RETURN_BYTES_MAX <= i32::MAX as usize);
const _: () = assert!(STORAGE_VALUE_BYTES_MAX + STORAGE_KEY_BYTES_MAX + 4 <= i32::MAX as usize);
// Guest memory is addressed with 32 bits.
const _: () = assert!(MEMORY_BYTES_MAX <= u32::MAX as usize);
// Whatever the host hands over must fit in a contract's memory.
const _: () = assert!(INPUT_BYTES_MAX < MEMORY_BYTES_MAX);
const _: () = assert!(RETURN_BYTES_MAX < MEMORY_BYTES_MAX);
const _: () = assert!(STORAGE_VALUE_BYTES_MAX < MEMORY_BYTES_MAX);
// A callee's return data becomes part of what its caller may return.
const _: () = assert!(RETURN_BYTES_MAX <= INPUT_BYTES_MAX);
// A function body and a hash input are parts of, or as large as, a module.
const _: () = assert!(FUNCTION_BODY_BYTES_MAX <= CODE_BYTES_MAX);
const _: () = assert!(HASH_INPUT_BYTES_MAX >= CODE_BYTES_MAX);
// A function's own locals are part of the module total.
const _: () = assert!(FUNCTION_LOCALS_MAX <= LOCALS_TOTAL_MAX);
const _: () = assert!(FUNCTION_PARAMS_MAX <= FUNCTION_LOCALS_MAX);
// Deploy-time frame estimates are counted in `i32` by the instrumentation.
const _: () = assert!(STACK_BYTES_MAX * 4 <= i32::MAX as usize);
const _: () = assert!(CALL_DEPTH_MAX >= 2);
const _: () = assert!(MEMORIES_MAX == 1);
