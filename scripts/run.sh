#!/usr/bin/env bash
# The main job: a one-node dev chain (`stele node start --dev`), JSON-RPC on
# http://127.0.0.1:8600 (and ws://), data in ./.stele. Extra arguments go to
# `stele node start`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked -p stele-cli --bin stele
exec ./target/release/stele node start --dev "$@"
