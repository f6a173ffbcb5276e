//! Items 1–15 of shared/HOSTILE.md: each a case with a WAT fixture (a file
//! in `tests/fixtures`, or generated for the huge ones) and the exact
//! expected outcome.

use std::sync::atomic::{AtomicBool, Ordering};

use stele_host_api::limits::CODE_BYTES_MAX;
use stele_runtime::{Storage, StorageError, TrapKind, storage::keys};

use crate::harness::{Chain, GAS, address, fixture, runtime};

/// Where a case's code comes from.
enum Code {
    Fixture(&'static str),
    Wat(String),
    Bytes(Vec<u8>),
}

impl Code {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Code::Fixture(name) => fixture(name),
            Code::Wat(text) => wat::parse_str(text).expect("generated WAT parses"),
            Code::Bytes(bytes) => bytes.clone(),
        }
    }
}

/// How much gas an execution case must use.
#[derive(Clone, Copy, Debug)]
enum Gas {
    /// The whole limit (out of gas).
    All,
    /// Some, but not all: the regions entered up to the trap are charged.
    Some,
    /// None: refused before running.
    None,
}

enum Expect {
    /// Deployment refused; the error message contains every fragment.
    Rejected(&'static [&'static str]),
    /// The call traps with this kind; the message contains the fragment.
    Trap(TrapKind, &'static str, Gas),
    /// The call succeeds and returns these bytes.
    Returns(Vec<u8>),
}

struct Case {
    item: u8,
    name: &'static str,
    code: Code,
    method: &'static str,
    input: Vec<u8>,
    expect: Expect,
}

fn case(item: u8, name: &'static str, code: Code, method: &'static str, expect: Expect) -> Case {
    Case {
        item,
        name,
        code,
        method,
        input: Vec::new(),
        expect,
    }
}

fn wat(text: &str) -> Code {
    Code::Wat(text.to_string())
}

/// A minimal valid contract with `body` added inside the module.
fn module(body: &str) -> Code {
    Code::Wat(format!("(module (memory (export \"memory\") 1) {body})"))
}

/// Appends a custom section so the module is exactly `total_bytes` long.
fn padded_to(mut module: Vec<u8>, total_bytes: usize) -> Vec<u8> {
    let name = b"pad";
    // Section id, 5-byte padded LEB128 size, name length, name, payload.
    let overhead = 1 + 5 + 1 + name.len();
    let payload = total_bytes - module.len() - overhead;
    let size = (1 + name.len() + payload) as u32;
    module.push(0);
    for shift in 0..5 {
        let byte = ((size >> (7 * shift)) & 0x7f) as u8;
        module.push(if shift < 4 { byte | 0x80 } else { byte });
    }
    module.push(name.len() as u8);
    module.extend_from_slice(name);
    module.resize(total_bytes, 0);
    module
}

fn minimal() -> Vec<u8> {
    wat::parse_str("(module (memory (export \"memory\") 1) (func (export \"noop\")))").unwrap()
}

