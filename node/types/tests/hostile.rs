//! Hostile items 16, 18 and 19 of shared/HOSTILE.md at the codec and
//! signature level, with a counting allocator to show that bad length
//! prefixes allocate nothing large.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ed25519_dalek::SigningKey;
use stele_types::limits::{ACTIONS_PER_TX_MAX, TX_BYTES_MAX};
use stele_types::{
    Action, Address, DecodeError, SignedTransaction, Transaction, TxError, decode_transaction,
    tx_hash_of,
};

struct Counting;

thread_local! {
    /// Largest allocation of this test's thread (other tests run beside it).
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn reset_largest() {
    LARGEST.with(|largest| largest.set(0));
}

fn largest() -> usize {
    LARGEST.with(Cell::get)
}

/// borsh never preallocates more than 1 MiB for a length prefix, whatever
/// it claims; this is the bound the tests hold decoding to.
const PREALLOCATION_BYTES_MAX: usize = 1024 * 1024;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(layout.size())));
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn transfer(nonce: u64) -> Transaction {
    Transaction {
        chain_id: "stele-dev".into(),
        signer: Address(key().verifying_key().to_bytes()),
        nonce,
        gas_limit: 1_000_000,
        gas_price: 1,
        actions: vec![Action::Transfer {
            to: Address([2; 32]),
            amount: 5,
        }],
    }
}

#[test]
fn a_good_transaction_round_trips_and_verifies() {
    let signed = transfer(0).sign(&key());
    let bytes = borsh::to_vec(&signed).unwrap();
    let decoded = decode_transaction(&bytes).unwrap();
    assert_eq!(
        borsh::to_vec(&decoded).unwrap(),
        bytes,
        "decode then encode is the identity"
    );
    decoded.check_cheap("stele-dev").unwrap();
    decoded.verify_signature().unwrap();
    assert_ne!(transfer(1).hash(), transfer(0).hash());
}

#[test]
fn verification_with_a_decoded_key_is_the_same_check() {
    let signed = transfer(0).sign(&key());
    let signing_bytes = signed.tx.signing_bytes();
    assert_eq!(tx_hash_of(&signing_bytes), signed.hash());
    let signer_key = signed.verifying_key().unwrap();
    signed
        .verify_signature_with(&signer_key, &signing_bytes)
        .unwrap();
    // A tampered transaction fails with the signer's own key.
    let mut tampered = signed.clone();
    tampered.tx.nonce = 1;
    assert_eq!(
        tampered.verify_signature_with(&signer_key, &tampered.tx.signing_bytes()),
        Err(TxError::BadSignature)
    );
    // Another account's key is refused, even with its own valid signature.
    let other = SigningKey::from_bytes(&[8; 32]);
    let mut body = transfer(0);
    body.signer = Address(other.verifying_key().to_bytes());
    let by_other = body.sign(&other);
    let mut claimed = by_other.clone();
    claimed.tx.signer = signed.tx.signer;
    assert_eq!(
        claimed.verify_signature_with(&other.verifying_key(), &by_other.tx.signing_bytes()),
        Err(TxError::BadPublicKey)
    );
}

