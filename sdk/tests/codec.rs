//! The SDK's codec writes and reads exactly the borsh wire format, and
//! refuses what is not a valid encoding.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use stele_sdk::codec::{self, Decode, Encode};
use stele_sdk::{Address, CodeHash, data};

#[data]
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
struct Named {
    id: u64,
    owner: Address,
    tags: Vec<String>,
    score: Option<i32>,
}

#[data]
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
struct Tuple(u8, [u8; 4], bool);

#[data]
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
struct Unit;

#[data]
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
enum Status {
    Open,
    Held(u128, Unit),
    Moved {
        to: Address,
        at_ms: u64,
        note: Option<String>,
    },
}

#[data]
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
struct Wrapper<T> {
    inner: T,
    more: Vec<T>,
}

/// Our bytes equal borsh's, and both decoders read them back.
fn same<T>(value: T)
where
    T: Encode + Decode + BorshSerialize + BorshDeserialize + PartialEq + std::fmt::Debug,
{
    let ours = codec::to_vec(&value);
    let theirs = borsh::to_vec(&value).unwrap();
    assert_eq!(ours, theirs, "encoding of {value:?}");
    assert_eq!(codec::from_slice::<T>(&theirs).as_ref(), Some(&value));
    assert_eq!(T::try_from_slice(&ours).unwrap(), value);
}

#[test]
fn matches_borsh_on_every_supported_type() {
    same(0u8);
    same(u16::MAX);
    same(0xdead_beefu32);
    same(u64::MAX - 1);
    same(u128::MAX / 3);
    same(-1i8);
    same(i16::MIN);
    same(-5i32);
    same(i64::MIN + 1);
    same(i128::MIN);
    same(true);
    same(false);
    same(());
    same(String::from("hé ✓"));
    same(String::new());
    same(vec![1u8, 2, 3]);
    same(Vec::<u64>::new());
    same(vec![String::from("a"), String::from("bc")]);
    same([7u8; 32]);
    same([1u32, 2, 3]);
    same(Some(3u16));
    same(None::<String>);
    same(Ok::<u8, String>(4));
    same(Err::<u8, String>("no".into()));
    same(Box::new(9u32));
    same(BTreeMap::from([
        (1u32, String::from("x")),
        (5, String::from("y")),
    ]));
    same(BTreeSet::from([Address([1; 32]), Address([2; 32])]));
    same((1u8,));
    same((1u8, 2u16, 3u32, 4u64, 5u128, 6i8, String::from("7"), true));
    same(Address([9; 32]));
    same(CodeHash([4; 32]));
    same(42usize);
    same(Named {
        id: 7,
        owner: Address([3; 32]),
        tags: vec!["gold".into(), String::new()],
        score: Some(-2),
    });
    same(Tuple(1, [2, 3, 4, 5], true));
    same(Unit);
    same(Status::Open);
    same(Status::Held(u128::MAX, Unit));
    same(Status::Moved {
        to: Address([8; 32]),
        at_ms: 1_700_000_000_000,
        note: Some("fragile".into()),
    });
    same(Wrapper {
        inner: Status::Open,
        more: vec![Status::Held(1, Unit)],
    });
}

#[test]
fn refuses_what_is_not_one_valid_encoding() {
    // Each case: a type and bytes it must refuse.
    assert_eq!(codec::from_slice::<u32>(&[1, 2, 3]), None, "short integer");
    assert_eq!(codec::from_slice::<u8>(&[1, 2]), None, "trailing byte");
    assert_eq!(codec::from_slice::<bool>(&[2]), None, "bool out of range");
    assert_eq!(codec::from_slice::<Option<u8>>(&[2, 0]), None, "option tag");
    assert_eq!(
        codec::from_slice::<Result<u8, u8>>(&[2, 0]),
        None,
        "result tag"
    );
    assert_eq!(codec::from_slice::<Status>(&[3]), None, "enum tag");
    assert_eq!(
        codec::from_slice::<String>(&[2, 0, 0, 0, 0xc3, 0x28]),
        None,
        "invalid UTF-8"
    );
    assert_eq!(
        codec::from_slice::<Vec<u8>>(&[5, 0, 0, 0, 1, 2]),
        None,
        "length beyond the input"
    );
    assert_eq!(
        codec::from_slice::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff]),
        None,
        "hostile length, nothing allocated"
    );
    // A length that claims every byte left as an element, for elements of
    // 16 bytes each: refused when the bytes run out.
    let mut long = vec![0u8; 4 + 16 * 1000];
    long[..4].copy_from_slice(&(16u32 * 1000).to_le_bytes());
    assert_eq!(codec::from_slice::<Vec<u128>>(&long), None, "long claim");
    assert_eq!(
        codec::from_slice::<Vec<()>>(&[1, 0, 0, 0, 0]),
        None,
        "zero-sized elements"
    );
    assert_eq!(codec::from_slice::<[u8; 32]>(&[0; 31]), None, "short array");
    let unsorted = borsh::to_vec(&vec![(5u32, 1u8), (1, 2)]).unwrap();
    assert_eq!(
        codec::from_slice::<BTreeMap<u32, u8>>(&unsorted),
        None,
        "map keys out of order"
    );
    let repeated = borsh::to_vec(&vec![3u32, 3]).unwrap();
    assert_eq!(
        codec::from_slice::<BTreeSet<u32>>(&repeated),
        None,
        "repeated set item"
    );
    let mut named = codec::to_vec(&Named {
        id: 1,
        owner: Address([0; 32]),
        tags: vec!["t".into()],
        score: None,
    });
    named.pop();
    assert_eq!(codec::from_slice::<Named>(&named), None, "truncated struct");
}