fn cases() -> Vec<Case> {
    use Expect::{Rejected, Returns, Trap};
    let mut valid_truncated = fixture("sink");
    valid_truncated.truncate(valid_truncated.len() / 2);
    let params_100 = "i32 ".repeat(100);
    let many_functions = format!(
        "(module (type $big (func (param {params_100}))) (memory (export \"memory\") 1) {})",
        "(func (type $big))".repeat(20_000)
    );
    let few_functions = format!(
        "(module (type $big (func (param {params_100}))) (memory (export \"memory\") 1) {})",
        "(func (type $big))".repeat(100)
    );
    let locals_50k = format!("(func (local {}))", "i32 ".repeat(50_000));
    let nested_10k = format!("(func {} {})", "(block ".repeat(10_000), ")".repeat(10_000));

    vec![
        // 1. Garbage, truncation, bad magic, size.
        case(
            1,
            "garbage",
            Code::Bytes(b"not a wasm module at all".to_vec()),
            "",
            Rejected(&["malformed module"]),
        ),
        case(
            1,
            "bad magic",
            Code::Bytes(b"\0asn\x01\0\0\0".to_vec()),
            "",
            Rejected(&["malformed module"]),
        ),
        case(
            1,
            "truncated",
            Code::Bytes(valid_truncated),
            "",
            Rejected(&["malformed module"]),
        ),
        case(
            1,
            "one byte over the size limit, rejected before parsing",
            Code::Bytes(vec![0xff; CODE_BYTES_MAX + 1]),
            "",
            Rejected(&["code size in bytes is 1048577", "CODE_BYTES_MAX = 1048576"]),
        ),
        case(
            1,
            "huge custom section counts toward size",
            Code::Bytes(padded_to(minimal(), CODE_BYTES_MAX + 1)),
            "",
            Rejected(&["CODE_BYTES_MAX"]),
        ),
        case(
            1,
            "custom section exactly at the size limit",
            Code::Bytes(padded_to(minimal(), CODE_BYTES_MAX)),
            "noop",
            Returns(vec![]),
        ),
        // 2. Compile bombs.
        case(
            2,
            "100-param signature shared by 20k functions",
            Code::Wat(many_functions),
            "",
            Rejected(&["defined functions is 20000", "FUNCTIONS_MAX = 10000"]),
        ),
        case(
            2,
            "100-param signature",
            Code::Wat(few_functions),
            "",
            Rejected(&["function 0: parameters is 100", "FUNCTION_PARAMS_MAX = 64"]),
        ),
        case(
            2,
            "50k locals",
            module(&locals_50k),
            "",
            Rejected(&["function 0: locals is 50000", "FUNCTION_LOCALS_MAX = 4096"]),
        ),
        case(
            2,
            "10k nested blocks",
            module(&nested_10k),
            "",
            Rejected(&[
                "function 0: control nesting depth is 1025",
                "CONTROL_DEPTH_MAX = 1024",
            ]),
        ),
        // 3. Memories and tables.
        case(
            3,
            "initial memory too large",
            wat("(module (memory (export \"memory\") 513))"),
            "",
            Rejected(&["memory pages is 513", "MEMORY_PAGES_MAX = 512"]),
        ),
        case(
            3,
            "declared maximum above ours",
            wat("(module (memory (export \"memory\") 1 100000))"),
            "",
            Rejected(&["memory pages is 100000", "MEMORY_PAGES_MAX"]),
        ),
        case(
            3,
            "two memories",
            wat("(module (memory (export \"memory\") 1) (memory 1))"),
            "",
            Rejected(&["multi_memory proposal is not enabled"]),
        ),
        case(
            3,
            "memory64",
            wat("(module (memory (export \"memory\") i64 1))"),
            "",
            Rejected(&["memory64 proposal is not enabled"]),
        ),
        case(
            3,
            "shared memory",
            wat("(module (memory (export \"memory\") 1 1 shared))"),
            "",
            Rejected(&["threads proposal is not enabled"]),
        ),
        case(
            3,
            "no memory",
            wat("(module (func (export \"f\")))"),
            "",
            Rejected(&["defines no memory"]),
        ),
        case(
            3,
            "two tables",
            module("(table 1 funcref) (table 1 funcref)"),
            "",
            Rejected(&["tables is 2", "TABLES_MAX = 1"]),
        ),
        case(
            3,
            "table too large",
            module("(table 10000 funcref)"),
            "",
            Rejected(&["table elements is 10000", "TABLE_ELEMENTS_MAX = 8192"]),
        ),
        case(
            3,
            "too many data segments",
            module(&"(data (i32.const 0) \"x\")".repeat(1025)),
            "",
            Rejected(&["data segments is 1025", "DATA_SEGMENTS_MAX = 1024"]),
        ),
        case(
            3,
            "too many element segments",
            module(&format!(
                "(table 1 funcref) (func $f) {}",
                "(elem (i32.const 0) $f)".repeat(129)
            )),
            "",
            Rejected(&["element segments is 129", "ELEMENT_SEGMENTS_MAX = 128"]),
        ),
        case(
            3,
            "data segment past the end of memory traps at instantiation",
            module("(data (i32.const 65530) \"0123456789\") (func (export \"f\"))"),
            "f",
            Trap(TrapKind::MemoryOutOfBounds, "out of bounds", Gas::None),
        ),
        // 4. Disabled proposals, each named.
        case(
            4,
            "simd",
            module("(func (drop (v128.const i64x2 0 0)))"),
            "",
            Rejected(&["simd proposal"]),
        ),
        case(
            4,
            "relaxed simd (needs simd first)",
            module("(func (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i64x2 0 0))))"),
            "",
            Rejected(&["simd proposal"]),
        ),
        case(
            4,
            "threads",
            module("(func (drop (i32.atomic.load (i32.const 0))))"),
            "",
            Rejected(&["function 0: the threads proposal"]),
        ),
        case(
            4,
            "tail calls",
            module("(func $f (return_call $f))"),
            "",
            Rejected(&["function 0: the tail_call proposal"]),
        ),
        case(
            4,
            "exceptions",
            module("(tag $e)"),
            "",
            Rejected(&["exceptions proposal"]),
        ),
        case(
            4,
            "gc",
            module("(type (struct))"),
            "",
            Rejected(&["gc proposal"]),
        ),
        case(
            4,
            "reference-typed values",
            module("(func (local funcref))"),
            "",
            Rejected(&["gc proposal"]),
        ),
        // 5. Imports, start, exports.
        case(
            5,
            "unknown import",
            wat(
                "(module (import \"stele\" \"launch_missiles\" (func)) (memory (export \"memory\") 1))",
            ),
            "",
            Rejected(&["unknown import stele::launch_missiles"]),
        ),
        case(
            5,
            "import from another module",
            wat("(module (import \"env\" \"memcpy\" (func)) (memory (export \"memory\") 1))"),
            "",
            Rejected(&["unknown import env::memcpy"]),
        ),
        case(
            5,
            "wrong signature",
            wat(
                "(module (import \"stele\" \"input_len\" (func (result i64))) (memory (export \"memory\") 1))",
            ),
            "",
            Rejected(&["stele::input_len has signature [] -> [i64], expected [] -> [i32]"]),
        ),
        case(
            5,
            "imported memory",
            wat("(module (import \"stele\" \"memory\" (memory 1)))"),
            "",
            Rejected(&["stele::memory is a memory"]),
        ),
        case(
            5,
            "imported table",
            wat(
                "(module (import \"stele\" \"t\" (table 1 funcref)) (memory (export \"memory\") 1))",
            ),
            "",
            Rejected(&["stele::t is a table"]),
        ),
        case(
            5,
            "imported global",
            wat("(module (import \"stele\" \"g\" (global i32)) (memory (export \"memory\") 1))"),
            "",
            Rejected(&["stele::g is a global"]),
        ),
        case(
            5,
            "start function",
            module("(func $s) (start $s)"),
            "",
            Rejected(&["function 0: start functions"]),
        ),
        case(
            5,
            "memory not exported",
            wat("(module (memory 1))"),
            "",
            Rejected(&["not exported as `memory`"]),
        ),
        case(
            5,
            "duplicate export",
            module("(func $a (export \"go\")) (func $b (export \"go\"))"),
            "",
            Rejected(&["export `go` is defined twice"]),
        ),
        case(
            5,
            "reserved export",
            module("(func (export \"__stele_stack\"))"),
            "",
            Rejected(&["export `__stele_stack` uses the reserved prefix"]),
        ),
        case(
            5,
            "export with a non-method signature",
            module("(func (export \"add\") (param i32))"),
            "",
            Rejected(&["function 0: exported as `add` with signature [i32] -> []"]),
        ),
        case(
            5,
            "missing method",
            module("(func (export \"present\"))"),
            "absent",
            Trap(
                TrapKind::MethodNotFound,
                "no callable method `absent`",
                Gas::None,
            ),
        ),
        case(
            5,
            "init is not callable after deployment",
            module("(func (export \"init\"))"),
            "init",
            Trap(TrapKind::MethodNotFound, "`init`", Gas::None),
        ),
        // 7. Infinite loop.
        case(
            7,
            "loop br 0",
            Code::Fixture("spin"),
            "spin",
            Trap(TrapKind::OutOfGas, "out of gas", Gas::All),
        ),
        // 8. Recursion.
        case(
            8,
            "unbounded recursion, small frames",
            Code::Fixture("recurse"),
            "recurse",
            Trap(TrapKind::StackExhausted, "STACK_BYTES_MAX", Gas::Some),
        ),
        case(
            8,
            "unbounded recursion, large frames",
            Code::Fixture("recurse"),
            "recurse_large",
            Trap(TrapKind::StackExhausted, "STACK_BYTES_MAX", Gas::Some),
        ),
        case(
            8,
            "bounded recursion still works",
            Code::Fixture("recurse"),
            "count_100",
            Returns(vec![]),
        ),
        // 10. Memory growth and bounds.
        case(
            10,
            "grow within the limit",
            Code::Fixture("grow"),
            "grow",
            Returns(1i32.to_le_bytes().to_vec()),
        )
        .with_input(10i32.to_le_bytes().to_vec()),
        case(
            10,
            "grow past the limit returns -1",
            Code::Fixture("grow"),
            "grow",
            Returns((-1i32).to_le_bytes().to_vec()),
        )
        .with_input(512i32.to_le_bytes().to_vec()),
        case(
            10,
            "load past the end",
            Code::Fixture("grow"),
            "load_past_end",
            Trap(TrapKind::MemoryOutOfBounds, "out of bounds", Gas::Some),
        ),
        case(
            10,
            "address plus offset does not wrap",
            Code::Fixture("grow"),
            "offset_wraps",
            Trap(TrapKind::MemoryOutOfBounds, "out of bounds", Gas::Some),
        ),
        case(
            10,
            "store straddling the end",
            Code::Fixture("grow"),
            "store_past_end",
            Trap(TrapKind::MemoryOutOfBounds, "out of bounds", Gas::Some),
        ),
        // 11. Host-call pointers and lengths.
        case(
            11,
            "return data past the end of memory",
            Code::Fixture("hostcalls"),
            "return_past_end",
            Trap(
                TrapKind::MemoryOutOfBounds,
                "bytes [524200, 524200+100) are outside memory of 524288 bytes",
                Gas::Some,
            ),
        ),
        case(
            11,
            "value length u32::MAX",
            Code::Fixture("hostcalls"),
            "value_len_u32_max",
            Trap(
                TrapKind::HostLimit,
                "storage value is 4294967295 bytes, over the limit STORAGE_VALUE_BYTES_MAX",
                Gas::Some,
            ),
        ),
        case(
            11,
            "key pointer u32::MAX",
            Code::Fixture("hostcalls"),
            "key_ptr_u32_max",
            Trap(
                TrapKind::MemoryOutOfBounds,
                "bytes [4294967295, 4294967295+1)",
                Gas::Some,
            ),
        ),
        case(
            11,
            "hash length u32::MAX",
            Code::Fixture("hostcalls"),
            "hash_len_u32_max",
            Trap(
                TrapKind::HostLimit,
                "hash input is 4294967295 bytes",
                Gas::Some,
            ),
        ),
        case(
            11,
            "destination past the end",
            Code::Fixture("hostcalls"),
            "dst_past_end",
            Trap(
                TrapKind::MemoryOutOfBounds,
                "bytes [524287, 524287+4) are outside memory",
                Gas::Some,
            ),
        ),
        case(
            11,
            "overlapping buffers",
            Code::Fixture("hostcalls"),
            "overlap",
            Returns(b"k".to_vec()),
        ),
        // 12. Execution limits.
        case(
            12,
            "storage key too long",
            Code::Fixture("hostcalls"),
            "key_too_long",
            Trap(
                TrapKind::HostLimit,
                "storage key is 1025 bytes, over the limit STORAGE_KEY_BYTES_MAX = 1024",
                Gas::Some,
            ),
        ),
        case(
            12,
            "storage value too long",
            Code::Fixture("hostcalls"),
            "value_too_long",
            Trap(
                TrapKind::HostLimit,
                "STORAGE_VALUE_BYTES_MAX = 262144",
                Gas::Some,
            ),
        ),
        case(
            12,
            "too many topics",
            Code::Fixture("hostcalls"),
            "too_many_topics",
            Trap(
                TrapKind::HostLimit,
                "event has 5 topics, over the limit EVENT_TOPICS_MAX = 4",
                Gas::Some,
            ),
        ),
        case(
            12,
            "event data too long",
            Code::Fixture("hostcalls"),
            "event_data_too_long",
            Trap(
                TrapKind::HostLimit,
                "EVENT_DATA_BYTES_MAX = 16384",
                Gas::Some,
            ),
        ),
        case(
            12,
            "too many events",
            Code::Fixture("hostcalls"),
            "too_many_events",
            Trap(
                TrapKind::HostLimit,
                "more than EVENTS_PER_TX_MAX = 256 events",
                Gas::Some,
            ),
        ),
        case(
            12,
            "return data too long",
            Code::Fixture("hostcalls"),
            "return_too_long",
            Trap(TrapKind::HostLimit, "RETURN_BYTES_MAX = 262144", Gas::Some),
        ),
        case(
            12,
            "log line too long",
            Code::Fixture("hostcalls"),
            "log_too_long",
            Trap(TrapKind::HostLimit, "LOG_BYTES_MAX = 4096", Gas::Some),
        ),
        case(
            12,
            "too many log lines",
            Code::Fixture("hostcalls"),
            "too_many_logs",
            Trap(TrapKind::HostLimit, "LOGS_PER_TX_MAX = 64", Gas::Some),
        ),
        // 15. Worst cases for time per gas: each stops exactly at its limit
        // (the time per gas is measured by `runtime::gas_rate` benchmarks).
        case(
            15,
            "branch-heavy",
            Code::Fixture("worst"),
            "branchy",
            Trap(TrapKind::OutOfGas, "out of gas", Gas::All),
        ),
        case(
            15,
            "memory-heavy",
            Code::Fixture("worst"),
            "memory_heavy",
            Trap(TrapKind::OutOfGas, "out of gas", Gas::All),
        ),
        case(
            15,
            "host-call-heavy (cheapest call)",
            Code::Fixture("worst"),
            "host_cheap",
            Trap(TrapKind::OutOfGas, "out of gas", Gas::All),
        ),
        case(
            15,
            "host-call-heavy (storage)",
            Code::Fixture("worst"),
            "host_storage",
            Trap(TrapKind::OutOfGas, "out of gas", Gas::All),
        ),
        case(
            15,
            "host-call-heavy (hashing)",
            Code::Fixture("worst"),
            "host_hash",
            Trap(TrapKind::OutOfGas, "out of gas", Gas::All),
        ),
    ]
}

