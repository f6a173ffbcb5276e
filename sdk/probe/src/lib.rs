//! A contract exercising every SDK feature, for the SDK's own tests: the
//! collections and their pagination, context accessors, native transfers
//! (through a method that shares its name with the host function),
//! hashing, signatures, panics, and upgrading with a migration hook.
#![cfg_attr(target_arch = "wasm32", no_std)]

use stele_sdk::prelude::*;

/// The code version: 1, or 2 with the `v2` feature.
pub const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };

/// The probe's state.
#[contract]
pub struct Probe {
    notes: Vector<String>,
    tags: Set<String>,
    scores: Map<(Address, u32), u64>,
    deployed_version: Item<u32>,
    migrated: Item<String>,
}

#[contract]
impl Probe {
    /// Records the version that was deployed.
    #[init]
    pub fn init(&mut self) {
        self.deployed_version.set(&VERSION);
    }

    /// The running code's version.
    pub fn version(&self) -> u32 {
        VERSION
    }

    /// Arguments named like the generated export's own locals still
    /// arrive in order.
    pub fn combine(&self, input: u32, state: u32, result: u32) -> u32 {
        input * 100 + state * 10 + result
    }

    /// The version recorded at deployment.
    pub fn deployed_version(&self) -> u32 {
        self.deployed_version.get().unwrap_or_default()
    }

    /// Appends a note; returns its index.
    pub fn push_note(&mut self, note: String) -> u32 {
        self.notes.push(&note)
    }

    /// Removes the last note.
    pub fn pop_note(&mut self) -> Option<String> {
        self.notes.pop()
    }

    /// Up to `limit` notes from index `start`.
    pub fn notes(&self, start: u32, limit: u32) -> Vec<String> {
        self.notes.page(start, limit as usize)
    }

    /// Number of notes.
    pub fn note_count(&self) -> u32 {
        self.notes.len()
    }

    /// Adds a tag.
    pub fn tag(&mut self, tag: String) {
        self.tags.insert(&tag);
    }

    /// Removes a tag; returns whether it was there.
    pub fn untag(&mut self, tag: String) -> bool {
        self.tags.remove(&tag)
    }

    /// Whether a tag is set.
    pub fn has_tag(&self, tag: String) -> bool {
        self.tags.contains(&tag)
    }

    /// Up to `limit` tags after `start_after`.
    pub fn tags(&self, start_after: Option<String>, limit: u32) -> Vec<String> {
        self.tags.page(start_after.as_ref(), limit as usize)
    }

    /// Records a player's points in a round.
    pub fn score(&mut self, player: Address, round: u32, points: u64) {
        self.scores.insert(&(player, round), &points);
    }

    /// A page of one player's scores.
    pub fn scores_of(
        &self,
        player: Address,
        start_after: Option<u32>,
        limit: u32,
    ) -> Vec<(u32, u64)> {
        let start_after = start_after.map(|round| (player, round));
        self.scores
            .page_prefix(&player, start_after.as_ref(), limit as usize)
            .into_iter()
            .map(|((_, round), points)| (round, points))
            .collect()
    }

    /// Sends native coin from the contract (a method named like the host
    /// function it calls).
    pub fn transfer(&mut self, to: Address, amount: u128) -> bool {
        env::transfer(&to, amount)
    }

    /// The contract's native balance.
    pub fn balance(&self) -> u128 {
        env::balance(&env::self_address())
    }

    /// Caller, self, origin, height and time.
    pub fn context(&self) -> (Address, Address, Address, u64, u64) {
        (
            env::caller(),
            env::self_address(),
            env::origin(),
            env::block_height(),
            env::block_time_ms(),
        )
    }

    /// BLAKE3 of `data`.
    pub fn hash(&self, data: Vec<u8>) -> [u8; 32] {
        env::blake3(&data)
    }

    /// Strict ed25519 verification.
    pub fn verify(&self, public_key: [u8; 32], signature: Vec<u8>, message: Vec<u8>) -> bool {
        let Ok(signature) = <[u8; 64]>::try_from(signature.as_slice()) else {
            return false;
        };
        env::ed25519_verify(&public_key, &signature, &message)
    }

    /// Panics.
    pub fn panic_now(&self) {
        panic!("this message is not kept")
    }

    /// Allocates `bytes` bytes and returns how many it got.
    pub fn allocate(&self, bytes: u32) -> u32 {
        core::hint::black_box(vec![1u8; bytes as usize]).len() as u32
    }

    /// Logs a line and returns the gas left.
    pub fn log_gas(&self) -> u64 {
        env::log("probe was here");
        env::gas_left()
    }

    /// Replaces the code; the new code's `migrate` gets `note`.
    pub fn upgrade(&mut self, code: Vec<u8>, note: String) {
        env::upgrade(&code, &stele_sdk::codec::to_vec(&(note,)));
    }

    /// Runs after an upgrade.
    #[migrate]
    pub fn migrate(&mut self, note: String) {
        let mut text = note;
        text.push_str(" (migrated by v");
        text.push(char::from(b'0' + VERSION as u8));
        text.push(')');
        self.migrated.set(&text);
    }

    /// What the last migration wrote.
    pub fn migrated(&self) -> Option<String> {
        self.migrated.get()
    }
}
