//! A fungible token: balances, allowances, admin minting, burning, and
//! `transfer_call`, which moves tokens and then calls the receiver's
//! `on_token_received(sender, amount, message)` hook in the same
//! transaction (a refusing receiver undoes the transfer).
#![cfg_attr(target_arch = "wasm32", no_std)]

use stele_sdk::prelude::*;

/// The token's state.
#[contract]
pub struct FungibleToken {
    name: Item<String>,
    symbol: Item<String>,
    decimals: Item<u8>,
    total_supply: Item<u128>,
    admin: Item<Address>,
    balances: Map<Address, u128>,
    allowances: Map<(Address, Address), u128>,
}

/// Tokens moved from one account to another.
#[event]
pub struct Transfer {
    /// Sender.
    #[topic]
    pub from: Address,
    /// Recipient.
    #[topic]
    pub to: Address,
    /// Amount moved.
    pub amount: u128,
}

/// An allowance was set.
#[event]
pub struct Approval {
    /// Who allows.
    #[topic]
    pub owner: Address,
    /// Who may spend.
    #[topic]
    pub spender: Address,
    /// The new allowance.
    pub amount: u128,
}

/// New tokens were created.
#[event]
pub struct Mint {
    /// Who received them.
    #[topic]
    pub to: Address,
    /// How many.
    pub amount: u128,
}

/// Tokens were destroyed.
#[event]
pub struct Burn {
    /// Whose tokens.
    #[topic]
    pub from: Address,
    /// How many.
    pub amount: u128,
}

/// Why a token operation failed.
#[contract_error]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The sender's balance is below the amount.
    #[error("balance too low")]
    InsufficientBalance,
    /// The spender's allowance is below the amount.
    #[error("allowance too low")]
    InsufficientAllowance,
    /// Only the admin may mint.
    #[error("only the admin may mint")]
    NotAdmin,
    /// The total supply would overflow.
    #[error("total supply would overflow")]
    Overflow,
    /// The receiver's hook failed.
    #[error("the receiver refused the tokens")]
    ReceiverRefused,
}

#[contract]
impl FungibleToken {
    /// Sets the token's metadata; the deployer becomes the admin and gets
    /// the initial supply.
    #[init]
    pub fn init(&mut self, name: String, symbol: String, decimals: u8, initial_supply: u128) {
        let admin = env::caller();
        self.name.set(&name);
        self.symbol.set(&symbol);
        self.decimals.set(&decimals);
        self.admin.set(&admin);
        self.total_supply.set(&initial_supply);
        if initial_supply > 0 {
            self.balances.insert(&admin, &initial_supply);
            env::emit(&Mint {
                to: admin,
                amount: initial_supply,
            });
        }
    }

    /// The token's name.
    pub fn name(&self) -> String {
        self.name.get().unwrap_or_default()
    }

    /// The token's symbol.
    pub fn symbol(&self) -> String {
        self.symbol.get().unwrap_or_default()
    }

    /// Decimal places for display.
    pub fn decimals(&self) -> u8 {
        self.decimals.get().unwrap_or_default()
    }

    /// Tokens in existence.
    pub fn total_supply(&self) -> u128 {
        self.total_supply.get().unwrap_or_default()
    }

    /// The admin, who may mint.
    pub fn admin(&self) -> Address {
        self.admin.get().unwrap_or_default()
    }

    /// An account's balance.
    pub fn balance(&self, owner: Address) -> u128 {
        self.balances.get(&owner).unwrap_or_default()
    }

    /// Moves `amount` from the caller to `to`.
    pub fn transfer(&mut self, to: Address, amount: u128) -> Result<(), TokenError> {
        self.move_tokens(env::caller(), to, amount)
    }

    /// Lets `spender` move up to `amount` of the caller's tokens.
    pub fn approve(&mut self, spender: Address, amount: u128) {
        let owner = env::caller();
        self.allowances.insert(&(owner, spender), &amount);
        env::emit(&Approval {
            owner,
            spender,
            amount,
        });
    }

    /// What `spender` may still move from `owner`.
    pub fn allowance(&self, owner: Address, spender: Address) -> u128 {
        self.allowances.get(&(owner, spender)).unwrap_or_default()
    }

    /// Moves `amount` from `from` to `to` against the caller's allowance.
    pub fn transfer_from(
        &mut self,
        from: Address,
        to: Address,
        amount: u128,
    ) -> Result<(), TokenError> {
        let spender = env::caller();
        let key = (from, spender);
        let allowance = self.allowances.get(&key).unwrap_or_default();
        let left = allowance
            .checked_sub(amount)
            .ok_or(TokenError::InsufficientAllowance)?;
        self.allowances.insert(&key, &left);
        self.move_tokens(from, to, amount)
    }

    /// Creates `amount` new tokens for `to`; admin only.
    pub fn mint(&mut self, to: Address, amount: u128) -> Result<(), TokenError> {
        if Some(env::caller()) != self.admin.get() {
            return Err(TokenError::NotAdmin);
        }
        let supply = self
            .total_supply()
            .checked_add(amount)
            .ok_or(TokenError::Overflow)?;
        self.total_supply.set(&supply);
        // No balance exceeds the supply, so this cannot overflow either.
        let balance = self
            .balance(to)
            .checked_add(amount)
            .ok_or(TokenError::Overflow)?;
        self.balances.insert(&to, &balance);
        env::emit(&Mint { to, amount });
        Ok(())
    }

    /// Destroys `amount` of the caller's tokens.
    pub fn burn(&mut self, amount: u128) -> Result<(), TokenError> {
        let from = env::caller();
        let balance = self
            .balance(from)
            .checked_sub(amount)
            .ok_or(TokenError::InsufficientBalance)?;
        self.balances.insert(&from, &balance);
        // The supply is at least the burner's balance, so this cannot
        // saturate; it keeps panic machinery out of the contract.
        self.total_supply
            .set(&self.total_supply().saturating_sub(amount));
        env::emit(&Burn { from, amount });
        Ok(())
    }

    /// Moves `amount` to `receiver`, then calls its
    /// `on_token_received(sender, amount, message)`; if that fails, the
    /// whole transfer is undone.
    pub fn transfer_call(
        &mut self,
        receiver: Address,
        amount: u128,
        message: Vec<u8>,
    ) -> Result<(), TokenError> {
        let sender = env::caller();
        self.move_tokens(sender, receiver, amount)?;
        let input = stele_sdk::codec::to_vec(&(sender, amount, message));
        env::call_raw(&receiver, "on_token_received", &input, 0)
            .map_err(|_| TokenError::ReceiverRefused)?;
        Ok(())
    }
}

impl FungibleToken {
    fn move_tokens(&mut self, from: Address, to: Address, amount: u128) -> Result<(), TokenError> {
        let from_balance = self.balance(from);
        let left = from_balance
            .checked_sub(amount)
            .ok_or(TokenError::InsufficientBalance)?;
        if from != to {
            self.balances.insert(&from, &left);
            let to_balance = self
                .balance(to)
                .checked_add(amount)
                .ok_or(TokenError::Overflow)?;
            self.balances.insert(&to, &to_balance);
        }
        env::emit(&Transfer { from, to, amount });
        Ok(())
    }
}