impl Case {
    fn with_input(mut self, input: Vec<u8>) -> Self {
        self.input = input;
        self
    }
}

/// Runs one case on a fresh chain and checks its expected outcome.
fn check(case: &Case) -> stele_runtime::Outcome {
    let label = format!("hostile {} ({})", case.item, case.name);
    let code = case.code.bytes();
    let mut chain = Chain::new();
    let deployed = chain.try_deploy(1, &code);
    if let Expect::Rejected(fragments) = &case.expect {
        let trap = deployed
            .trap
            .as_ref()
            .unwrap_or_else(|| panic!("{label}: deployment was accepted"));
        assert_eq!(trap.kind, TrapKind::InvalidCode, "{label}: {trap:?}");
        let validated = chain
            .runtime
            .validate(&code)
            .expect_err("validation agrees with deployment")
            .to_string();
        for fragment in *fragments {
            assert!(
                trap.message.contains(fragment),
                "{label}: {:?} lacks {fragment:?}",
                trap.message
            );
            assert!(
                validated.contains(fragment),
                "{label}: {validated:?} lacks {fragment:?}"
            );
        }
        assert!(
            deployed.writes.is_empty(),
            "{label}: a refused deployment writes nothing"
        );
        return deployed;
    }
    assert!(
        deployed.is_success(),
        "{label}: deployment failed: {:?}",
        deployed.trap
    );
    let outcome = chain.call(address(1), case.method, &case.input);
    match &case.expect {
        Expect::Returns(data) => {
            assert_eq!(outcome.trap, None, "{label}");
            assert_eq!(&outcome.return_data, data, "{label}");
        }
        Expect::Trap(kind, fragment, gas) => {
            let trap = outcome
                .trap
                .as_ref()
                .unwrap_or_else(|| panic!("{label}: no trap"));
            assert_eq!(trap.kind, *kind, "{label}: {trap:?}");
            assert!(
                trap.message.contains(fragment),
                "{label}: {:?} lacks {fragment:?}",
                trap.message
            );
            assert!(
                outcome.writes.is_empty() && outcome.events.is_empty(),
                "{label}: a trap commits nothing"
            );
            match gas {
                Gas::All => assert_eq!(outcome.gas_used, GAS, "{label}"),
                Gas::Some => assert!(
                    outcome.gas_used > 0 && outcome.gas_used < GAS,
                    "{label}: {}",
                    outcome.gas_used
                ),
                Gas::None => assert_eq!(outcome.gas_used, 0, "{label}"),
            }
        }
        Expect::Rejected(_) => unreachable!(),
    }
    outcome
}

