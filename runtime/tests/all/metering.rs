//! The instrumentation's plans: gas prices (and gas against the work
//! actually done), and which functions need stack accounting.

use stele_runtime::GAS_SCHEDULE_V2;
use stele_runtime::meter::{FunctionPlan, plan};
use stele_runtime::validate::validate;
use wasmtime::{Caller, Config, Engine, Linker, Module, Store};

use crate::harness::{Chain, fixture};

fn entry(entry: u64, loops: &[u64]) -> FunctionPlan {
    FunctionPlan {
        entry,
        loops: loops.to_vec(),
    }
}

/// Each case: a module and the plan of each defined function.
#[test]
fn the_plan_prices_the_dearest_path_of_each_region() {
    let cases: &[(&str, &str, Vec<FunctionPlan>)] = &[
        (
            "straight line: entry, then every operator but drop and end",
            r#"(func (export "m") (drop (i32.add (i32.const 1) (i32.const 2))))"#,
            vec![entry(4, &[])],
        ),
        (
            "if/else: the dearer arm",
            r#"(func (export "m") (local i32)
                 (if (local.get 0)
                   (then (local.set 0 (i32.const 1)))
                   (else (local.set 0 (i32.add (i32.const 1) (i32.const 2))))))"#,
            vec![entry(7, &[])],
        ),
        (
            "a loop pays per iteration, the rest once",
            r#"(func (export "m") (local i32)
                 (local.set 0 (i32.const 5))
                 (loop $l
                   (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
                   (br_if $l (local.get 0)))
                 (nop))"#,
            vec![entry(3, &[6])],
        ),
        (
            "a private helper is folded into its caller",
            r#"(func $h (result i32) (i32.const 7))
               (func (export "m") (drop (call $h)))"#,
            vec![entry(0, &[]), entry(4, &[])],
        ),
        (
            "helpers fold transitively",
            r#"(func $h (result i32) (i32.add (i32.const 7) (i32.const 1)))
               (func $g (result i32) (i32.mul (call $h) (call $h)))
               (func (export "m") (drop (call $g)))"#,
            // h = 1 + 3; g = 1 + 2 × (call 1 + h 4) + mul 1 = 12;
            // m = 1 + call 1 + g 12.
            vec![entry(0, &[]), entry(0, &[]), entry(14, &[])],
        ),
        (
            "recursion is never folded",
            r#"(func $r (param i32)
                 (if (local.get 0)
                   (then (call $r (i32.sub (local.get 0) (i32.const 1))))))
               (func (export "m") (call $r (i32.const 3)))"#,
            vec![entry(7, &[]), entry(3, &[])],
        ),
        (
            "a function in a table is not folded",
            r#"(table 1 funcref)
               (elem (i32.const 0) $t)
               (func $t (drop (i32.const 1)))
               (func (export "m") (call $t))"#,
            vec![entry(2, &[]), entry(2, &[])],
        ),
        (
            "a helper with a loop charges for itself",
            r#"(func $spin (loop $l (br $l)))
               (func (export "m") (call $spin))"#,
            vec![entry(1, &[1]), entry(2, &[])],
        ),
        (
            "after a nested loop the outer path resumes where it entered",
            r#"(func (export "m") (local i32)
                 (block $out
                   (loop $a
                     (br_if $out (local.get 0))
                     (loop $b (br_if $b (local.get 0)))
                     (local.set 0 (i32.const 1))
                     (br $a)))
                 (local.set 0 (i32.const 2)))"#,
            vec![entry(3, &[5, 2])],
        ),
        (
            "br_table: the dearest arm, not the sum of arms",
            r#"(func (export "m") (local i32)
                 (block $c
                   (block $b
                     (block $a (br_table $a $b $c (local.get 0)))
                     (local.set 0 (i32.const 1))
                     (br $c))
                   (local.set 0 (i32.add (i32.const 1) (i32.const 1)))))"#,
            // entry 1; br_table path 2; arm a 2 + 3; arm b 2 + 4.
            vec![entry(7, &[])],
        ),
    ];
    for (label, funcs, expected) in cases {
        let wat = format!(r#"(module (memory (export "memory") 1) {funcs})"#);
        let code = wat::parse_str(&wat).unwrap_or_else(|error| panic!("{label}: {error}"));
        let plan = plan(&code, &GAS_SCHEDULE_V2).expect("valid module");
        assert_eq!(&plan.functions, expected, "{label}");
    }
}

