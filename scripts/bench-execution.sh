#!/usr/bin/env bash
# Runs the execution-engine benchmarks (kv + frontends + dispatcher) RUNS times
# (default 3) and prints the median of each figure and the same-run ratios:
# 2 workers vs 1 worker per workload, and the dispatcher with 1 worker vs the bare
# serial engine (the dispatcher's own overhead).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
baselines=()
for run in $(seq 1 "$runs"); do
    echo "== run $run of $runs" >&2
    cargo bench -p stele-dispatcher --bench execution -- --noplot --warm-up-time 1 \
        --measurement-time 3 --save-baseline "execution-run$run" >&2
    baselines+=("execution-run$run")
done
list=$(IFS=,; echo "${baselines[*]}")
ratios=()
for workload in smallbank_100k_accounts smallbank_100_accounts smallbank_1_account logging_record; do
    ratios+=(--ratio "$workload, 2 workers vs 1=$workload/workers/2:$workload/workers/1")
    ratios+=(--ratio "$workload, 1 worker vs serial engine=$workload/workers/1:$workload/serial_engine")
done
cargo run -q -p xtask -- criterion-report --baselines "$list" "${ratios[@]}"
