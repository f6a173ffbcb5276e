//! The host ABI through contracts: every function, native transfers,
//! deployment with `init`, and upgrades with migration.

use ed25519_dalek::{Signer, SigningKey};
use stele_host_api::{Address, abi, status};
use stele_runtime::{Storage, TrapKind, storage::keys};

use crate::harness::{ALICE, Chain, address, fixture};

fn i32_of(data: &[u8]) -> i32 {
    i32::from_le_bytes(data.try_into().expect("4 bytes"))
}

#[test]
fn the_linker_defines_every_abi_function_with_its_exact_signature() {
    // A module importing all of them instantiates only if each one exists
    // with exactly this signature.
    let ty = |types: &[abi::ValType]| {
        types
            .iter()
            .map(|ty| match ty {
                abi::ValType::I32 => "i32",
                abi::ValType::I64 => "i64",
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let imports: String = abi::IMPORTS
        .iter()
        .map(|f| {
            format!(
                "(import \"stele\" \"{}\" (func (param {}) (result {})))",
                f.name,
                ty(f.params),
                ty(f.results)
            )
        })
        .collect();
    let code = wat::parse_str(format!(
        "(module {imports} (memory (export \"memory\") 1) (func (export \"noop\")))"
    ))
    .unwrap();
    let mut chain = Chain::new();
    let contract = chain.deploy(1, &code);
    let outcome = chain.call(contract, "noop", &[]);
    assert!(outcome.is_success(), "{:?}", outcome.trap);
}

#[test]
fn storage_reads_writes_removals_and_ordered_iteration() {
    let mut chain = Chain::new();
    let sink = chain.deploy(1, &fixture("sink"));
    let put = |chain: &mut Chain, key: &[u8], value: &[u8]| {
        let input = [&(key.len() as u32).to_le_bytes()[..], key, value].concat();
        assert!(chain.call(sink, "put", &input).is_success());
    };
    for (key, value) in [
        (&b"p/2"[..], &b"two"[..]),
        (b"p/1", b"one"),
        (b"q/1", b"other"),
        (b"p/3", b"three"),
    ] {
        put(&mut chain, key, value);
    }
    assert_eq!(chain.call(sink, "get", b"p/1").return_data, b"one");
    assert_eq!(chain.call(sink, "get", b"absent").return_data, b"");
    assert_eq!(
        i32_of(&chain.call(sink, "has", b"p/2").return_data),
        status::TRUE
    );
    assert_eq!(
        i32_of(&chain.call(sink, "remove", b"p/2").return_data),
        status::TRUE
    );
    assert_eq!(
        i32_of(&chain.call(sink, "remove", b"p/2").return_data),
        status::FALSE
    );
    assert_eq!(
        i32_of(&chain.call(sink, "has", b"p/2").return_data),
        status::FALSE
    );

    let listed = chain.call(sink, "list", b"p/").return_data;
    let record =
        |key: &[u8], value: &[u8]| [&(key.len() as u32).to_le_bytes()[..], key, value].concat();
    assert_eq!(
        listed,
        [record(b"p/1", b"one"), record(b"p/3", b"three")].concat()
    );
    // The contract's keys live under its own prefix in state.
    assert_eq!(
        chain
            .storage
            .get(&keys::contract_storage(&sink, b"q/1"))
            .unwrap(),
        Some(b"other".to_vec())
    );
}

#[test]
fn context_events_hashing_and_gas() {
    let mut chain = Chain::new();
    let sink = chain.deploy(1, &fixture("sink"));
    let env = chain.call(sink, "env", &[]).return_data;
    assert_eq!(&env[..32], &ALICE.0, "caller");
    assert_eq!(&env[32..64], &sink.0, "self");
    assert_eq!(&env[64..96], &chain.ctx.origin.0, "origin");
    assert_eq!(&env[96..128], &chain.ctx.tx_hash, "tx hash");
    assert_eq!(
        u64::from_le_bytes(env[128..136].try_into().unwrap()),
        chain.ctx.block_height
    );
    assert_eq!(
        u64::from_le_bytes(env[136..144].try_into().unwrap()),
        chain.ctx.block_time_ms
    );

    let outcome = chain.call(
        sink,
        "emit",
        &[[1u8; 32], [2u8; 32]]
            .concat()
            .into_iter()
            .chain(*b"payload")
            .collect::<Vec<_>>(),
    );
    assert_eq!(outcome.events.len(), 1);
    let event = &outcome.events[0];
    assert_eq!(
        (event.contract, event.topics.clone(), event.data.clone()),
        (sink, vec![[1; 32], [2; 32]], b"payload".to_vec())
    );

    let hashed = chain.call(sink, "hash", b"stele").return_data;
    assert_eq!(hashed, blake3::hash(b"stele").as_bytes());

    let small = chain.call_with_gas(sink, "gas", &[], 1_000_000);
    let left = u64::from_le_bytes(small.return_data.try_into().unwrap());
    assert!(left < 1_000_000 && left > 900_000, "{left}");

    let aborted = chain.call(sink, "log_and_abort", &[]);
    let trap = aborted.trap.unwrap();
    assert_eq!(
        (trap.kind, trap.message.as_str()),
        (TrapKind::ContractAbort, "nope")
    );
    assert_eq!(aborted.logs, vec!["hello".to_string()]);
}

#[test]
fn ed25519_verification_is_strict() {
    let mut chain = Chain::new();
    let sink = chain.deploy(1, &fixture("sink"));
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = b"pay 10 to bob";
    let signature = key.sign(message).to_bytes();
    let verify = |chain: &mut Chain, public: &[u8], signature: &[u8], message: &[u8]| {
        i32_of(
            &chain
                .call(sink, "verify", &[public, signature, message].concat())
                .return_data,
        )
    };
    let public = key.verifying_key().to_bytes();
    assert_eq!(
        verify(&mut chain, &public, &signature, message),
        status::TRUE
    );
    assert_eq!(
        verify(&mut chain, &public, &signature, b"pay 99 to bob"),
        status::FALSE
    );
    // S + L: the same signature with a non-canonical scalar is refused.
    let mut malleable = signature;
    let order: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = malleable[32 + i] as u16 + order[i] as u16 + carry;
        malleable[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(
        verify(&mut chain, &public, &malleable, message),
        status::FALSE
    );
    // A small-order public key (the identity) is refused.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        verify(&mut chain, &identity, &[0; 64], message),
        status::FALSE
    );
}

#[test]
fn native_transfers_from_contracts_and_accounts() {
    let mut chain = Chain::new();
    let sink = chain.deploy(1, &fixture("sink"));
    let bob = Address([0xb0; 32]);
    chain.fund(sink, 100);
    let pay = |chain: &mut Chain, amount: u128| {
        let outcome = chain.call(sink, "pay", &[&bob.0[..], &amount.to_le_bytes()].concat());
        i32_of(&outcome.return_data)
    };
    assert_eq!(pay(&mut chain, 30), status::OK);
    assert_eq!(pay(&mut chain, 71), status::INSUFFICIENT_BALANCE);
    let balance = |chain: &mut Chain, who: Address| {
        u128::from_le_bytes(
            chain
                .call(sink, "balance_of", &who.0)
                .return_data
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(
        (balance(&mut chain, sink), balance(&mut chain, bob)),
        (70, 30)
    );

    let runtime = chain.runtime.clone();
    let outcome = runtime
        .transfer(&chain.storage, &chain.ctx, &bob, &ALICE, 20, 1_000_000)
        .unwrap();
    assert!(outcome.is_success());
    assert_eq!(outcome.gas_used, runtime.schedule().transfer_base);
    chain.storage.apply(&outcome.writes);
    assert_eq!(balance(&mut chain, ALICE), 20);
    let refused = runtime
        .transfer(&chain.storage, &chain.ctx, &bob, &ALICE, 11, 1_000_000)
        .unwrap();
    assert_eq!(refused.trap.unwrap().kind, TrapKind::InsufficientBalance);
    assert!(refused.writes.is_empty());
}

#[test]
fn init_runs_once_at_deployment_and_addresses_are_not_reused() {
    let code = wat::parse_str(
        r#"(module
            (import "stele" "storage_write" (func $w (param i32 i32 i32 i32)))
            (memory (export "memory") 1)
            (data (i32.const 0) "ready")
            (func (export "init") (call $w (i32.const 0) (i32.const 5) (i32.const 0) (i32.const 5))))"#,
    )
    .unwrap();
    let mut chain = Chain::new();
    let deploy = stele_runtime::Deploy {
        deployer: ALICE,
        address: address(1),
        code: code.clone(),
        init_input: Some(vec![]),
        gas_limit: 10_000_000_000,
    };
    let outcome = chain
        .runtime
        .deploy(&chain.storage, &chain.ctx, &deploy)
        .unwrap();
    assert!(outcome.is_success(), "{:?}", outcome.trap);
    assert!(
        outcome
            .writes
            .contains_key(&keys::contract_storage(&address(1), b"ready"))
    );
    chain.storage.apply(&outcome.writes);
    let again = chain
        .runtime
        .deploy(&chain.storage, &chain.ctx, &deploy)
        .unwrap();
    assert_eq!(again.trap.unwrap().kind, TrapKind::ContractExists);
    assert_eq!(
        chain.call(address(1), "init", &[]).trap.unwrap().kind,
        TrapKind::MethodNotFound
    );
}

#[test]
fn a_contract_upgrades_itself_and_migrates() {
    let mut chain = Chain::new();
    let contract = chain.deploy(1, &fixture("upgrade_v1"));
    let v2 = fixture("upgrade_v2");
    let upgrade = |chain: &mut Chain, code: &[u8], migration: &[u8]| {
        chain.call(
            contract,
            "upgrade",
            &[&(code.len() as u32).to_le_bytes()[..], code, migration].concat(),
        )
    };
    assert_eq!(chain.call(contract, "version", &[]).return_data, b"v1");

    // Invalid new code traps and changes nothing.
    let refused = upgrade(&mut chain, b"garbage", b"");
    assert_eq!(refused.trap.unwrap().kind, TrapKind::InvalidCode);
    // A failing migration rolls the whole upgrade back.
    let failed = upgrade(&mut chain, &v2, b"fail");
    assert_eq!(failed.trap.unwrap().message, "fail");
    assert_eq!(chain.call(contract, "version", &[]).return_data, b"v1");

    let upgraded = upgrade(&mut chain, &v2, b"state v2");
    assert!(upgraded.is_success(), "{:?}", upgraded.trap);
    assert_eq!(chain.call(contract, "version", &[]).return_data, b"v2");
    let migrated = chain
        .storage
        .get(&keys::contract_storage(&contract, b"migrated"))
        .unwrap();
    assert_eq!(migrated.as_deref(), Some(&b"state v2"[..]));
    // `migrate` cannot be called directly.
    assert_eq!(
        chain.call(contract, "migrate", &[]).trap.unwrap().kind,
        TrapKind::MethodNotFound
    );
}