#[test]
fn hostile_inputs_give_their_exact_outcomes() {
    let cases = cases();
    for item in [1, 2, 3, 4, 5, 7, 8, 10, 11, 12, 15] {
        assert!(
            cases.iter().any(|case| case.item == item),
            "no case for hostile item {item}"
        );
    }
    for case in &cases {
        check(case);
    }
}

#[test]
fn execution_traps_are_identical_on_every_run() {
    // Same code, same input, fresh runtimes: the same trap, message and gas.
    for case in cases()
        .iter()
        .filter(|case| matches!(case.expect, Expect::Trap(..)))
    {
        let first = check(case);
        let second = check(case);
        assert_eq!(
            first, second,
            "hostile {} ({}) differs between runs",
            case.item, case.name
        );
    }
}

#[test]
fn memory_growth_is_charged_per_page() {
    let mut chain = Chain::new();
    let grow = chain.deploy(1, &fixture("grow"));
    let by =
        |chain: &mut Chain, pages: i32| chain.call(grow, "grow", &pages.to_le_bytes()).gas_used;
    let (zero, one, three) = (by(&mut chain, 0), by(&mut chain, 1), by(&mut chain, 3));
    let per_page = chain.runtime.schedule().memory_grow_per_page;
    assert_eq!(one - zero, per_page);
    assert_eq!(three - zero, 3 * per_page);
    // A refused growth costs the flat refusal price, not the pages asked for.
    let refused = by(&mut chain, 100_000);
    assert_eq!(refused - zero, chain.runtime.schedule().memory_grow_refused);
}

