#!/usr/bin/env bash
# Runs every test of the workspace (release mode: the engine compiles and
# runs contracts far faster, and the benchmarks share its build), then
# checks that the benchmarks still build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --release --locked
# Every contract builds to wasm and passes the runtime's limits; prints sizes.
cargo run --release --locked -p stele-testkit --bin build-contracts
cargo bench --workspace --locked --no-run
