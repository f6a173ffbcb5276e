//! Signing keys, one JSON file each under `<data-dir>/keys/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use stele_host_api::Address;
use stele_types::format_address;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    name: String,
    address: String,
    secret_key: String,
}

fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if !valid {
        bail!("key name `{name}` must be 1 to 64 letters, digits, `-` or `_`");
    }
    Ok(())
}

/// The address of a signing key.
pub fn address_of(key: &SigningKey) -> Address {
    Address(key.verifying_key().to_bytes())
}

/// A fresh key from the operating system's randomness.
pub fn random_key() -> anyhow::Result<SigningKey> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Creates and stores a key; refuses to overwrite one.
pub fn generate(data_dir: &Path, name: &str) -> anyhow::Result<SigningKey> {
    check_name(name)?;
    let dir = keys_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    if path.exists() {
        bail!("a key named `{name}` already exists at {}", path.display());
    }
    let key = random_key()?;
    let file = KeyFile {
        name: name.into(),
        address: format_address(&address_of(&key)),
        secret_key: hex::encode(key.to_bytes()),
    };
    let text = serde_json::to_string_pretty(&file)?;
    write_private(&path, text.as_bytes())?;
    Ok(key)
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Loads a key by name.
pub fn load(data_dir: &Path, name: &str) -> anyhow::Result<SigningKey> {
    check_name(name)?;
    let path = keys_dir(data_dir).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no key `{name}` at {} (create it with `stele keys generate {name}`)",
            path.display()
        )
    })?;
    let file: KeyFile =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let secret: [u8; 32] = hex::decode(&file.secret_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("{}: secret_key is not 32 bytes of hex", path.display()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Every key: `(name, address)`, sorted by name.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let dir = keys_dir(data_dir);
    let mut keys = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(error) => return Err(error).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let file: KeyFile = serde_json::from_str(&std::fs::read_to_string(&path)?)
                .with_context(|| format!("reading {}", path.display()))?;
            keys.push((file.name, file.address));
        }
    }
    keys.sort();
    Ok(keys)
}

pub fn generate_command(data_dir: &Path, name: &str, json: bool) -> anyhow::Result<()> {
    let key = generate(data_dir, name)?;
    let address = format_address(&address_of(&key));
    crate::output::print(
        json,
        &serde_json::json!({"name": name, "address": address}),
        || format!("generated key `{name}`: {address}"),
    );
    Ok(())
}

pub fn list_command(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let keys = list(data_dir)?;
    let value = serde_json::json!(
        keys.iter()
            .map(|(name, address)| serde_json::json!({"name": name, "address": address}))
            .collect::<Vec<_>>()
    );
    crate::output::print(json, &value, || {
        if keys.is_empty() {
            return format!("no keys in {}", keys_dir(data_dir).display());
        }
        keys.iter()
            .map(|(name, address)| format!("{name:<16} {address}"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

pub fn show_command(data_dir: &Path, name: &str, json: bool) -> anyhow::Result<()> {
    let key = load(data_dir, name)?;
    let address = format_address(&address_of(&key));
    crate::output::print(
        json,
        &serde_json::json!({"name": name, "address": address, "public_key": hex::encode(key.verifying_key().to_bytes())}),
        || address.clone(),
    );
    Ok(())
}