#[test]
fn out_of_gas_reverts_writes_and_a_smaller_limit_is_also_all_charged() {
    let mut chain = Chain::new();
    let spin = chain.deploy(1, &fixture("spin"));
    for limit in [1, 10_000, 123_456] {
        let outcome = chain.call_with_gas(spin, "spin", &[], limit);
        assert_eq!(
            outcome.trap.as_ref().map(|trap| trap.kind),
            Some(TrapKind::OutOfGas)
        );
        assert_eq!(outcome.gas_used, limit);
        assert!(outcome.writes.is_empty());
    }
    assert_eq!(
        chain
            .storage
            .get(&keys::contract_storage(&spin, b"key"))
            .unwrap(),
        None
    );
}

#[test]
fn reentry_and_depth_are_refused_and_the_host_survives() {
    // Hostile 9. Contracts 1..=9 all run the relay.
    let mut chain = Chain::new();
    let code = fixture("relay");
    for n in 1..=9 {
        chain.deploy(n, &code);
    }
    let route = |hops: &[u8]| hops.iter().flat_map(|&n| address(n).0).collect::<Vec<u8>>();
    let status = |data: &[u8]| i32::from_le_bytes(data[..4].try_into().unwrap());

    // 1 → 2 → 1: the second entry into 1 is refused; 2 reports it to 1.
    // (A successful call's status is the length of its return data.)
    let outcome = chain.call(address(1), "relay", &route(&[2, 1]));
    assert!(outcome.is_success(), "{:?}", outcome.trap);
    assert_eq!(
        status(&outcome.return_data) as usize,
        outcome.return_data.len() - 4,
        "1 → 2 succeeded"
    );
    let inner = &outcome.return_data[4..];
    assert_eq!(status(inner), stele_host_api::status::REENTRANCY_REFUSED);
    assert!(String::from_utf8_lossy(&inner[4..]).contains("re-entrancy refused"));

    // A contract calling itself directly is refused the same way.
    let outcome = chain.call(address(1), "relay", &route(&[1]));
    assert_eq!(
        status(&outcome.return_data),
        stele_host_api::status::REENTRANCY_REFUSED
    );

    // 1 → 2 → ... → 9: the ninth contract would exceed CALL_DEPTH_MAX = 8.
    let outcome = chain.call(address(1), "relay", &route(&[2, 3, 4, 5, 6, 7, 8, 9]));
    let mut data = outcome.return_data.as_slice();
    for _ in 2..=8 {
        assert_eq!(status(data) as usize, data.len() - 4);
        data = &data[4..];
    }
    assert_eq!(status(data), stele_host_api::status::CALL_DEPTH_EXCEEDED);

    // The chain of eight works, and the runtime keeps serving calls.
    let outcome = chain.call(address(1), "relay", &route(&[2, 3, 4, 5, 6, 7, 8]));
    let mut data = outcome.return_data.as_slice();
    for _ in 2..=8 {
        assert_eq!(status(data) as usize, data.len() - 4);
        data = &data[4..];
    }
    assert_eq!(data, b"leaf");
}

