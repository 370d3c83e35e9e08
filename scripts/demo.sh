#!/usr/bin/env bash
# The main job: a local network of ten real node processes on this machine;
# a real document inserted at one node and fetched at a node several hops
# away; the key, hops, time and throughput printed; everything stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --locked -p warren
exec target/release/warren demo "$@"
