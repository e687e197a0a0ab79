#!/usr/bin/env bash
# Runs the execution-engine benchmarks (kv + frontends + dispatcher) RUNS times
# (default 3) and prints the median of each figure and the same-run ratios:
# 2 workers vs 1 worker per workload, and the dispatcher with 1 worker vs the bare
# serial engine (the dispatcher's own overhead).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-runs.sh
bench_runs stele-dispatcher execution execution
list=$baselines
ratios=()
for workload in smallbank_100k_accounts smallbank_100_accounts smallbank_1_account logging_record; do
    ratios+=(--ratio "$workload, 2 workers vs 1=$workload/workers/2:$workload/workers/1")
    ratios+=(--ratio "$workload, 1 worker vs serial engine=$workload/workers/1:$workload/serial_engine")
done
cargo run -q -p xtask -- criterion-report --baselines "$list" "${ratios[@]}"
