//! Building contract crates to wasm, and checking them against the
//! runtime's limits.
//!
//! Contracts are the workspace packages under `contracts/`. Each is built
//! on its own (`cargo build --profile contract --target
//! wasm32-unknown-unknown -p <package>`, so the `library` features other
//! contracts enable on it never leak into its own build), in a target
//! directory of its own (`<target>/stele-contracts`), so that a build
//! started from inside `cargo test` never waits on the outer build's lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Why a contract could not be built or loaded.
#[derive(Debug)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// The workspace as `cargo metadata` describes it.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Root directory.
    pub root: PathBuf,
    /// Where contract builds go.
    pub target_dir: PathBuf,
    /// Contract packages (under `contracts/`), sorted.
    pub contracts: Vec<String>,
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Reads the workspace layout once per process.
pub fn workspace() -> Result<Workspace, BuildError> {
    static WORKSPACE: OnceLock<Result<Workspace, String>> = OnceLock::new();
    WORKSPACE
        .get_or_init(|| {
            let output = cargo()
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .map_err(|error| format!("cannot run cargo metadata: {error}"))?;
            if !output.status.success() {
                return Err(format!(
                    "cargo metadata failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
                .map_err(|error| format!("cargo metadata output: {error}"))?;
            let root = PathBuf::from(metadata["workspace_root"].as_str().unwrap_or_default());
            let target_dir =
                PathBuf::from(metadata["target_directory"].as_str().unwrap_or_default())
                    .join("stele-contracts");
            let contracts_dir = root.join("contracts");
            let mut contracts: Vec<String> = metadata["packages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|package| {
                    Path::new(package["manifest_path"].as_str().unwrap_or_default())
                        .starts_with(&contracts_dir)
                })
                .filter_map(|package| package["name"].as_str().map(String::from))
                .collect();
            contracts.sort();
            Ok(Workspace {
                root,
                target_dir,
                contracts,
            })
        })
        .clone()
        .map_err(BuildError)
}

/// Builds `package` to wasm with the contract profile; returns the path of
/// the `.wasm` file.
pub fn build(package: &str) -> Result<PathBuf, BuildError> {
    build_with_features(package, &[])
}

/// Builds `package` with extra cargo `features`, in a target directory of
/// its own per feature set.
pub fn build_with_features(package: &str, features: &[&str]) -> Result<PathBuf, BuildError> {
    let workspace = workspace()?;
    let target_dir = match features {
        [] => workspace.target_dir.clone(),
        _ => workspace
            .target_dir
            .with_file_name(format!("stele-contracts-{}", features.join("-"))),
    };
    let output = cargo()
        .args([
            "build",
            "--quiet",
            "--profile",
            "contract",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            package,
        ])
        .args(features.iter().flat_map(|feature| ["--features", feature]))
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(&workspace.root)
        .output()
        .map_err(|error| BuildError(format!("cannot run cargo to build {package}: {error}")))?;
    if !output.status.success() {
        return Err(BuildError(format!(
            "building {package} to wasm failed (is the wasm32-unknown-unknown target installed? scripts/setup.sh adds it):\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let file = format!("{}.wasm", package.replace('-', "_"));
    Ok(target_dir
        .join("wasm32-unknown-unknown")
        .join("contract")
        .join(file))
}

/// The wasm of contract `package`, built once per process.
pub fn contract_wasm(package: &str) -> Result<Vec<u8>, BuildError> {
    contract_wasm_with_features(package, &[])
}

/// The wasm of contract `package` built with `features`, once per process.
pub fn contract_wasm_with_features(
    package: &str,
    features: &[&str],
) -> Result<Vec<u8>, BuildError> {
    static BUILT: OnceLock<Mutex<BTreeMap<(String, Vec<String>), Vec<u8>>>> = OnceLock::new();
    let key = (
        package.to_string(),
        features.iter().map(|feature| feature.to_string()).collect(),
    );
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(wasm) = built.get(&key) {
        return Ok(wasm.clone());
    }
    let path = build_with_features(package, features)?;
    let wasm = std::fs::read(&path)
        .map_err(|error| BuildError(format!("cannot read {}: {error}", path.display())))?;
    built.insert(key, wasm.clone());
    Ok(wasm)
}
