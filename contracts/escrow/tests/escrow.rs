//! The escrow across three contracts: a token leg and an NFT leg that
//! settle together or not at all.

use escrow::{EscrowClient, OfferSettled, OfferState};
use fungible_token::FungibleTokenClient;
use media_nft::MediaNftClient;
use stele_sdk::Address;
use stele_testkit::{Caller, TestKit};

const PRICE: u128 = 500;
const HOUR_MS: u64 = 3_600_000;

struct Market {
    kit: TestKit,
    token: Address,
    nft: Address,
    escrow: Address,
    seller: Address,
    buyer: Address,
    token_id: u64,
    offer_id: u64,
}

impl Market {
    fn token(&self, account: Address) -> FungibleTokenClient<Caller<'_>> {
        FungibleTokenClient::new(self.token, self.kit.caller(account))
    }

    fn nft(&self, account: Address) -> MediaNftClient<Caller<'_>> {
        MediaNftClient::new(self.nft, self.kit.caller(account))
    }

    fn escrow(&self, account: Address) -> EscrowClient<Caller<'_>> {
        EscrowClient::new(self.escrow, self.kit.caller(account))
    }
}

/// A buyer holding 1,000 tokens; a seller whose NFT sits in an open offer.
fn market() -> Market {
    let kit = TestKit::new();
    let (seller, buyer) = (kit.account("seller"), kit.account("buyer"));
    let token = kit.deploy_crate(
        "fungible-token",
        buyer,
        &("Euro".to_string(), "EUR".to_string(), 2u8, 1_000u128),
    );
    let nft = kit.deploy_crate("media-nft", seller, &());
    let escrow = kit.deploy_crate("escrow", seller, &());
    let mut market = Market {
        kit,
        token,
        nft,
        escrow,
        seller,
        buyer,
        token_id: 0,
        offer_id: 0,
    };
    market.token_id = market
        .nft(seller)
        .mint(seller, [9; 32], "ipfs://film".into(), "all rights".into())
        .unwrap();
    market.nft(seller).approve(escrow, market.token_id).unwrap();
    let expiry = market.kit.time_ms() + HOUR_MS;
    market.offer_id = market
        .escrow(seller)
        .open(nft, market.token_id, token, PRICE, expiry)
        .unwrap();
    market
}

#[test]
fn opening_an_offer_takes_custody_of_the_nft() {
    let m = market();
    assert_eq!(m.nft(m.buyer).owner_of(m.token_id).unwrap(), Some(m.escrow));
    let offer = m.escrow(m.buyer).offer(m.offer_id).unwrap().unwrap();
    assert_eq!(
        (offer.seller, offer.price, offer.state),
        (m.seller, PRICE, OfferState::Open)
    );
}

#[test]
fn accepting_moves_both_legs_atomically() {
    let m = market();
    m.token(m.buyer).approve(m.escrow, PRICE).unwrap();
    m.escrow(m.buyer).accept(m.offer_id, m.buyer).unwrap();
    assert!(m.kit.emitted(&OfferSettled {
        offer_id: m.offer_id,
        buyer: m.buyer
    }));
    assert_eq!(m.token(m.buyer).balance(m.seller).unwrap(), PRICE);
    assert_eq!(m.token(m.buyer).balance(m.buyer).unwrap(), 1_000 - PRICE);
    assert_eq!(m.nft(m.buyer).owner_of(m.token_id).unwrap(), Some(m.buyer));
    let error = m.escrow(m.buyer).accept(m.offer_id, m.buyer).unwrap_err();
    assert_eq!(error.message, "EscrowError::NotOpen: the offer is not open");
    m.kit.print_gas_table();
}

#[test]
fn when_the_second_leg_fails_the_first_is_rolled_back_too() {
    let m = market();
    m.token(m.buyer).approve(m.escrow, PRICE).unwrap();
    // The payment leg succeeds, then the NFT leg fails: the zero address
    // cannot receive an NFT.
    let error = m
        .escrow(m.buyer)
        .accept(m.offer_id, Address::default())
        .unwrap_err();
    assert_eq!(
        error.message,
        "EscrowError::NftTransferFailed: the NFT transfer failed"
    );
    assert_eq!(
        m.token(m.buyer).balance(m.buyer).unwrap(),
        1_000,
        "the buyer was not charged"
    );
    assert_eq!(
        m.token(m.buyer).balance(m.seller).unwrap(),
        0,
        "the seller was not paid"
    );
    assert_eq!(
        m.token(m.buyer).allowance(m.buyer, m.escrow).unwrap(),
        PRICE,
        "the allowance is intact"
    );
    assert_eq!(m.nft(m.buyer).owner_of(m.token_id).unwrap(), Some(m.escrow));
    assert_eq!(
        m.escrow(m.buyer).offer(m.offer_id).unwrap().unwrap().state,
        OfferState::Open
    );
    assert!(
        m.kit.last().events.is_empty(),
        "no event of the failed legs survives"
    );
}

#[test]
fn when_the_first_leg_fails_nothing_moves() {
    let m = market();
    // No allowance: the payment leg fails first.
    let error = m.escrow(m.buyer).accept(m.offer_id, m.buyer).unwrap_err();
    assert_eq!(
        error.message,
        "EscrowError::PaymentFailed: the payment failed"
    );
    assert_eq!(m.nft(m.buyer).owner_of(m.token_id).unwrap(), Some(m.escrow));
    assert_eq!(m.token(m.buyer).balance(m.buyer).unwrap(), 1_000);
}

#[test]
fn expired_offers_cannot_be_accepted_and_are_refunded() {
    let m = market();
    m.token(m.buyer).approve(m.escrow, PRICE).unwrap();
    assert_eq!(
        m.escrow(m.buyer).refund(m.offer_id).unwrap_err().message,
        "EscrowError::NotExpired: the offer has not expired yet"
    );
    m.kit.advance(1, HOUR_MS);
    assert_eq!(
        m.escrow(m.buyer)
            .accept(m.offer_id, m.buyer)
            .unwrap_err()
            .message,
        "EscrowError::Expired: the offer has expired"
    );
    m.escrow(m.buyer).refund(m.offer_id).unwrap();
    assert_eq!(m.nft(m.buyer).owner_of(m.token_id).unwrap(), Some(m.seller));
    assert_eq!(
        m.escrow(m.buyer).offer(m.offer_id).unwrap().unwrap().state,
        OfferState::Refunded
    );
    assert!(m.escrow(m.buyer).refund(m.offer_id).is_err());
}

#[test]
fn an_offer_needs_the_nft_approved_and_a_future_expiry() {
    let m = market();
    let second = m
        .nft(m.seller)
        .mint(m.seller, [1; 32], String::new(), String::new())
        .unwrap();
    let later = m.kit.time_ms() + HOUR_MS;
    let error = m
        .escrow(m.seller)
        .open(m.nft, second, m.token, 1, later)
        .unwrap_err();
    assert_eq!(
        error.message,
        "EscrowError::NftTransferFailed: the NFT transfer failed"
    );
    m.nft(m.seller).approve(m.escrow, second).unwrap();
    let error = m
        .escrow(m.seller)
        .open(m.nft, second, m.token, 1, m.kit.time_ms())
        .unwrap_err();
    assert_eq!(
        error.message,
        "EscrowError::BadExpiry: the expiry must be in the future"
    );
    assert_eq!(m.escrow(m.seller).offer(99).unwrap(), None);
}