#[test]
fn a_callee_abort_reaches_the_caller_and_its_writes_are_undone() {
    let mut chain = Chain::new();
    let caller = chain.deploy(1, &fixture("relay"));
    // The callee's `relay` export is replaced by an aborting one.
    let aborting = wat::parse_str(
        r#"(module
            (import "stele" "storage_write" (func $w (param i32 i32 i32 i32)))
            (import "stele" "abort" (func $abort (param i32 i32)))
            (memory (export "memory") 1)
            (data (i32.const 0) "callee-key" "callee says no")
            (func (export "relay")
              (call $w (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 10))
              (call $abort (i32.const 10) (i32.const 14))))"#,
    )
    .unwrap();
    let callee = chain.deploy(2, &aborting);
    let outcome = chain.call(caller, "relay", &callee.0);
    assert!(outcome.is_success(), "{:?}", outcome.trap);
    let status = i32::from_le_bytes(outcome.return_data[..4].try_into().unwrap());
    assert_eq!(status, stele_host_api::status::CALLEE_FAILED);
    assert_eq!(&outcome.return_data[4..], b"callee says no");
    assert!(
        outcome
            .writes
            .contains_key(&keys::contract_storage(&caller, b"visited"))
    );
    assert!(
        !outcome
            .writes
            .contains_key(&keys::contract_storage(&callee, b"callee-key"))
    );
}

