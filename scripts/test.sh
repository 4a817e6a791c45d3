#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs every berth test: unit tests and the
# integration tests that run real containers. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "${0##*/}: run as root (the integration tests create real containers)" >&2; exit 1; }
bash scripts/install-deps.sh
if cargo fmt --version >/dev/null 2>&1; then
	cargo fmt --all -- --check
fi
if cargo clippy --version >/dev/null 2>&1; then
	cargo clippy --workspace --all-targets --locked -- -D warnings
fi
# The integration tests run the real binaries: cargo test alone does not build them.
cargo build --workspace --locked
cargo test --workspace --locked
