#!/usr/bin/env bash
# Longer soak of the state store's crash test: SIGKILL a committing child
# process many times and check every restart (hostile item 22).
# Usage: scripts/state-crash-soak.sh [iterations, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
STELE_CRASH_ITERATIONS="${1:-1000}" cargo test --release --locked -p stele-state --test all sigkill -- --nocapture
