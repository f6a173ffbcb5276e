//! The SDK through a contract using all of it (`stele-sdk-probe`), run by
//! the testkit on the real runtime.

use ed25519_dalek::{Signer, SigningKey};
use stele_sdk::Address;
use stele_sdk::spec::MethodKind;
use stele_sdk_probe::ProbeClient;
use stele_testkit::{Caller, TestKit, build};

fn deploy(kit: &TestKit) -> (Address, Address) {
    let owner = kit.account("owner");
    let probe = kit.deploy_crate("stele-sdk-probe", owner, &());
    (owner, probe)
}

fn probe<'k>(kit: &'k TestKit, probe: Address, account: Address) -> ProbeClient<Caller<'k>> {
    ProbeClient::new(probe, kit.caller(account))
}

#[test]
fn vector_pushes_pops_and_pages() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let probe = probe(&kit, address, owner);
    assert_eq!(probe.notes(0, 10).unwrap(), Vec::<String>::new());
    assert_eq!(probe.pop_note().unwrap(), None);
    for idx in 0..5 {
        assert_eq!(probe.push_note(format!("note {idx}")).unwrap(), idx);
    }
    assert_eq!(probe.note_count().unwrap(), 5);
    assert_eq!(probe.notes(0, 2).unwrap(), ["note 0", "note 1"]);
    assert_eq!(
        probe.notes(3, 10).unwrap(),
        ["note 3", "note 4"],
        "a page past the end is short"
    );
    assert_eq!(probe.notes(5, 10).unwrap(), Vec::<String>::new());
    assert_eq!(probe.pop_note().unwrap().as_deref(), Some("note 4"));
    assert_eq!(probe.notes(0, 10).unwrap().len(), 4);
}

#[test]
fn values_larger_than_the_read_buffers_come_back_whole() {
    // The SDK reads values into 256 bytes and iteration entries into 512
    // on the stack, and anything longer into a buffer of its exact size.
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let probe = probe(&kit, address, owner);
    let notes: Vec<String> = [255, 256, 257, 300, 511, 512, 1_000, 5_000]
        .iter()
        .enumerate()
        .map(|(idx, &len)| char::from(b'a' + idx as u8).to_string().repeat(len))
        .collect();
    for note in &notes {
        probe.push_note(note.clone()).unwrap();
    }
    assert_eq!(probe.notes(0, 10).unwrap(), notes);
    for note in notes.iter().rev() {
        assert_eq!(probe.pop_note().unwrap().as_ref(), Some(note));
    }
}

#[test]
fn set_and_map_pages_follow_key_order_and_cursors() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let probe = probe(&kit, address, owner);
    for tag in ["cedar", "ash", "birch", "alder"] {
        probe.tag(tag.into()).unwrap();
    }
    assert!(probe.has_tag("ash".into()).unwrap());
    assert!(probe.untag("ash".into()).unwrap());
    assert!(!probe.untag("ash".into()).unwrap());
    // Strings are length-prefixed in borsh, so order is by length, then bytes.
    let all = probe.tags(None, 10).unwrap();
    assert_eq!(all.len(), 3);
    let first_two = probe.tags(None, 2).unwrap();
    assert_eq!(first_two, all[..2]);
    assert_eq!(probe.tags(Some(first_two[1].clone()), 2).unwrap(), all[2..]);

    let (alice, bob) = (kit.account("alice"), kit.account("bob"));
    for round in [3u32, 1, 2] {
        probe.score(alice, round, u64::from(round) * 10).unwrap();
    }
    probe.score(bob, 1, 99).unwrap();
    assert_eq!(
        probe.scores_of(alice, None, 10).unwrap(),
        [(1, 10), (2, 20), (3, 30)]
    );
    assert_eq!(probe.scores_of(alice, Some(1), 1).unwrap(), [(2, 20)]);
    assert_eq!(
        probe.scores_of(bob, None, 10).unwrap(),
        [(1, 99)],
        "a prefix page stays within its prefix"
    );
    assert_eq!(
        probe.scores_of(kit.account("nobody"), None, 10).unwrap(),
        []
    );
}

