//! Atomic exchange of a token amount for an NFT.
//!
//! A seller approves the escrow on their NFT and opens an offer: the escrow
//! takes custody of the NFT and records the price (in a fungible token) and
//! an expiry. Before the expiry, a buyer who approved the escrow on the
//! price accepts: in one transaction the escrow pays the seller from the
//! buyer (first leg) and hands the NFT to the buyer's recipient (second
//! leg). If either leg fails the whole transaction aborts, so both legs
//! roll back. After the expiry, anyone can return the NFT to the seller.
#![cfg_attr(target_arch = "wasm32", no_std)]

use fungible_token::FungibleTokenClient;
use media_nft::{MediaNftClient, TokenId};
use stele_sdk::prelude::*;

/// Where an offer stands.
#[data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferState {
    /// Waiting for a buyer.
    Open,
    /// Sold to `buyer`.
    Settled {
        /// Who paid.
        buyer: Address,
    },
    /// Expired and returned to the seller.
    Refunded,
}

/// An NFT offered for a token amount.
#[data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Who sells.
    pub seller: Address,
    /// The NFT contract.
    pub nft: Address,
    /// The NFT.
    pub token_id: TokenId,
    /// The fungible-token contract of the price.
    pub token: Address,
    /// The price.
    pub price: u128,
    /// Block time (ms) from which the offer can no longer be accepted.
    pub expires_at_ms: u64,
    /// Where it stands.
    pub state: OfferState,
}

/// The escrow's state.
#[contract]
pub struct Escrow {
    next_id: Item<u64>,
    offers: Map<u64, Offer>,
}

/// An offer was opened.
#[event]
pub struct OfferOpened {
    /// The offer.
    #[topic]
    pub offer_id: u64,
    /// The seller.
    #[topic]
    pub seller: Address,
    /// The price.
    pub price: u128,
}

/// An offer was accepted: payment and NFT both moved.
#[event]
pub struct OfferSettled {
    /// The offer.
    #[topic]
    pub offer_id: u64,
    /// The buyer.
    #[topic]
    pub buyer: Address,
}

/// An expired offer's NFT went back to the seller.
#[event]
pub struct OfferRefunded {
    /// The offer.
    #[topic]
    pub offer_id: u64,
}

/// Why an escrow operation failed.
#[contract_error]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscrowError {
    /// No such offer.
    #[error("no such offer")]
    NoSuchOffer,
    /// The offer is settled or refunded.
    #[error("the offer is not open")]
    NotOpen,
    /// The offer expired.
    #[error("the offer has expired")]
    Expired,
    /// A refund before the expiry.
    #[error("the offer has not expired yet")]
    NotExpired,
    /// The expiry is not in the future.
    #[error("the expiry must be in the future")]
    BadExpiry,
    /// The NFT could not be moved (not approved, not owned, bad recipient).
    #[error("the NFT transfer failed")]
    NftTransferFailed,
    /// The payment could not be taken (allowance or balance too low).
    #[error("the payment failed")]
    PaymentFailed,
}

#[contract]
impl Escrow {
    /// Starts with no offers.
    #[init]
    pub fn init(&mut self) {
        self.next_id.set(&1);
    }

    /// Opens an offer: takes custody of the caller's NFT (the escrow must be
    /// approved on it) for `price` of `token` until `expires_at_ms`.
    pub fn open(
        &mut self,
        nft: Address,
        token_id: TokenId,
        token: Address,
        price: u128,
        expires_at_ms: u64,
    ) -> Result<u64, EscrowError> {
        if expires_at_ms <= env::block_time_ms() {
            return Err(EscrowError::BadExpiry);
        }
        let seller = env::caller();
        let own = env::self_address();
        MediaNftClient::at(nft)
            .transfer_from(seller, own, token_id)
            .map_err(|_| EscrowError::NftTransferFailed)?;
        let offer_id = self.next_id.get().unwrap_or(1);
        self.next_id.set(&(offer_id + 1));
        let offer = Offer {
            seller,
            nft,
            token_id,
            token,
            price,
            expires_at_ms,
            state: OfferState::Open,
        };
        self.offers.insert(&offer_id, &offer);
        env::emit(&OfferOpened {
            offer_id,
            seller,
            price,
        });
        Ok(offer_id)
    }

    /// Accepts an open offer: pays the seller from the caller (who approved
    /// the escrow on the price), then sends the NFT to `recipient`. Both or
    /// neither.
    pub fn accept(&mut self, offer_id: u64, recipient: Address) -> Result<(), EscrowError> {
        let mut offer = self.open_offer(offer_id)?;
        if env::block_time_ms() >= offer.expires_at_ms {
            return Err(EscrowError::Expired);
        }
        let buyer = env::caller();
        FungibleTokenClient::at(offer.token)
            .transfer_from(buyer, offer.seller, offer.price)
            .map_err(|_| EscrowError::PaymentFailed)?;
        MediaNftClient::at(offer.nft)
            .transfer(recipient, offer.token_id)
            .map_err(|_| EscrowError::NftTransferFailed)?;
        offer.state = OfferState::Settled { buyer };
        self.offers.insert(&offer_id, &offer);
        env::emit(&OfferSettled { offer_id, buyer });
        Ok(())
    }

    /// Returns an expired offer's NFT to its seller; anyone may call it.
    pub fn refund(&mut self, offer_id: u64) -> Result<(), EscrowError> {
        let mut offer = self.open_offer(offer_id)?;
        if env::block_time_ms() < offer.expires_at_ms {
            return Err(EscrowError::NotExpired);
        }
        MediaNftClient::at(offer.nft)
            .transfer(offer.seller, offer.token_id)
            .map_err(|_| EscrowError::NftTransferFailed)?;
        offer.state = OfferState::Refunded;
        self.offers.insert(&offer_id, &offer);
        env::emit(&OfferRefunded { offer_id });
        Ok(())
    }

    /// An offer.
    pub fn offer(&self, offer_id: u64) -> Option<Offer> {
        self.offers.get(&offer_id)
    }
}

impl Escrow {
    fn open_offer(&self, offer_id: u64) -> Result<Offer, EscrowError> {
        let offer = self.offers.get(&offer_id).ok_or(EscrowError::NoSuchOffer)?;
        if offer.state != OfferState::Open {
            return Err(EscrowError::NotOpen);
        }
        Ok(offer)
    }
}
