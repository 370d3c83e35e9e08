#!/usr/bin/env bash
# Everything the test suite needs beyond a Rust toolchain. Safe to run twice.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo not found: install Rust from rustup first" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