/// Gas wasmtime's fuel (one per operator run and per function entered, one
/// per byte of bulk memory: the same prices as the schedule) counts for
/// `method`, with a host that does nothing.
fn fuel_of(code: &[u8], method: &str) -> (u64, Vec<u8>) {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, code).unwrap();
    let mut linker = Linker::<Vec<u8>>::new(&engine);
    linker
        .func_wrap(
            "stele",
            "return_set",
            |mut caller: Caller<'_, Vec<u8>>, ptr: i32, len: i32| {
                let memory = caller.get_export("memory").unwrap().into_memory().unwrap();
                let mut out = vec![0; len as usize];
                memory.read(&caller, ptr as usize, &mut out).unwrap();
                *caller.data_mut() = out;
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, Vec::new());
    store.set_fuel(1 << 40).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let func = instance
        .get_typed_func::<(), ()>(&mut store, method)
        .unwrap();
    // Instantiation spends fuel too (on passive element segments): count
    // the call alone.
    let before = store.get_fuel().unwrap();
    func.call(&mut store, ()).unwrap();
    (before - store.get_fuel().unwrap(), store.into_data())
}

/// Charging in advance for the dearest path must never let an operator run
/// unpaid: gas covers at least what per-operator fuel counts, and stays
/// within half of it (recursion whose cheap arm runs most, as in `fib`,
/// pays for the dear arm every time: about 40% here).
#[test]
fn gas_covers_every_operator_run_and_little_more() {
    let cases = [
        ("compute", "sort"),
        ("paths", "fib"),
        ("paths", "dispatch"),
        ("paths", "bulk"),
    ];
    let mut chain = Chain::new();
    for (n, (name, method)) in cases.into_iter().enumerate() {
        let code = fixture(name);
        let contract = chain.deploy(n as u8 + 1, &code);
        let outcome = chain.call_with_gas(contract, method, &[], 1 << 40);
        assert!(outcome.is_success(), "{name}::{method}: {:?}", outcome.trap);
        let (fuel, fuel_return) = fuel_of(&code, method);
        assert_eq!(outcome.return_data, fuel_return, "{name}::{method}");
        let gas = outcome.gas_used;
        assert!(
            gas >= fuel,
            "{name}::{method}: gas {gas} is below the {fuel} operators run"
        );
        assert!(
            gas <= fuel + fuel / 2 + 1_000,
            "{name}::{method}: gas {gas} overcharges the {fuel} operators run"
        );
    }
}

/// Gas that runs out part way through loops spends the whole limit, and
/// the trap says so.
#[test]
fn running_out_mid_loop_spends_the_whole_limit() {
    let mut chain = Chain::new();
    let contract = chain.deploy(1, &fixture("compute"));
    for limit in [1, 1_000, 1_000_000] {
        let outcome = chain.call_with_gas(contract, "sort", &[], limit);
        let trap = outcome.trap.expect("runs out of gas");
        assert_eq!(trap.kind, stele_runtime::TrapKind::OutOfGas, "{limit}");
        assert_eq!(outcome.gas_used, limit);
    }
}

/// Stack accounting is left out exactly where the deepest chain of frames
/// is known at deploy time and within the budget.
#[test]
fn stack_accounting_is_skipped_only_where_the_bound_is_static() {
    // Ten functions calling down a chain, each frame about 32 KB of
    // estimate: the chain from f2 down fits STACK_BYTES_MAX, from f1 not.
    let mut chain = String::new();
    for i in 0..10 {
        let call = if i < 9 {
            format!("(call $f{})", i + 1)
        } else {
            String::new()
        };
        chain += &format!("(func $f{i} (local {}) {call})\n", "i64 ".repeat(4000));
    }
    let cases: &[(&str, String, Vec<bool>)] = &[
        (
            "a helper and its caller",
            r#"(func $h (result i32) (i32.const 1))
               (func (export "m") (drop (call $h)))"#
                .into(),
            vec![true, true],
        ),
        (
            "recursion, and whatever calls into it",
            r#"(func $r (param i32) (if (local.get 0) (then (call $r (i32.const 0)))))
               (func (export "m") (call $r (i32.const 1)))
               (func $free (nop))"#
                .into(),
            vec![false, false, true],
        ),
        (
            "an indirect call",
            r#"(type $t (func))
               (table 1 funcref)
               (elem (i32.const 0) $leaf)
               (func $leaf (nop))
               (func (export "m") (call_indirect (type $t) (i32.const 0)))"#
                .into(),
            vec![true, false],
        ),
        (
            "a chain deeper than the budget",
            chain,
            [vec![false, false], vec![true; 8]].concat(),
        ),
    ];
    for (label, funcs, expected) in cases {
        let wat = format!(r#"(module (memory (export "memory") 1) {funcs})"#);
        let code = wat::parse_str(&wat).unwrap_or_else(|error| panic!("{label}: {error}"));
        let info = validate(&code, &GAS_SCHEDULE_V2).expect("valid module");
        assert_eq!(&info.stack_bounded, expected, "{label}");
    }
}
