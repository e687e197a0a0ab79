#!/usr/bin/env bash
# Runs the ledger benchmarks RUNS times (default 3) and prints the median of each
# figure and the same-run ratios against their ceilings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-runs.sh
bench_runs stele-ledger ledger ledger
list=$baselines
cargo run -q -p xtask -- criterion-report --baselines "$list" \
    --ratio "append+fdatasync of 1,000 txs vs raw write+fdatasync of the same bytes=append_sync/stele:append_sync/raw_write_fdatasync_ceiling" \
    --ratio "verify vs the hashing alone (1 thread)=verify_100k/stele:verify_100k/hashing_ceiling"
