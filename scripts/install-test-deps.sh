#!/usr/bin/env bash
# Everything the test suite needs beyond a Rust toolchain (rustup). Safe to
# run twice. The end-to-end tests use the warren binary they build, real
# loopback sockets, the C compiler the crates' build scripts need,
# headless Chromium (the gateway test browses an inserted site with it), and
# pyfreenet3, Freenet's Python FCP client, in a virtualenv (the FCP tests run
# its API and its fcpput/fcpget against real nodes).
set -euo pipefail
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
# Debian packages: a C++ compiler (libfuzzer-sys, for the fuzz targets,
# compiles libFuzzer's C++ sources) and Chromium (the gateway test).
need_apt=()
command -v c++ >/dev/null || need_apt+=(g++)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need_apt+=(chromium)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "the tests need: ${need_apt[*]} (Debian: sudo apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
fi

# pyfreenet3 from PyPI, pinned, in the virtualenv the FCP tests look for
# (tests/e2e_fcp.rs: target/fcp-venv). Reinstalled when the pin changes.
PYFREENET_VERSION=0.7.0
venv=target/fcp-venv
cd "$(dirname "$0")/.."
if ! "$venv/bin/python" -c 'import fcp3' 2>/dev/null \
    || [ "$(cat "$venv/.pyfreenet-version" 2>/dev/null)" != "$PYFREENET_VERSION" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pyfreenet3==$PYFREENET_VERSION"
    echo "$PYFREENET_VERSION" >"$venv/.pyfreenet-version"
fi
