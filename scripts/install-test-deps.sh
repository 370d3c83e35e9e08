#!/usr/bin/env bash
# Everything the test suite needs beyond a Rust toolchain (rustup). Safe to
# run twice. The end-to-end tests use only the warren binary they build, real
# loopback sockets and the C compiler the crates' build scripts need.
set -euo pipefail
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
if ! command -v c++ >/dev/null; then
    # libfuzzer-sys (the fuzz targets) compiles libFuzzer's C++ sources.
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq g++
    else
        echo "a C++ compiler is needed for the fuzz targets: apt-get install g++" >&2
        exit 1
    fi
fi
