//! The fungible token through the real runtime: happy paths, access
//! control, overflow, zero and self transfers, events, the receiver hook,
//! and the gas table.

use fungible_token::{Approval, Burn, FungibleTokenClient, Mint, Transfer};
use stele_sdk::Address;
use stele_sdk::status as stele_host_api_status;
use stele_testkit::{Caller, TestKit};

const SUPPLY: u128 = 1_000_000;

struct Setup {
    kit: TestKit,
    token: Address,
    admin: Address,
    bob: Address,
    carol: Address,
}

fn setup() -> Setup {
    let kit = TestKit::new();
    let admin = kit.account("admin");
    let token = kit.deploy_crate(
        "fungible-token",
        admin,
        &("Gold".to_string(), "GLD".to_string(), 6u8, SUPPLY),
    );
    let (bob, carol) = (kit.account("bob"), kit.account("carol"));
    Setup {
        kit,
        token,
        admin,
        bob,
        carol,
    }
}

fn client<'k>(setup: &'k Setup, account: Address) -> FungibleTokenClient<Caller<'k>> {
    FungibleTokenClient::new(setup.token, setup.kit.caller(account))
}

#[test]
fn metadata_and_initial_supply() {
    let s = setup();
    let token = client(&s, s.bob);
    assert_eq!(token.name().unwrap(), "Gold");
    assert_eq!(token.symbol().unwrap(), "GLD");
    assert_eq!(token.decimals().unwrap(), 6);
    assert_eq!(token.total_supply().unwrap(), SUPPLY);
    assert_eq!(token.admin().unwrap(), s.admin);
    assert_eq!(token.balance(s.admin).unwrap(), SUPPLY);
    assert_eq!(token.balance(s.bob).unwrap(), 0);
}

#[test]
fn transfer_moves_balance_and_emits_an_event() {
    let s = setup();
    let admin = client(&s, s.admin);
    admin.transfer(s.bob, 250).unwrap();
    assert!(s.kit.emitted(&Transfer {
        from: s.admin,
        to: s.bob,
        amount: 250
    }));
    assert_eq!(admin.balance(s.admin).unwrap(), SUPPLY - 250);
    assert_eq!(admin.balance(s.bob).unwrap(), 250);
    assert_eq!(admin.total_supply().unwrap(), SUPPLY);
}

#[test]
fn transfer_over_balance_fails_with_the_contracts_message_and_changes_nothing() {
    let s = setup();
    let bob = client(&s, s.bob);
    let error = bob.transfer(s.carol, 1).unwrap_err();
    assert_eq!(
        error.message,
        "TokenError::InsufficientBalance: balance too low"
    );
    assert_eq!(error.status, stele_host_api_status::CALLEE_FAILED);
    assert!(s.kit.last().events.is_empty());
    assert_eq!(bob.balance(s.carol).unwrap(), 0);
}

#[test]
fn zero_and_self_transfers() {
    let s = setup();
    let admin = client(&s, s.admin);
    admin.transfer(s.bob, 0).unwrap();
    assert_eq!(admin.balance(s.bob).unwrap(), 0);
    admin.transfer(s.admin, 400).unwrap();
    assert!(s.kit.emitted(&Transfer {
        from: s.admin,
        to: s.admin,
        amount: 400
    }));
    assert_eq!(
        admin.balance(s.admin).unwrap(),
        SUPPLY,
        "a self transfer neither creates nor destroys"
    );
    // Even a self transfer needs the balance.
    assert!(client(&s, s.bob).transfer(s.bob, 1).is_err());
}

#[test]
fn allowances_gate_transfer_from() {
    let s = setup();
    let (admin, bob) = (client(&s, s.admin), client(&s, s.bob));
    assert_eq!(
        bob.transfer_from(s.admin, s.carol, 1).unwrap_err().message,
        "TokenError::InsufficientAllowance: allowance too low"
    );
    admin.approve(s.bob, 100).unwrap();
    assert!(s.kit.emitted(&Approval {
        owner: s.admin,
        spender: s.bob,
        amount: 100
    }));
    bob.transfer_from(s.admin, s.carol, 60).unwrap();
    assert_eq!(bob.allowance(s.admin, s.bob).unwrap(), 40);
    assert_eq!(bob.balance(s.carol).unwrap(), 60);
    assert!(bob.transfer_from(s.admin, s.carol, 41).is_err());
    assert_eq!(
        bob.allowance(s.admin, s.bob).unwrap(),
        40,
        "a failed transfer_from keeps the allowance"
    );
}

#[test]
fn only_the_admin_mints_and_supply_cannot_overflow() {
    let s = setup();
    let (admin, bob) = (client(&s, s.admin), client(&s, s.bob));
    assert_eq!(
        bob.mint(s.bob, 5).unwrap_err().message,
        "TokenError::NotAdmin: only the admin may mint"
    );
    admin.mint(s.bob, 5).unwrap();
    assert!(s.kit.emitted(&Mint {
        to: s.bob,
        amount: 5
    }));
    assert_eq!(admin.total_supply().unwrap(), SUPPLY + 5);
    assert_eq!(
        admin.mint(s.bob, u128::MAX).unwrap_err().message,
        "TokenError::Overflow: total supply would overflow"
    );
    assert_eq!(admin.total_supply().unwrap(), SUPPLY + 5);
}

