//! Building contract crates to wasm, and checking them against the
//! runtime's limits.
//!
//! Contracts are the workspace's packages that depend on `stele-sdk` and
//! build a `cdylib`. Each is built on its own (`cargo build --release
//! --target wasm32-unknown-unknown -p <package>`, so the `library` features
//! other contracts enable on it never leak into its own build) with the
//! contract settings below, in a target directory of its own
//! (`<target>/stele-contracts`), so that a build started from inside
//! `cargo test` never waits on the outer build's lock. The settings are
//! passed through the environment, so a contract crate needs no profile of
//! its own:
//!
//! * release, `opt-level = "z"`, fat LTO, one codegen unit, `panic =
//!   "abort"`, stripped, overflow checks on;
//! * a 64 KiB shadow stack instead of Rust's 1 MiB (`-zstack-size`), so a
//!   contract's memory is a few pages that instantiate and reset cheaply.

/// Environment of every contract build.
pub const CONTRACT_BUILD_ENV: &[(&str, &str)] = &[
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
    ("CARGO_PROFILE_RELEASE_LTO", "fat"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
    ("CARGO_PROFILE_RELEASE_STRIP", "true"),
    ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
    ("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true"),
    (
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
        "-C link-arg=-zstack-size=65536",
    ),
];

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
    /// Contract packages (depending on `stele-sdk`, with a `cdylib`), sorted.
    pub contracts: Vec<String>,
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The workspace around the current directory (a test runs in its
/// package's directory), read once per process.
pub fn workspace() -> Result<Workspace, BuildError> {
    static WORKSPACE: OnceLock<Result<Workspace, String>> = OnceLock::new();
    WORKSPACE
        .get_or_init(|| {
            let dir = std::env::current_dir()
                .map_err(|error| format!("no current directory: {error}"))?;
            workspace_at(&dir).map_err(|error| error.0)
        })
        .clone()
        .map_err(BuildError)
}

/// The workspace around `dir`.
pub fn workspace_at(dir: &Path) -> Result<Workspace, BuildError> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .map_err(|error| BuildError(format!("cannot run cargo metadata: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BuildError(format!("cargo metadata failed: {stderr}")));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| BuildError(format!("cargo metadata output: {error}")))?;
    let root = PathBuf::from(metadata["workspace_root"].as_str().unwrap_or_default());
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or_default())
        .join("stele-contracts");
    let mut contracts: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| is_contract(package))
        .filter_map(|package| package["name"].as_str().map(String::from))
        .collect();
    contracts.sort();
    Ok(Workspace {
        root,
        target_dir,
        contracts,
    })
}

fn is_contract(package: &serde_json::Value) -> bool {
    let uses_sdk = package["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|dependency| dependency["name"] == "stele-sdk" && dependency["kind"].is_null());
    let cdylib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|target| {
            target["crate_types"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind == "cdylib")
        });
    uses_sdk && cdylib
}

/// Builds `package` to wasm with the contract settings; returns the path
/// of the `.wasm` file.
pub fn build(package: &str) -> Result<PathBuf, BuildError> {
    build_with_features(package, &[])
}

/// Builds `package` with extra cargo `features`, in a target directory of
/// its own per feature set.
pub fn build_with_features(package: &str, features: &[&str]) -> Result<PathBuf, BuildError> {
    build_in(&workspace()?, package, features)
}

/// Builds `package` of `workspace` with extra cargo `features`.
pub fn build_in(
    workspace: &Workspace,
    package: &str,
    features: &[&str],
) -> Result<PathBuf, BuildError> {
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
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            package,
        ])
        .args(features.iter().flat_map(|feature| ["--features", feature]))
        .envs(CONTRACT_BUILD_ENV.iter().copied())
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
        .join("release")
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
