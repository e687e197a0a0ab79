# Sourced by scripts/bench-*.sh. `bench_runs <package> <bench> <prefix>` runs one
# criterion bench RUNS times (default 3), each saved as baseline <prefix>-runN,
# and sets `baselines` to the comma-separated list for `xtask criterion-report`.
bench_runs() {
    local package=$1 bench=$2 prefix=$3 runs=${RUNS:-3} names=()
    for run in $(seq 1 "$runs"); do
        echo "== $bench: run $run of $runs" >&2
        cargo bench -p "$package" --bench "$bench" -- --noplot --warm-up-time 1 \
            --measurement-time 3 --save-baseline "$prefix-run$run" >&2
        names+=("$prefix-run$run")
    done
    baselines=$(IFS=,; echo "${names[*]}")
}
