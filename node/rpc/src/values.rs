//! JSON values ⇄ borsh bytes, driven by the type names of a contract's
//! embedded spec, so people call contracts with JSON arguments and read
//! JSON results.
//!
//! Supported types: `bool`, `u8`…`u128`, `i8`…`i128` (numbers, or decimal
//! strings for any width), `String`, `Address` (`stele1…`), `Vec<u8>` and
//! byte arrays `[u8; N]` / `Hash` / `CodeHash` / `Topic` (hex), `Vec<T>`,
//! `Option<T>` (`null` for `None`), tuples and `()`. Other (custom) types
//! are refused with a message that says so; pass raw borsh hex instead.

use serde_json::{Value, json};
use stele_host_api::Address;
use stele_host_api::spec::{ContractSpec, MethodKind, MethodSpec};
use stele_types::{format_address, parse_address};

/// The spec as JSON.
pub fn spec_json(spec: &ContractSpec) -> Value {
    json!({
        "name": spec.name,
        "methods": spec.methods.iter().map(|method| json!({
            "name": method.name,
            "kind": match method.kind {
                MethodKind::Init => "init",
                MethodKind::View => "view",
                MethodKind::Call => "call",
                MethodKind::Migrate => "migrate",
            },
            "args": method.args.iter().map(|arg| json!({"name": arg.name, "type": arg.ty})).collect::<Vec<_>>(),
            "returns": method.returns,
            "error": method.error,
            "doc": method.doc,
        })).collect::<Vec<_>>(),
        "events": spec.events.iter().map(|event| json!({
            "name": event.name,
            "topics": event.topics.iter().map(|p| json!({"name": p.name, "type": p.ty})).collect::<Vec<_>>(),
            "data": event.data.iter().map(|p| json!({"name": p.name, "type": p.ty})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "errors": spec.errors.iter().map(|error| json!({
            "name": error.name,
            "variants": error.variants.iter().map(|v| json!({"code": v.code, "name": v.name, "message": v.message})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Encodes a method's arguments: a JSON object by parameter name, or an
/// array in order.
pub fn encode_args(method: &MethodSpec, args: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match args {
        Value::Object(map) => {
            for param in &method.args {
                let value = map.get(&param.name).ok_or_else(|| {
                    format!("argument `{}` ({}) is missing", param.name, param.ty)
                })?;
                encode(&param.ty, value, &mut out)
                    .map_err(|problem| format!("argument `{}`: {problem}", param.name))?;
            }
            if let Some(extra) = map
                .keys()
                .find(|key| !method.args.iter().any(|p| &p.name == *key))
            {
                return Err(format!("`{}` takes no argument `{extra}`", method.name));
            }
        }
        Value::Array(items) => {
            if items.len() != method.args.len() {
                return Err(format!(
                    "`{}` takes {} arguments, got {}",
                    method.name,
                    method.args.len(),
                    items.len()
                ));
            }
            for (param, value) in method.args.iter().zip(items) {
                encode(&param.ty, value, &mut out)
                    .map_err(|problem| format!("argument `{}`: {problem}", param.name))?;
            }
        }
        Value::Null if method.args.is_empty() => {}
        _ => return Err("arguments must be a JSON object or array".into()),
    }
    Ok(out)
}

/// Splits `A, B<C, D>, E` at top-level commas.
fn split_top(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (index, ch) in list.char_indices() {
        match ch {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(list[start..index].trim());
                start = index + 1;
            }
            _ => {}
        }
    }
    let last = list[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

fn inner<'a>(ty: &'a str, prefix: &str) -> Option<&'a str> {
    ty.strip_prefix(prefix)?.strip_suffix('>')
}

fn byte_array_len(ty: &str) -> Option<usize> {
    match ty {
        "Hash" | "CodeHash" | "Topic" => Some(32),
        _ => ty
            .strip_prefix("[u8;")?
            .strip_suffix(']')?
            .trim()
            .parse()
            .ok(),
    }
}

fn integer(ty: &str) -> Option<(usize, bool)> {
    Some(match ty {
        "u8" => (1, false),
        "u16" => (2, false),
        "u32" => (4, false),
        "u64" => (8, false),
        "u128" => (16, false),
        "i8" => (1, true),
        "i16" => (2, true),
        "i32" => (4, true),
        "i64" => (8, true),
        "i128" => (16, true),
        _ => return None,
    })
}

fn hex_bytes(value: &Value) -> Result<Vec<u8>, String> {
    let text = value.as_str().ok_or("expected a hex string")?;
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).map_err(|e| format!("not hex: {e}"))
}

/// Encodes one JSON value as the borsh encoding of `ty`.
pub fn encode(ty: &str, value: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let ty = ty.trim();
    if let Some((width, signed)) = integer(ty) {
        let text = match value {
            Value::Number(number) => number.to_string(),
            Value::String(text) => text.clone(),
            _ => return Err(format!("expected a {ty} (number or decimal string)")),
        };
        if signed {
            let n: i128 = text
                .parse()
                .map_err(|_| format!("`{text}` is not an {ty}"))?;
            let min = -(1i128 << (width * 8 - 1));
            let max = (1i128 << (width * 8 - 1)) - 1;
            if width < 16 && (n < min || n > max) {
                return Err(format!("{n} does not fit in {ty}"));
            }
            out.extend_from_slice(&n.to_le_bytes()[..width]);
        } else {
            let n: u128 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a {ty}"))?;
            if width < 16 && n >> (width * 8) != 0 {
                return Err(format!("{n} does not fit in {ty}"));
            }
            out.extend_from_slice(&n.to_le_bytes()[..width]);
        }
        return Ok(());
    }
    match ty {
        "()" => return Ok(()),
        "bool" => {
            out.push(u8::from(value.as_bool().ok_or("expected true or false")?));
            return Ok(());
        }
        "String" | "&str" => {
            let text = value.as_str().ok_or("expected a string")?;
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        "Address" => {
            let text = value.as_str().ok_or("expected a stele1… address")?;
            out.extend_from_slice(&parse_address(text).map_err(|e| e.to_string())?.0);
            return Ok(());
        }
        "Vec<u8>" => {
            let bytes = hex_bytes(value)?;
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
            return Ok(());
        }
        _ => {}
    }
    if let Some(len) = byte_array_len(ty) {
        let bytes = hex_bytes(value)?;
        if bytes.len() != len {
            return Err(format!("expected {len} bytes, got {}", bytes.len()));
        }
        out.extend_from_slice(&bytes);
        return Ok(());
    }
    if let Some(item) = inner(ty, "Vec<") {
        let items = value.as_array().ok_or("expected an array")?;
        out.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for value in items {
            encode(item, value, out)?;
        }
        return Ok(());
    }
    if let Some(item) = inner(ty, "Option<") {
        if value.is_null() {
            out.push(0);
        } else {
            out.push(1);
            encode(item, value, out)?;
        }
        return Ok(());
    }
    if let Some(list) = ty.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        let types = split_top(list);
        let items = value.as_array().ok_or("expected an array for a tuple")?;
        if items.len() != types.len() {
            return Err(format!("expected {} tuple items", types.len()));
        }
        for (ty, value) in types.into_iter().zip(items) {
            encode(ty, value, out)?;
        }
        return Ok(());
    }
    Err(format!(
        "type `{ty}` is not supported by the JSON encoder; pass borsh bytes as hex instead"
    ))
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err("the bytes end early".into());
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn length(input: &mut &[u8]) -> Result<usize, String> {
    let len = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes")) as usize;
    if len > input.len() {
        return Err(format!(
            "a length of {len} exceeds the {} bytes left",
            input.len()
        ));
    }
    Ok(len)
}

/// Decodes borsh bytes of `ty` into JSON (u64 and wider as strings).
pub fn decode(ty: &str, input: &mut &[u8]) -> Result<Value, String> {
    let ty = ty.trim();
    if let Some((width, signed)) = integer(ty) {
        let bytes = take(input, width)?;
        let mut wide = [if signed && bytes[width - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        }; 16];
        wide[..width].copy_from_slice(bytes);
        let text = if signed {
            i128::from_le_bytes(wide).to_string()
        } else {
            u128::from_le_bytes(wide).to_string()
        };
        return Ok(if width <= 4 {
            serde_json::from_str(&text).expect("a small integer is JSON")
        } else {
            Value::String(text)
        });
    }
    match ty {
        "()" => return Ok(Value::Null),
        "bool" => {
            return match take(input, 1)?[0] {
                0 => Ok(Value::Bool(false)),
                1 => Ok(Value::Bool(true)),
                other => Err(format!("{other} is not a bool")),
            };
        }
        "String" | "&str" => {
            let len = length(input)?;
            let bytes = take(input, len)?;
            return String::from_utf8(bytes.to_vec())
                .map(Value::String)
                .map_err(|_| "a string is not UTF-8".into());
        }
        "Address" => {
            let bytes: [u8; 32] = take(input, 32)?.try_into().expect("32 bytes");
            return Ok(Value::String(format_address(&Address(bytes))));
        }
        "Vec<u8>" => {
            let len = length(input)?;
            return Ok(Value::String(hex::encode(take(input, len)?)));
        }
        _ => {}
    }
    if let Some(len) = byte_array_len(ty) {
        return Ok(Value::String(hex::encode(take(input, len)?)));
    }
    if let Some(item) = inner(ty, "Vec<") {
        let count = u32::from_le_bytes(take(input, 4)?.try_into().expect("4 bytes"));
        let mut items = Vec::new();
        for _ in 0..count {
            items.push(decode(item, input)?);
        }
        return Ok(Value::Array(items));
    }
    if let Some(item) = inner(ty, "Option<") {
        return match take(input, 1)?[0] {
            0 => Ok(Value::Null),
            1 => decode(item, input),
            other => Err(format!("{other} is not an Option tag")),
        };
    }
    if let Some(list) = ty.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        return split_top(list)
            .into_iter()
            .map(|ty| decode(ty, input))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    Err(format!("type `{ty}` is not supported by the JSON decoder"))
}

/// Decodes a whole return value; trailing bytes are an error.
pub fn decode_all(ty: &str, mut input: &[u8]) -> Result<Value, String> {
    let value = decode(ty, &mut input)?;
    if !input.is_empty() {
        return Err(format!("{} bytes left after decoding {ty}", input.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use borsh::BorshSerialize;

    fn encoded(ty: &str, value: Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(ty, &value, &mut out).unwrap();
        out
    }

    #[test]
    fn matches_borsh_for_supported_types() {
        let address = Address([7; 32]);
        let text = format_address(&address);
        assert_eq!(
            encoded("u128", json!("340282366920938463463374607431768211455")),
            u128::MAX.to_le_bytes()
        );
        assert_eq!(encoded("u8", json!(255)), borsh::to_vec(&255u8).unwrap());
        assert_eq!(encoded("i32", json!(-5)), borsh::to_vec(&-5i32).unwrap());
        assert_eq!(encoded("String", json!("hé")), borsh::to_vec("hé").unwrap());
        assert_eq!(
            encoded("Address", json!(text)),
            borsh::to_vec(&address).unwrap()
        );
        assert_eq!(
            encoded("Vec<u8>", json!("0102")),
            borsh::to_vec(&vec![1u8, 2]).unwrap()
        );
        assert_eq!(
            encoded("Option<u64>", json!(null)),
            borsh::to_vec(&None::<u64>).unwrap()
        );
        assert_eq!(
            encoded("Vec<(u32, bool)>", json!([[1, true]])),
            borsh::to_vec(&vec![(1u32, true)]).unwrap()
        );
        let mut tuple = Vec::new();
        (3u64, String::from("x")).serialize(&mut tuple).unwrap();
        assert_eq!(encoded("(u64, String)", json!(["3", "x"])), tuple);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut out = Vec::new();
        assert!(
            encode("u8", &json!(256), &mut out)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(
            encode("i8", &json!(-129), &mut out)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(encode("Address", &json!("stele1xyz"), &mut out).is_err());
        assert!(
            encode("MyStruct", &json!({}), &mut out)
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn decoding_inverts_encoding() {
        for (ty, value) in [
            ("u128", json!("12345678901234567890")),
            ("i16", json!(-300)),
            ("Option<String>", json!("a")),
            ("Vec<Address>", json!([format_address(&Address([9; 32]))])),
            ("(u8, Vec<u8>)", json!([1, "ff"])),
        ] {
            assert_eq!(
                decode_all(ty, &encoded(ty, value.clone())).unwrap(),
                value,
                "{ty}"
            );
        }
        assert!(
            decode_all("u32", &[1, 2, 3, 4, 5])
                .unwrap_err()
                .contains("left")
        );
        assert!(
            decode_all("Vec<u8>", &[255, 255, 255, 255])
                .unwrap_err()
                .contains("exceeds")
        );
    }
}