#[test]
fn every_prefix_of_a_valid_encoding_is_refused() {
    let value = (
        Status::Moved {
            to: Address([8; 32]),
            at_ms: 3,
            note: Some("n".into()),
        },
        vec![String::from("ab"), String::from("c")],
        Some(BTreeMap::from([(1u8, 2u64)])),
    );
    let bytes = codec::to_vec(&value);
    assert_eq!(codec::from_slice(&bytes).as_ref(), Some(&value));
    for cut in 0..bytes.len() {
        assert_eq!(
            codec::from_slice::<(Status, Vec<String>, Option<BTreeMap<u8, u64>>)>(&bytes[..cut]),
            None,
            "prefix of {cut} bytes"
        );
    }
}

#[test]
fn utf8_check_agrees_with_core() {
    let agree = |bytes: &[u8]| {
        assert_eq!(
            codec::is_utf8(bytes),
            std::str::from_utf8(bytes).is_ok(),
            "{bytes:02x?}"
        );
    };
    // Every sequence of one, two and three bytes.
    for a in 0..=255u8 {
        agree(&[a]);
        for b in 0..=255u8 {
            agree(&[a, b]);
            for c in 0..=255u8 {
                agree(&[a, b, c]);
            }
        }
    }
    // Four bytes: every lead byte from 0xef up with every continuation
    // byte and its neighbours in the three places after it.
    let edges = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xff];
    for lead in 0xef..=0xffu8 {
        for b in (0x80..=0xbfu8).chain(edges) {
            for c in edges {
                for d in edges {
                    agree(&[lead, b, c, d]);
                }
            }
        }
    }
    // Mixed text, cut at every byte.
    let text = "aé€😀\u{10ffff}\u{d7ff}\u{e000}z".as_bytes();
    for end in 0..=text.len() {
        agree(&text[..end]);
        agree(&text[end..]);
    }
}

/// Decoding agrees with borsh on arbitrary bytes: both accept exactly the
/// same inputs, with the same values. Inputs are random bytes and valid
/// encodings with random bytes flipped, cut or appended.
#[test]
fn decoding_agrees_with_borsh_on_arbitrary_bytes() {
    type Value = (Status, Vec<String>, Option<u64>, [u8; 4], bool, Named);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = codec::to_vec(&(
        Status::Moved {
            to: Address([5; 32]),
            at_ms: 9,
            note: Some("é".into()),
        },
        vec![String::from("ab"), String::new()],
        Some(7u64),
        [1u8, 2, 3, 4],
        true,
        Named {
            id: 3,
            owner: Address([1; 32]),
            tags: vec!["x".into()],
            score: Some(-1),
        },
    ));
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..20_000 {
        let bytes: Vec<u8> = if round % 4 == 0 {
            (0..next() % 160).map(|_| next() as u8).collect()
        } else {
            let mut bytes = valid.clone();
            for _ in 0..1 + next() % 3 {
                match next() % 3 {
                    0 => {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                    1 => bytes.truncate((next() as usize) % (bytes.len() + 1)),
                    _ => bytes.push(next() as u8),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            bytes
        };
        let ours = codec::from_slice::<Value>(&bytes);
        let theirs = Value::try_from_slice(&bytes).ok();
        assert_eq!(ours, theirs, "{bytes:02x?}");
        if ours.is_some() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // Both outcomes were exercised often.
    assert!(
        accepted > 1_000 && refused > 1_000,
        "{accepted} / {refused}"
    );
}

#[test]
fn growth_helpers_keep_every_element_across_reallocations() {
    // Bytes: chunks of growing length, checked against `extend_from_slice`.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for len in 0..300usize {
        let chunk: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        codec::put(&mut ours, &chunk);
        theirs.extend_from_slice(&chunk);
        assert!(ours.capacity() >= ours.len());
    }
    assert_eq!(ours, theirs);

    // Values with alignment and a destructor (strings), pushed one by one.
    let mut strings: Vec<String> = Vec::new();
    for i in 0..1000 {
        codec::push(&mut strings, format!("item {i}"));
    }
    assert_eq!(strings.len(), 1000);
    assert!(
        strings
            .iter()
            .enumerate()
            .all(|(i, s)| *s == format!("item {i}"))
    );
    let mut wide: Vec<u128> = Vec::new();
    codec::reserve(&mut wide, 3);
    let capacity = wide.capacity();
    assert!(capacity >= 3);
    for i in 0..capacity as u128 {
        codec::push(&mut wide, i << 100);
    }
    assert_eq!(
        wide.capacity(),
        capacity,
        "no growth within the reservation"
    );
    codec::push(&mut wide, 1);
    assert!(wide.capacity() >= 2 * capacity, "growth at least doubles");
    assert_eq!(
        wide[..capacity],
        (0..capacity as u128).map(|i| i << 100).collect::<Vec<_>>()[..]
    );

    // Zero-sized values never allocate.
    let mut units: Vec<()> = Vec::new();
    for _ in 0..10 {
        codec::push(&mut units, ());
    }
    assert_eq!(units.len(), 10);

    assert_eq!(codec::copy(b"abc"), b"abc".to_vec());
    assert_eq!(codec::copy(b""), Vec::<u8>::new());
    assert_eq!(codec::string("héllo"), "héllo");
}