#[test]
fn context_time_and_native_transfers() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let probe = probe(&kit, address, owner);
    let (caller, own, origin, height, time) = probe.context().unwrap();
    assert_eq!((caller, own, origin), (owner, address, owner));
    kit.advance(10, 60_000);
    let (_, _, _, later_height, later_time) = probe.context().unwrap();
    assert_eq!((later_height - height, later_time - time), (10, 60_000));

    // `transfer` is both a method of the probe and a host function it calls.
    let bob = kit.account("bob");
    kit.fund(address, 1_000);
    assert!(probe.transfer(bob, 400).unwrap());
    assert!(!probe.transfer(bob, 601).unwrap());
    assert_eq!((probe.balance().unwrap(), kit.balance(bob)), (600, 400));
}

#[test]
fn hashing_signatures_logs_and_panics() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let probe = probe(&kit, address, owner);
    assert_eq!(
        probe.hash(b"stele".to_vec()).unwrap(),
        *blake3::hash(b"stele").as_bytes()
    );
    let key = SigningKey::from_bytes(&[3; 32]);
    let signature = key.sign(b"message").to_bytes().to_vec();
    let public = key.verifying_key().to_bytes();
    assert!(
        probe
            .verify(public, signature.clone(), b"message".to_vec())
            .unwrap()
    );
    assert!(
        !probe
            .verify(public, signature, b"massage".to_vec())
            .unwrap()
    );

    let gas_left = probe.log_gas().unwrap();
    assert!(gas_left > 0 && gas_left < stele_testkit::DEFAULT_GAS_LIMIT);
    assert_eq!(kit.last().logs, ["probe was here"]);

    let error = probe.panic_now().unwrap_err();
    assert_eq!(error.message, "contract panicked");

    // Within the page limit an allocation succeeds; past it the call ends
    // with a message that says why.
    assert_eq!(probe.allocate(1 << 20).unwrap(), 1 << 20);
    let too_much = (stele_sdk::limits::MEMORY_BYTES_MAX + 1) as u32;
    assert_eq!(
        probe.allocate(too_much).unwrap_err().message,
        "out of memory"
    );
}

#[test]
fn bad_arguments_are_refused_with_the_method_named() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let error = kit
        .call_raw(owner, address, "push_note", vec![1, 2, 3])
        .unwrap_err();
    assert_eq!(error.message, "invalid arguments for push_note");
    let mut trailing = stele_sdk::codec::to_vec(&("a note".to_string(),));
    trailing.push(0);
    let error = kit
        .call_raw(owner, address, "push_note", trailing)
        .unwrap_err();
    assert_eq!(error.message, "invalid arguments for push_note");
}

#[test]
fn arguments_may_share_names_with_the_generated_code() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    assert_eq!(probe(&kit, address, owner).combine(1, 2, 3).unwrap(), 123);
}

#[test]
fn a_contract_upgrades_itself_and_migrates_its_state() {
    let kit = TestKit::new();
    let (owner, address) = deploy(&kit);
    let probe = probe(&kit, address, owner);
    probe.push_note("kept across the upgrade".into()).unwrap();
    assert_eq!(probe.version().unwrap(), 1);
    let v2 = build::contract_wasm_with_features("stele-sdk-probe", &["v2"]).unwrap();
    probe.upgrade(v2, "hello v2".into()).unwrap();
    assert_eq!(probe.version().unwrap(), 2);
    assert_eq!(probe.deployed_version().unwrap(), 1, "state survives");
    assert_eq!(
        probe.migrated().unwrap().as_deref(),
        Some("hello v2 (migrated by v2)")
    );
    assert_eq!(probe.notes(0, 1).unwrap(), ["kept across the upgrade"]);
    // Garbage code is refused and the contract keeps running v2.
    let error = probe
        .upgrade(b"not wasm".to_vec(), String::new())
        .unwrap_err();
    assert!(
        error.message.starts_with("invalid code: malformed module"),
        "{}",
        error.message
    );
    assert_eq!(probe.version().unwrap(), 2);
}

#[test]
fn the_spec_marks_views_calls_init_and_migrate() {
    let kit = TestKit::new();
    let (_, address) = deploy(&kit);
    let spec = kit.spec(address);
    assert_eq!(spec.name, "Probe");
    let kind = |name: &str| spec.method(name).map(|method| method.kind);
    assert_eq!(kind("init"), Some(MethodKind::Init));
    assert_eq!(kind("migrate"), Some(MethodKind::Migrate));
    assert_eq!(kind("notes"), Some(MethodKind::View));
    assert_eq!(kind("push_note"), Some(MethodKind::Call));
    assert_eq!(spec.method("scores_of").unwrap().returns, "Vec<(u32, u64)>");
    assert_eq!(
        spec.method("push_note").unwrap().doc,
        "Appends a note; returns its index."
    );
}
