//! Builds every contract of a workspace to wasm with the contract settings,
//! validates each against the runtime's limits and prints a size table.
//! Exits with status 1 if any contract fails to build or validate.
//!
//! `cargo run --release -p stele-testkit --bin build-contracts [-- <dir>]`:
//! the workspace around `<dir>` (default: the current directory).

use stele_runtime::{Runtime, RuntimeConfig};
use stele_testkit::build;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ".".into());
    let workspace = build::workspace_at(&dir).unwrap_or_else(|error| {
        eprintln!("{error}");
        std::process::exit(1)
    });
    let runtime = Runtime::new(RuntimeConfig::default()).expect("the runtime starts");
    let limit = stele_host_api::limits::CODE_BYTES_MAX;
    println!(
        "{:<18} {:>9} {:>8} {:>8}  {}",
        "contract", "bytes", "KiB", "methods", "status"
    );
    let mut failed = false;
    for package in &workspace.contracts {
        let (size, methods, status) =
            match build::build_in(&workspace, package, &[]).map(|path| std::fs::read(&path)) {
                Ok(Ok(wasm)) => match runtime.validate(&wasm) {
                    Ok(info) => (wasm.len(), info.methods.len().to_string(), "ok".to_string()),
                    Err(error) => {
                        failed = true;
                        (wasm.len(), "-".into(), format!("invalid: {error}"))
                    }
                },
                Ok(Err(error)) => {
                    failed = true;
                    (0, "-".into(), format!("unreadable: {error}"))
                }
                Err(error) => {
                    failed = true;
                    (0, "-".into(), format!("build failed: {error}"))
                }
            };
        println!(
            "{package:<18} {size:>9} {:>8.1} {methods:>8}  {status}",
            size as f64 / 1024.0
        );
    }
    println!(
        "(limit: CODE_BYTES_MAX = {limit} bytes; wasm in {})",
        workspace
            .target_dir
            .join("wasm32-unknown-unknown/release")
            .display()
    );
    if failed {
        std::process::exit(1);
    }
}
