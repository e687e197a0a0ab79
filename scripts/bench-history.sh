#!/usr/bin/env bash
# Runs the history benchmarks RUNS times (default 3) and prints the median of
# each figure and the same-run ratios against their ceilings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-runs.sh
bench_runs stele-history merkle history
list=$baselines
g=append_root_every_1000
cargo run -q -p xtask -- criterion-report --baselines "$list" \
    --ratio "append, 1 thread, vs raw SHA-256 on 1 thread=$g/stele/1_threads:$g/sha256_ceiling/1_threads" \
    --ratio "append, 2 threads, vs raw SHA-256 on 2 threads=$g/stele/2_threads:$g/sha256_ceiling/2_threads" \
    --ratio "append, 2 threads vs 1 thread=$g/stele/2_threads:$g/stele/1_threads" \
    --ratio "full root of 1M leaves, 2 threads vs 1=full_root_1m/stele/2_threads:full_root_1m/stele/1_threads"
