//! A multimedia asset registry. Each token stands for one asset (an image,
//! a video, a score): its content hash, where to fetch it, and the licence
//! under which its owner may use it. Tokens are minted by the registry's
//! minter, then move freely between owners.
#![cfg_attr(target_arch = "wasm32", no_std)]

use stele_sdk::prelude::*;

/// A token's identifier: minting order, from 1.
pub type TokenId = u64;

/// What a token records about its asset.
#[data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// BLAKE3 (or any 32-byte digest) of the asset's content.
    pub content_hash: [u8; 32],
    /// Where the content can be fetched.
    pub uri: String,
    /// The licence terms, e.g. an SPDX identifier or a URL.
    pub licence: String,
    /// Who minted it.
    pub creator: Address,
    /// When it was minted (block time, ms).
    pub minted_at_ms: u64,
}

/// The registry's state.
#[contract]
pub struct MediaNft {
    minter: Item<Address>,
    next_id: Item<TokenId>,
    owners: Map<TokenId, Address>,
    infos: Map<TokenId, TokenInfo>,
    approvals: Map<TokenId, Address>,
    /// `(owner, token id big-endian)` for every token: pages of an owner's
    /// tokens in id order.
    owned: Set<(Address, [u8; 8])>,
}

/// A token was minted.
#[event]
pub struct Minted {
    /// The new token.
    #[topic]
    pub token_id: TokenId,
    /// Its first owner.
    #[topic]
    pub owner: Address,
    /// Its content hash.
    pub content_hash: [u8; 32],
}

/// A token changed owner.
#[event]
pub struct Transferred {
    /// The token.
    #[topic]
    pub token_id: TokenId,
    /// Previous owner.
    #[topic]
    pub from: Address,
    /// New owner.
    #[topic]
    pub to: Address,
}

/// Someone may now transfer a token for its owner.
#[event]
pub struct Approved {
    /// The token.
    #[topic]
    pub token_id: TokenId,
    /// Who may transfer it.
    #[topic]
    pub spender: Address,
}

/// Why a registry operation failed.
#[contract_error]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NftError {
    /// Only the minter may mint.
    #[error("only the minter may mint")]
    NotMinter,
    /// No such token.
    #[error("no such token")]
    NoSuchToken,
    /// The caller neither owns the token nor is approved for it.
    #[error("not the owner or approved")]
    NotAllowed,
    /// Tokens cannot go to the zero address.
    #[error("cannot transfer to the zero address")]
    ZeroAddress,
    /// URI or licence longer than 512 bytes.
    #[error("uri or licence too long (512 bytes max)")]
    TooLong,
}

/// Longest URI or licence accepted.
pub const TEXT_BYTES_MAX: usize = 512;
/// Largest page of `tokens_of`.
pub const PAGE_MAX: u32 = 100;

#[contract]
impl MediaNft {
    /// The deployer becomes the minter.
    #[init]
    pub fn init(&mut self) {
        self.minter.set(&env::caller());
        self.next_id.set(&1);
    }

    /// Mints a token for `to`; minter only. Returns its id.
    pub fn mint(
        &mut self,
        to: Address,
        content_hash: [u8; 32],
        uri: String,
        licence: String,
    ) -> Result<TokenId, NftError> {
        let creator = env::caller();
        if Some(creator) != self.minter.get() {
            return Err(NftError::NotMinter);
        }
        if to == Address::default() {
            return Err(NftError::ZeroAddress);
        }
        if uri.len() > TEXT_BYTES_MAX || licence.len() > TEXT_BYTES_MAX {
            return Err(NftError::TooLong);
        }
        let token_id = self.next_id.get().unwrap_or(1);
        self.next_id.set(&(token_id + 1));
        let info = TokenInfo {
            content_hash,
            uri,
            licence,
            creator,
            minted_at_ms: env::block_time_ms(),
        };
        self.infos.insert(&token_id, &info);
        self.owners.insert(&token_id, &to);
        self.owned.insert(&(to, token_id.to_be_bytes()));
        env::emit(&Minted {
            token_id,
            owner: to,
            content_hash,
        });
        Ok(token_id)
    }

    /// Transfers the caller's token to `to`.
    pub fn transfer(&mut self, to: Address, token_id: TokenId) -> Result<(), NftError> {
        let owner = self.owners.get(&token_id).ok_or(NftError::NoSuchToken)?;
        if owner != env::caller() {
            return Err(NftError::NotAllowed);
        }
        self.move_token(owner, to, token_id)
    }

    /// Transfers `token_id` from `from` to `to`; the caller owns it or is
    /// approved for it.
    pub fn transfer_from(
        &mut self,
        from: Address,
        to: Address,
        token_id: TokenId,
    ) -> Result<(), NftError> {
        let owner = self.owners.get(&token_id).ok_or(NftError::NoSuchToken)?;
        let caller = env::caller();
        let approved = self.approvals.get(&token_id) == Some(caller);
        if owner != from || (caller != owner && !approved) {
            return Err(NftError::NotAllowed);
        }
        self.move_token(owner, to, token_id)
    }

    /// Lets `spender` transfer the caller's token (until it moves).
    pub fn approve(&mut self, spender: Address, token_id: TokenId) -> Result<(), NftError> {
        let owner = self.owners.get(&token_id).ok_or(NftError::NoSuchToken)?;
        if owner != env::caller() {
            return Err(NftError::NotAllowed);
        }
        self.approvals.insert(&token_id, &spender);
        env::emit(&Approved { token_id, spender });
        Ok(())
    }

    /// The owner of a token.
    pub fn owner_of(&self, token_id: TokenId) -> Option<Address> {
        self.owners.get(&token_id)
    }

    /// Who may transfer a token for its owner.
    pub fn approved(&self, token_id: TokenId) -> Option<Address> {
        self.approvals.get(&token_id)
    }

    /// What a token records.
    pub fn token_info(&self, token_id: TokenId) -> Option<TokenInfo> {
        self.infos.get(&token_id)
    }

    /// Up to `limit` (at most 100) of `owner`'s tokens, by id, after
    /// `start_after`.
    pub fn tokens_of(
        &self,
        owner: Address,
        start_after: Option<TokenId>,
        limit: u32,
    ) -> Vec<TokenId> {
        let start_after = start_after.map(|token_id| (owner, token_id.to_be_bytes()));
        let limit = limit.min(PAGE_MAX) as usize;
        let page = self.owned.page_prefix(&owner, start_after.as_ref(), limit);
        page.into_iter()
            .map(|(_, token_id)| TokenId::from_be_bytes(token_id))
            .collect()
    }

    /// How many tokens were minted.
    pub fn minted(&self) -> u64 {
        self.next_id.get().unwrap_or(1) - 1
    }
}

impl MediaNft {
    fn move_token(
        &mut self,
        from: Address,
        to: Address,
        token_id: TokenId,
    ) -> Result<(), NftError> {
        if to == Address::default() {
            return Err(NftError::ZeroAddress);
        }
        self.approvals.remove(&token_id);
        self.owned.remove(&(from, token_id.to_be_bytes()));
        self.owned.insert(&(to, token_id.to_be_bytes()));
        self.owners.insert(&token_id, &to);
        env::emit(&Transferred { token_id, from, to });
        Ok(())
    }
}