#[test]
fn hostile_16_malleable_signatures_and_weak_keys_are_refused() {
    let signed = transfer(0).sign(&key());
    // S + L: the same signature, non-canonical.
    let order: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut malleable = signed.clone();
    let mut carry = 0u16;
    for idx in 0..32 {
        let sum = malleable.signature[32 + idx] as u16 + order[idx] as u16 + carry;
        malleable.signature[32 + idx] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(malleable.verify_signature(), Err(TxError::BadSignature));
    // A small-order public key (the identity point) with the all-zero
    // signature that a lax verifier would accept for any message.
    let mut weak = transfer(0);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    weak.signer = Address(identity);
    let forged = SignedTransaction {
        tx: weak,
        signature: [0; 64],
    };
    assert!(forged.verify_signature().is_err());
    // A non-canonical encoding of a key (y >= p) is refused.
    let mut non_canonical = transfer(0);
    non_canonical.signer = Address([0xff; 32]);
    let forged = SignedTransaction {
        tx: non_canonical,
        signature: signed.signature,
    };
    assert!(forged.verify_signature().is_err());
    // A signature by another key.
    let mut other = transfer(0).sign(&SigningKey::from_bytes(&[8; 32]));
    other.tx.signer = signed.tx.signer;
    assert_eq!(other.verify_signature(), Err(TxError::BadSignature));
}

#[test]
fn hostile_18_hostile_encodings_fail_without_large_allocations() {
    let good = borsh::to_vec(&transfer(0).sign(&key())).unwrap();
    // A `Vec` length of u32::MAX followed by 4 bytes: the chain id's length.
    let mut huge_prefix = Vec::new();
    huge_prefix.extend_from_slice(&u32::MAX.to_le_bytes());
    huge_prefix.extend_from_slice(b"abcd");
    reset_largest();
    let error = decode_transaction(&huge_prefix).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed(_)), "{error}");
    assert!(
        largest() <= PREALLOCATION_BYTES_MAX,
        "allocated {} bytes for a claim of 4 GiB",
        largest()
    );
    // An action list claiming u32::MAX actions.
    let mut many = transfer(0);
    many.actions.clear();
    let mut bytes = borsh::to_vec(&many.sign(&key())).unwrap();
    let at = bytes.len() - 64 - 4;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    reset_largest();
    assert!(decode_transaction(&bytes).is_err());
    assert!(
        largest() <= PREALLOCATION_BYTES_MAX,
        "allocated {} bytes for a claim of 4 billion actions",
        largest()
    );
    // Trailing bytes.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        decode_transaction(&trailing),
        Err(DecodeError::Malformed(_))
    ));
    // A non-canonical option tag (2 is neither None nor Some).
    let mut deploy = transfer(0);
    deploy.actions = vec![Action::Deploy {
        code: vec![1],
        init_args: None,
    }];
    let mut bytes = borsh::to_vec(&deploy.sign(&key())).unwrap();
    let tag = bytes.len() - 64 - 1;
    assert_eq!(bytes[tag], 0);
    bytes[tag] = 2;
    assert!(matches!(
        decode_transaction(&bytes),
        Err(DecodeError::Malformed(_))
    ));
    // An unknown action variant.
    let mut bytes = good.clone();
    let variant = bytes.len() - 64 - 48 - 1;
    bytes[variant] = 9;
    assert!(decode_transaction(&bytes).is_err());
    // Truncations of every length.
    for cut in 1..good.len() {
        assert!(decode_transaction(&good[..good.len() - cut]).is_err());
    }
}

#[test]
fn hostile_19_oversized_transactions_fail_cheap_checks_before_signatures() {
    let oversized = vec![0u8; TX_BYTES_MAX + 1];
    assert_eq!(
        decode_transaction(&oversized).unwrap_err().to_string(),
        format!(
            "transaction is {} bytes, over the limit TX_BYTES_MAX = {TX_BYTES_MAX}",
            TX_BYTES_MAX + 1
        )
    );
    // Thousands of actions, badly signed: the cheap check refuses it first.
    let mut crowded = transfer(0);
    crowded.actions = vec![
        Action::Transfer {
            to: Address([3; 32]),
            amount: 1
        };
        5_000
    ];
    let unsigned = SignedTransaction {
        tx: crowded,
        signature: [7; 64],
    };
    let bytes = borsh::to_vec(&unsigned).unwrap();
    let error = decode_transaction(&bytes).unwrap_err();
    assert_eq!(
        error,
        DecodeError::TooManyActions {
            count: 5_000,
            limit: ACTIONS_PER_TX_MAX
        }
    );
    let mut few = unsigned.clone();
    few.tx.actions.truncate(ACTIONS_PER_TX_MAX + 1);
    assert!(matches!(
        few.check_cheap("stele-dev"),
        Err(TxError::Limit {
            limit_name: "ACTIONS_PER_TX_MAX",
            ..
        })
    ));
    // Wrong chain and empty action lists are also cheap refusals.
    let mut other_chain = transfer(0);
    other_chain.chain_id = "mainnet".into();
    let error = other_chain
        .sign(&key())
        .check_cheap("stele-dev")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "wrong chain id `mainnet`, this chain is `stele-dev`"
    );
    let mut empty = transfer(0);
    empty.actions.clear();
    assert_eq!(
        empty.sign(&key()).check_cheap("stele-dev"),
        Err(TxError::NoActions)
    );
    let mut long_method = transfer(0);
    long_method.actions = vec![Action::Call {
        contract: Address([1; 32]),
        method: "m".repeat(65),
        args: vec![],
    }];
    assert!(long_method.sign(&key()).check_cheap("stele-dev").is_err());
}
