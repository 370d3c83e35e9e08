#!/usr/bin/env bash
# The main job: encode a real document into a Warren block, then verify and decode it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p warren-crypto --example roundtrip -- README.md