#[test]
fn burning_destroys_the_callers_tokens() {
    let s = setup();
    let admin = client(&s, s.admin);
    admin.burn(1_000).unwrap();
    assert!(s.kit.emitted(&Burn {
        from: s.admin,
        amount: 1_000
    }));
    assert_eq!(admin.total_supply().unwrap(), SUPPLY - 1_000);
    assert!(client(&s, s.bob).burn(1).is_err());
}

const RECEIVER: &str = r#"(module
    (import "stele" "input_len" (func $input_len (result i32)))
    (import "stele" "storage_write" (func $w (param i32 i32 i32 i32)))
    (import "stele" "abort" (func $abort (param i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "received" "not accepting tokens")
    (func (export "on_token_received")
      (call $w (i32.const 0) (i32.const 8) (i32.const 0) (i32.const 8))
      ;; input = sender (32) ‖ amount (16) ‖ message (4 + n): refuse if n > 0
      (if (i32.gt_u (call $input_len) (i32.const 52)) (then (call $abort (i32.const 8) (i32.const 20))))))"#;

#[test]
fn transfer_call_runs_the_receiver_hook_and_a_refusal_undoes_the_transfer() {
    let s = setup();
    let wasm = wat::parse_str(RECEIVER).unwrap();
    let receiver = s
        .kit
        .deploy::<()>("receiver", &wasm, s.admin, None)
        .unwrap();
    let admin = client(&s, s.admin);
    admin.transfer_call(receiver, 70, vec![]).unwrap();
    assert_eq!(admin.balance(receiver).unwrap(), 70);
    assert_eq!(
        s.kit.storage(receiver, b"received").as_deref(),
        Some(&b"received"[..])
    );

    let error = admin
        .transfer_call(receiver, 30, b"please".to_vec())
        .unwrap_err();
    assert_eq!(
        error.message,
        "TokenError::ReceiverRefused: the receiver refused the tokens"
    );
    assert_eq!(
        admin.balance(receiver).unwrap(),
        70,
        "the refused transfer was undone"
    );
    assert_eq!(admin.balance(s.admin).unwrap(), SUPPLY - 70);
}

#[test]
fn the_spec_describes_methods_events_and_errors() {
    let s = setup();
    let spec = s.kit.spec(s.token);
    assert_eq!(spec.name, "FungibleToken");
    let transfer = spec.method("transfer").unwrap();
    assert_eq!(transfer.kind, stele_sdk::spec::MethodKind::Call);
    assert_eq!(
        transfer
            .args
            .iter()
            .map(|p| (p.name.as_str(), p.ty.as_str()))
            .collect::<Vec<_>>(),
        [("to", "Address"), ("amount", "u128")]
    );
    assert_eq!(transfer.error.as_deref(), Some("TokenError"));
    assert_eq!(
        spec.method("balance").unwrap().kind,
        stele_sdk::spec::MethodKind::View
    );
    assert_eq!(
        spec.method("init").unwrap().kind,
        stele_sdk::spec::MethodKind::Init
    );
    assert!(
        spec.events
            .iter()
            .any(|event| event.name == "Transfer" && event.topics.len() == 2)
    );
    let errors = &spec.errors[0];
    assert_eq!(
        (
            errors.name.as_str(),
            errors.variants[0].code,
            errors.variants[0].message.as_str()
        ),
        ("TokenError", 1, "balance too low")
    );
}

#[test]
fn gas_table_lists_every_method_called() {
    let s = setup();
    let admin = client(&s, s.admin);
    for _ in 0..3 {
        admin.transfer(s.bob, 1).unwrap();
    }
    admin.approve(s.bob, 5).unwrap();
    let _ = admin.balance(s.bob).unwrap();
    let stats = s.kit.gas_stats();
    let transfer = stats[&("fungible-token".to_string(), "transfer".to_string())];
    assert_eq!(transfer.calls, 3);
    assert!(transfer.min > 0 && transfer.min <= transfer.max);
    let table = s.kit.gas_table();
    for method in ["(deploy)", "transfer", "approve", "balance"] {
        assert!(table.contains(method), "{table}");
    }
    s.kit.print_gas_table();
}

/// The size target: the release build stays within 16 KB. It was 21 KB
/// while `alloc`'s allocation-failure handler brought `core::fmt` in, so
/// its text is checked for too.
#[test]
fn release_wasm_stays_within_16_kb() {
    let wasm = stele_testkit::build::contract_wasm("fungible-token").unwrap();
    assert!(
        wasm.len() <= 16_000,
        "fungible-token is {} bytes, over its 16,000-byte budget",
        wasm.len()
    );
    let text = b"memory allocation of";
    assert!(
        !wasm.windows(text.len()).any(|window| window == text),
        "alloc's allocation-failure handler (and core::fmt with it) is back in the contract"
    );
}
