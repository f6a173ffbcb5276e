#!/usr/bin/env bash
# The main job: deploys a contract into the runtime, calls it and prints its
# return value, events and gas.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo run --release --locked -p stele-examples --bin runtime-quickstart
