//! Human-readable addresses: bech32m with the prefix `stele`, so a typo
//! (a changed or swapped character) is caught by the checksum.

use bech32::{Bech32m, Hrp};
use stele_host_api::Address;

/// The human-readable part of every address.
pub const ADDRESS_PREFIX: &str = "stele";

/// Why text is not an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not bech32m, or the checksum fails (a typo).
    #[error("not a valid address (bad characters or checksum): {0}")]
    Invalid(String),
    /// Another prefix.
    #[error("address prefix is `{found}`, expected `stele`")]
    Prefix {
        /// The prefix found.
        found: String,
    },
    /// Not 32 bytes.
    #[error("address holds {0} bytes, expected 32")]
    Length(usize),
}

/// `stele1…` for an address.
pub fn format_address(address: &Address) -> String {
    let hrp = Hrp::parse(ADDRESS_PREFIX).expect("a valid prefix");
    bech32::encode::<Bech32m>(hrp, &address.0).expect("32 bytes always encode")
}

/// Parses `stele1…`.
pub fn parse_address(text: &str) -> Result<Address, AddressError> {
    let (hrp, bytes) =
        bech32::decode(text).map_err(|error| AddressError::Invalid(error.to_string()))?;
    if hrp.as_str() != ADDRESS_PREFIX {
        return Err(AddressError::Prefix {
            found: hrp.to_string(),
        });
    }
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| AddressError::Length(bytes.len()))?;
    Ok(Address(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_typos_are_caught() {
        let address = Address([0x5a; 32]);
        let text = format_address(&address);
        assert!(text.starts_with("stele1"));
        assert_eq!(parse_address(&text), Ok(address));
        // Every single-character change is caught.
        for position in 6..text.len() {
            let mut typo: Vec<char> = text.chars().collect();
            typo[position] = if typo[position] == 'q' { 'p' } else { 'q' };
            let typo: String = typo.into_iter().collect();
            assert!(parse_address(&typo).is_err(), "{typo}");
        }
        // Swapped neighbours too.
        let mut swapped: Vec<char> = text.chars().collect();
        let at = (10..swapped.len() - 1)
            .find(|&idx| swapped[idx] != swapped[idx + 1])
            .unwrap();
        swapped.swap(at, at + 1);
        assert!(parse_address(&swapped.into_iter().collect::<String>()).is_err());
        let other = bech32::encode::<Bech32m>(Hrp::parse("cosmos").unwrap(), &[1; 32]).unwrap();
        assert_eq!(
            parse_address(&other),
            Err(AddressError::Prefix {
                found: "cosmos".into()
            })
        );
        let short = bech32::encode::<Bech32m>(Hrp::parse("stele").unwrap(), &[1; 20]).unwrap();
        assert_eq!(parse_address(&short), Err(AddressError::Length(20)));
    }
}
