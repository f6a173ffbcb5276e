//! Typed errors.
//!
//! `#[contract_error]` on an enum gives each variant a stable code and a
//! message (from `#[error("...")]`, or the variant's name). A method that
//! returns `Err(e)` aborts with `Enum::Variant: message`, which is what a
//! calling contract, the testkit and a client see.

/// An error a contract method can return.
pub trait ContractError {
    /// The enum's name.
    fn enum_name(&self) -> &'static str;
    /// The variant's name.
    fn variant(&self) -> &'static str;
    /// The variant's stable code.
    fn code(&self) -> u32;
    /// The variant's message.
    fn message(&self) -> &'static str;

    /// The text a caller receives, `Enum::Variant: message`, written out
    /// whole at compile time (no string building inside the contract).
    fn abort_message(&self) -> &'static str;
}