/// A storage whose reads fail or panic on one key.
struct FaultyStorage {
    inner: stele_runtime::MemoryStorage,
    poisoned_key: Vec<u8>,
    panic: bool,
    hit: AtomicBool,
}

impl Storage for FaultyStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if key == self.poisoned_key {
            self.hit.store(true, Ordering::SeqCst);
            if self.panic {
                panic!("disk on fire");
            }
            return Err(StorageError("read error on sector 7".into()));
        }
        self.inner.get(key)
    }

    fn next(
        &self,
        start: &[u8],
        prefix: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StorageError> {
        self.inner.next(start, prefix)
    }
}

#[test]
fn failing_or_panicking_host_becomes_a_fault_and_leaves_nothing_behind() {
    // Hostile 14.
    let mut chain = Chain::new();
    let contract = chain.deploy(1, &fixture("store"));
    let baseline = chain.call(contract, "run", b"input");
    assert!(baseline.is_success());
    let counter_key = keys::contract_storage(&contract, b"counter");
    for panic in [false, true] {
        let faulty = FaultyStorage {
            inner: chain.storage.clone(),
            poisoned_key: counter_key.clone(),
            panic,
            hit: AtomicBool::new(false),
        };
        let call = stele_runtime::Call {
            caller: crate::harness::ALICE,
            contract,
            method: "run".into(),
            input: b"input".to_vec(),
            gas_limit: GAS,
        };
        let fault = chain
            .runtime
            .call(&faulty, &chain.ctx, &call)
            .expect_err("a host fault");
        assert!(faulty.hit.load(Ordering::SeqCst));
        let expected = if panic {
            "host panicked: disk on fire"
        } else {
            "read error on sector 7"
        };
        assert!(fault.message.contains(expected), "{fault}");
        assert!(fault.gas_used > 0, "gas up to the fault is reported");
        // The same runtime serves the next call exactly as before.
        let again = chain
            .runtime
            .call(&chain.storage, &chain.ctx, &call)
            .unwrap();
        assert!(again.is_success());
        assert_eq!(
            again,
            runtime().call(&chain.storage, &chain.ctx, &call).unwrap()
        );
    }
}

#[test]
fn memory_is_fresh_for_every_call() {
    // A pooled slot is reused, but never with a previous call's contents.
    let mut chain = Chain::new();
    let code = wat::parse_str(
        r#"(module
            (import "stele" "return_set" (func $ret (param i32 i32)))
            (memory (export "memory") 1)
            (func (export "dirty")
              (i64.store (i32.const 100) (i64.const -1))
              (drop (memory.grow (i32.const 1)))
              (i64.store (i32.const 70000) (i64.const -1)))
            (func (export "peek")
              (i64.store (i32.const 0) (i64.or (i64.load (i32.const 100)) (i64.extend_i32_u (memory.size))))
              (call $ret (i32.const 0) (i32.const 8))))"#,
    )
    .unwrap();
    let contract = chain.deploy(1, &code);
    assert!(chain.call(contract, "dirty", &[]).is_success());
    let peek = chain.call(contract, "peek", &[]);
    assert_eq!(
        peek.return_data,
        1u64.to_le_bytes(),
        "old data or old size leaked"
    );
}
