//! Reading the spec a contract embeds in its code.

use stele_host_api::abi::SPEC_SECTION;
use stele_host_api::spec::{ContractSpec, SpecError};
use wasmparser::{Parser, Payload};

/// The spec in `code`'s `stele.spec` custom section: `Ok(None)` when there
/// is none (a contract not built with the SDK), an error when it is
/// malformed. `code` should be valid wasm; anything unparsable has no spec.
pub fn read(code: &[u8]) -> Result<Option<ContractSpec>, SpecError> {
    let mut section = Vec::new();
    let mut found = false;
    for payload in Parser::new(0).parse_all(code) {
        let Ok(payload) = payload else {
            return Ok(None);
        };
        if let Payload::CustomSection(custom) = payload
            && custom.name() == SPEC_SECTION
        {
            section.extend_from_slice(custom.data());
            found = true;
        }
    }
    if !found {
        return Ok(None);
    }
    ContractSpec::parse(&section).map(Some)
}
