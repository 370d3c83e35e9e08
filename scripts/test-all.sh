#!/usr/bin/env bash
# Installs what the tests need, then runs the whole suite: the protocol
# vectors checked by an independent script, formatting, lints, unit, property,
# end-to-end and socket tests, and a build of the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."
export TEST_VENV="$PWD/.venv-test"
bash scripts/install-test-deps.sh
echo "== free disk space (a clean build needs about 3 GiB)"
df -h . | tail -1
echo "== protocol vectors recomputed from docs/PROTOCOL.md alone (Python)"
"$TEST_VENV/bin/python" scripts/check_vectors.py
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked --quiet
echo "== fuzz targets build on stable"
(cd fuzz && cargo build --locked --quiet)
echo "== all checks passed"
