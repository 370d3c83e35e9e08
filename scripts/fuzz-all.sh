#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer (cargo fuzz) for a fixed time each,
# starting from the committed seeds (`fuzz/corpus/<target>`) and keeping what
# it finds in `fuzz/corpus-local/<target>` (not committed; minimised after each
# run, so the next run starts warm). Prints one line per target with its
# run count, and stops at the first crash (the input is left in
# `fuzz/artifacts/<target>/`; turn it into a regression test).
#
#   bash scripts/fuzz-all.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 600 s per target, every target. Needs `cargo install cargo-fuzz`.
# cargo fuzz passes nightly-only flags (the sanitizer); this machine has only
# a stable toolchain, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

export RUSTC_BOOTSTRAP=1
cargo fuzz build --release >/dev/null

log_dir=$(mktemp -d)
for target in "${targets[@]}"; do
    seeds=corpus/$target
    corpus=corpus-local/$target
    mkdir -p "$seeds" "$corpus"
    # Whole blocks (32,790 bytes plus two keys) must fit in one input, so
    # the block decoders see real blocks, not only short prefixes.
    cargo fuzz run --release "$target" "$corpus" "$seeds" -- \
        -max_len=40000 -max_total_time="$seconds" -print_final_stats=1 \
        >"$log_dir/$target.log" 2>&1 || {
        echo "$target: CRASH, see fuzz/artifacts/$target/ and $log_dir/$target.log"
        tail -40 "$log_dir/$target.log"
        exit 1
    }
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log_dir/$target.log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log_dir/$target.log" | tail -1 | grep -o '[0-9]*' || echo '?')
    # Keep only inputs that add coverage.
    cargo fuzz cmin --release "$target" "$corpus" -- -max_len=40000 >/dev/null 2>&1 || true
    echo "$target: ${seconds}s, $runs runs, coverage $cov, corpus $(ls "$corpus" | wc -l) inputs"
done
rm -rf "$log_dir"
