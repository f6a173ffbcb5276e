#!/usr/bin/env bash
# Installs what building and testing Stele needs on a fresh Debian machine
# with a Rust toolchain: the wasm32-unknown-unknown target (contracts) and
# libclang-dev (RocksDB's bindgen). Idempotent: does nothing when present.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi

if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "install ok installed"; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libclang-dev
fi
