#!/usr/bin/env bash
# Everything the test suite needs beyond a Rust toolchain (rustup). Safe to
# run twice. The end-to-end tests use the warren binary they build, real
# loopback sockets, the C compiler the crates' build scripts need,
# headless Chromium (the gateway test browses an inserted site with it), and
# Python packages in one virtualenv, among them pyfreenet3, Freenet's FCP
# client (the FCP tests run its API and its fcpput/fcpget against real nodes).
set -euo pipefail
# The one Python virtualenv of the tests (packages: scripts/test-requirements.txt).
# At the repository root rather than in target/, which `cargo clean` deletes.
TEST_VENV="${TEST_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-test}"
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
# The Rust book, a real multi-page site the gateway test opens in Chromium.
if [ ! -f "$(rustc --print sysroot)/share/doc/rust/html/book/index.html" ]; then
    rustup component add rust-docs
fi
# Debian packages: a C++ compiler (libfuzzer-sys, for the fuzz targets,
# compiles libFuzzer's C++ sources) and Chromium (the gateway test).
need_apt=()
command -v c++ >/dev/null || need_apt+=(g++)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need_apt+=(chromium)
# Python 3 with venv (Debian ships `venv` without ensurepip in python3-venv).
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "the tests need: ${need_apt[*]} (Debian: sudo apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
fi
# The tests' Python packages, pinned, in their own virtualenv.
if [ ! -x "$TEST_VENV/bin/python" ]; then
    python3 -m venv "$TEST_VENV"
fi
"$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r "$(dirname "$0")/test-requirements.txt"
