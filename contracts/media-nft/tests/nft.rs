//! The media registry through the real runtime.

use media_nft::{Approved, MediaNftClient, Minted, TokenInfo, Transferred};
use stele_sdk::Address;
use stele_testkit::{Caller, TestKit};

struct Setup {
    kit: TestKit,
    nft: Address,
    minter: Address,
    alice: Address,
    bob: Address,
}

fn setup() -> Setup {
    let kit = TestKit::new();
    let minter = kit.account("studio");
    let nft = kit.deploy_crate("media-nft", minter, &());
    let (alice, bob) = (kit.account("alice"), kit.account("bob"));
    Setup {
        kit,
        nft,
        minter,
        alice,
        bob,
    }
}

fn client<'k>(s: &'k Setup, account: Address) -> MediaNftClient<Caller<'k>> {
    MediaNftClient::new(s.nft, s.kit.caller(account))
}

fn mint(s: &Setup, to: Address, n: u8) -> u64 {
    client(s, s.minter)
        .mint(to, [n; 32], format!("ipfs://asset-{n}"), "CC-BY-4.0".into())
        .unwrap()
}

#[test]
fn minting_records_the_asset_and_its_licence() {
    let s = setup();
    let id = mint(&s, s.alice, 7);
    assert_eq!(id, 1);
    assert!(s.kit.emitted(&Minted {
        token_id: 1,
        owner: s.alice,
        content_hash: [7; 32]
    }));
    let info = client(&s, s.bob).token_info(id).unwrap().unwrap();
    assert_eq!(
        info,
        TokenInfo {
            content_hash: [7; 32],
            uri: "ipfs://asset-7".into(),
            licence: "CC-BY-4.0".into(),
            creator: s.minter,
            minted_at_ms: s.kit.time_ms(),
        }
    );
    assert_eq!(client(&s, s.bob).owner_of(id).unwrap(), Some(s.alice));
    assert_eq!(client(&s, s.bob).token_info(99).unwrap(), None);
}

#[test]
fn only_the_minter_mints_and_inputs_are_checked() {
    let s = setup();
    let alice = client(&s, s.alice);
    assert_eq!(
        alice
            .mint(s.alice, [0; 32], "x".into(), "y".into())
            .unwrap_err()
            .message,
        "NftError::NotMinter: only the minter may mint"
    );
    let minter = client(&s, s.minter);
    assert_eq!(
        minter
            .mint(Address::default(), [0; 32], "x".into(), "y".into())
            .unwrap_err()
            .message,
        "NftError::ZeroAddress: cannot transfer to the zero address"
    );
    assert!(
        minter
            .mint(s.alice, [0; 32], "x".repeat(513), "y".into())
            .is_err()
    );
    assert_eq!(minter.minted().unwrap(), 0);
}

#[test]
fn owners_transfer_and_approved_spenders_transfer_once() {
    let s = setup();
    let id = mint(&s, s.alice, 1);
    let (alice, bob) = (client(&s, s.alice), client(&s, s.bob));
    assert_eq!(
        bob.transfer(s.bob, id).unwrap_err().message,
        "NftError::NotAllowed: not the owner or approved"
    );
    alice.approve(s.bob, id).unwrap();
    assert!(s.kit.emitted(&Approved {
        token_id: id,
        spender: s.bob
    }));
    bob.transfer_from(s.alice, s.bob, id).unwrap();
    assert!(s.kit.emitted(&Transferred {
        token_id: id,
        from: s.alice,
        to: s.bob
    }));
    assert_eq!(bob.owner_of(id).unwrap(), Some(s.bob));
    assert_eq!(
        bob.approved(id).unwrap(),
        None,
        "approval ends with the transfer"
    );
    assert!(bob.transfer_from(s.alice, s.bob, id).is_err());
    assert_eq!(
        bob.transfer(Address::default(), id).unwrap_err().message,
        "NftError::ZeroAddress: cannot transfer to the zero address"
    );
    bob.transfer(s.alice, id).unwrap();
    assert_eq!(alice.owner_of(id).unwrap(), Some(s.alice));
    assert_eq!(
        alice.transfer(s.bob, 42).unwrap_err().message,
        "NftError::NoSuchToken: no such token"
    );
}

#[test]
fn tokens_of_pages_in_id_order_across_edges() {
    let s = setup();
    for n in 0..7 {
        mint(&s, if n % 2 == 0 { s.alice } else { s.bob }, n);
    }
    let alice = client(&s, s.alice);
    assert_eq!(alice.tokens_of(s.alice, None, 100).unwrap(), [1, 3, 5, 7]);
    assert_eq!(alice.tokens_of(s.alice, None, 2).unwrap(), [1, 3]);
    assert_eq!(alice.tokens_of(s.alice, Some(3), 2).unwrap(), [5, 7]);
    assert_eq!(
        alice.tokens_of(s.alice, Some(7), 2).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(
        alice.tokens_of(s.alice, None, 0).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(alice.tokens_of(s.bob, None, 100).unwrap(), [2, 4, 6]);
    assert_eq!(
        alice.tokens_of(s.kit.account("nobody"), None, 100).unwrap(),
        Vec::<u64>::new()
    );
    // Moving a token moves it between pages.
    alice.transfer(s.bob, 3).unwrap();
    assert_eq!(alice.tokens_of(s.alice, None, 100).unwrap(), [1, 5, 7]);
    assert_eq!(alice.tokens_of(s.bob, None, 100).unwrap(), [2, 3, 4, 6]);
    // Ids past 255 keep numeric order (keys are big-endian).
    for n in 0..300u32 {
        client(&s, s.minter)
            .mint(
                s.kit.account("collector"),
                [n as u8; 32],
                String::new(),
                String::new(),
            )
            .unwrap();
    }
    let collector = s.kit.account("collector");
    let first = alice.tokens_of(collector, None, 100).unwrap();
    assert_eq!(first.len(), 100);
    assert!(first.windows(2).all(|pair| pair[0] < pair[1]));
    let next = alice
        .tokens_of(collector, Some(*first.last().unwrap()), 100)
        .unwrap();
    assert_eq!(next[0], first.last().unwrap() + 1);
    s.kit.print_gas_table();
}
