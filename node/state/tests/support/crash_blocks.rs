//! The deterministic blocks of the crash test, shared by the test and the
//! child process it kills (`src/bin/stele-state-crash.rs`).
#![allow(dead_code)]

use std::collections::BTreeMap;

/// A tiny deterministic generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Keys the blocks touch.
pub const KEY_SPACE: u64 = 2_000;
/// Writes per block (draws; repeated keys merge).
pub const WRITES_PER_BLOCK: usize = 300;
/// Draws of every third block: enough distinct keys (about 660) for the
/// tree update to split across threads (`PARALLEL_UPDATES_MIN`).
pub const WRITES_PER_LARGE_BLOCK: usize = 800;

/// The writes of block `version`: puts and removals over a fixed key space.
pub fn block(version: u64) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    let mut rng = Rng(version.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut writes = BTreeMap::new();
    let draws = if version.is_multiple_of(3) {
        WRITES_PER_LARGE_BLOCK
    } else {
        WRITES_PER_BLOCK
    };
    for _ in 0..draws {
        let key = format!("key-{:05}", rng.next() % KEY_SPACE).into_bytes();
        let value = if rng.next().is_multiple_of(5) {
            None
        } else {
            let len = 20 + (rng.next() % 80) as usize;
            Some(
                (0..len)
                    .map(|idx| (rng.next() as u8) ^ (version as u8) ^ (idx as u8))
                    .collect(),
            )
        };
        writes.insert(key, value);
    }
    writes
}

/// The state after blocks `1..=version`.
pub fn model(version: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for v in 1..=version {
        for (key, value) in block(v) {
            match value {
                Some(value) => state.insert(key, value),
                None => state.remove(&key),
            };
        }
    }
    state
}
