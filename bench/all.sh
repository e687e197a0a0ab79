#!/usr/bin/env bash
# Regenerates every benchmark result in bench/results/ (JSON arrays of
# `stele bench --json` reports, RUNS runs of each point, runs of a sweep
# interleaved so that machine noise spreads over every point) and then the
# plots and median tables (`cargo run -p xtask -- plots`).
#
#   bench/all.sh                      # everything, ~18 min on 2 cores
#   ONLY="clients latency" bench/all.sh
#   RUNS=1 DURATION_S=2 bench/all.sh  # a quick smoke run
#
# Sections (ONLY, default all of them, in this order):
#   single   single node, every workload at CLIENTS clients   -> single.json
#   clients  single node, log writes, clients 1..128          -> clients.json
#   latency  single node, log writes, open loop at fractions of the peak
#            the clients section measured (RATES overrides)   -> latency.json
#   workers  SmallBank (100k and 100 accounts) through the service with
#            [batching] workers = 1 and 2, a fresh node each  -> workers.json
#   cluster  a 3-node Stele cluster, every workload at CLIENTS clients at
#            the leader, against the leader's ceiling         -> cluster3.json
#   etcd     bench/etcd3.sh: 3-node Stele vs 3-node etcd      -> etcd3.json
#   plots    the PNGs and bench/results/summary.md
#
# Settings (environment): RUNS (3), DURATION_S (5, per phase: a run is twice
# that), CLIENTS (64), THREADS (1), CLIENT_COUNTS (1 2 4 8 16 32 64 128 256),
# LATENCY_CLIENTS (128), FRACTIONS (0.1 0.25 0.5 0.75 0.9 1.0 1.1), RATES
# (absolute open-loop rates instead of FRACTIONS), PORT (18543),
# CLUSTER_BASE_PORT (18641: the cluster's nodes on 18641..18643), BENCH_DIR,
# KEEP=1, RESULTS (bench/results). Every run is bounded (run_bench's
# timeout); a run that fails is reported and left out, not fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RUNS=${RUNS:-3}
DURATION_S=${DURATION_S:-5}
CLIENTS=${CLIENTS:-64}
THREADS=${THREADS:-1}
CLIENT_COUNTS=${CLIENT_COUNTS:-1 2 4 8 16 32 64 128 256}
LATENCY_CLIENTS=${LATENCY_CLIENTS:-128}
FRACTIONS=${FRACTIONS:-0.1 0.25 0.5 0.75 0.9 1.0 1.1}
PORT=${PORT:-18543}
CLUSTER_BASE_PORT=${CLUSTER_BASE_PORT:-18641}
RESULTS=${RESULTS:-bench/results}
ONLY=${ONLY:-single clients latency workers cluster etcd plots}
WORKLOADS="log kv-put smallbank-100k smallbank-100 receipt"
STELE_START_ARGS=()
CLUSTER_INIT_ARGS=()
JSON=1

ensure_command jq jq
ensure_command curl curl
build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-all.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"
mkdir -p "$RESULTS"
started=$(date +%s)
echo "bench/all.sh: $(machine_line); RUNS=$RUNS, ${DURATION_S} s phases" >&2

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

# bench_into FILE LABEL ARGS...: one run, its JSON line appended to FILE; a
# failed run is reported and skipped.
bench_into() {
    local file=$1 label=$2
    shift 2
    if ! run_bench "$label" "$@" >>"$file.tmp"; then
        echo "warning: run '$label' failed; left out" >&2
    fi
    # Keep only complete JSON lines (a failed run may leave a partial one).
    grep '^{' "$file.tmp" >>"$file" || true
    rm -f "$file.tmp"
}

# workload_args NAME: `stele bench` flags of a workload of WORKLOADS, in args.
workload_args() {
    case $1 in
        smallbank-100k) args=(--workload smallbank --accounts 100000) ;;
        smallbank-100) args=(--workload smallbank --accounts 100) ;;
        *) args=(--workload "$1") ;;
    esac
}

# every_workload OUT WHAT ARGS...: RUNS interleaved runs of every workload of
# WORKLOADS, with ARGS (where and how) and labelled WHAT, into OUT.
every_workload() {
    local out=$1 what=$2 run workload
    shift 2
    : >"$out"
    for run in $(seq "$RUNS"); do
        for workload in $WORKLOADS; do
            workload_args "$workload"
            bench_into "$out" "$what $workload, run $run/$RUNS" "$@" "${args[@]}"
        done
    done
}

# A fresh single node named NAME on PORT; extra `stele start` flags after.
single_node() {
    local name=$1
    shift
    start_node "$name" --data-dir "$WORK/$name" --listen "127.0.0.1:$PORT" "$@"
    wait_listening "$name" "${NODE_PIDS[$((${#NODE_PIDS[@]} - 1))]}"
    node_args=(--url "https://127.0.0.1:$PORT" --data-dir "$WORK/$name")
}

if wanted single || wanted clients || wanted latency; then
    single_node node
fi

if wanted single; then
    every_workload "$WORK/single.jsonl" single "${node_args[@]}"
    collect_runs "$RESULTS/single.json" "$WORK/single.jsonl"
fi

if wanted clients; then
    out=$WORK/clients.jsonl
    : >"$out"
    for run in $(seq "$RUNS"); do
        for clients in $CLIENT_COUNTS; do
            CLIENTS=$clients bench_into "$out" "log, $clients clients, run $run/$RUNS" \
                "${node_args[@]}" --workload log
        done
    done
    collect_runs "$RESULTS/clients.json" "$out"
fi

if wanted latency; then
    if [ -z "${RATES:-}" ]; then
        # The closed-loop peak: the best median over client counts.
        peak=$(jq '[group_by(.settings.clients)[] | [.[].result.committed_per_s] | sort | .[(length - 1) / 2 | floor]] | max // empty' \
            "$RESULTS/clients.json" 2>/dev/null || true)
        if [ -z "$peak" ]; then
            echo "error: no $RESULTS/clients.json to take the peak from; run the clients section or set RATES" >&2
            exit 1
        fi
        RATES=$(for f in $FRACTIONS; do jq -n "$peak * $f | round"; done | xargs)
        echo "latency: closed-loop peak $peak tx/s; offered rates $RATES" >&2
    fi
    out=$WORK/latency.jsonl
    : >"$out"
    for run in $(seq "$RUNS"); do
        for rate in $RATES; do
            CLIENTS=$LATENCY_CLIENTS bench_into "$out" "log at $rate/s, run $run/$RUNS" \
                "${node_args[@]}" --workload log --rate "$rate"
        done
    done
    collect_runs "$RESULTS/latency.json" "$out"
fi

if wanted workers; then
    kill_nodes
    out=$WORK/workers.jsonl
    : >"$out"
    for run in $(seq "$RUNS"); do
        for workers in 1 2; do
            printf '[batching]\nworkers = %s\n' "$workers" >"$WORK/workers$workers.toml"
            rm -rf "$WORK/workers$workers"
            single_node "workers$workers" --config "$WORK/workers$workers.toml"
            for accounts in 100000 100; do
                bench_into "$out" "smallbank $accounts accounts, $workers worker(s), run $run/$RUNS" \
                    "${node_args[@]}" --workload smallbank --accounts "$accounts" --label "workers=$workers"
            done
            kill_nodes
        done
    done
    collect_runs "$RESULTS/workers.json" "$out"
fi

if wanted cluster; then
    kill_nodes
    start_stele_cluster 3 "$CLUSTER_BASE_PORT"
    every_workload "$WORK/cluster3.jsonl" "3 nodes," "${CLUSTER_ARGS[@]}"
    collect_runs "$RESULTS/cluster3.json" "$WORK/cluster3.jsonl"
fi

if wanted etcd; then
    kill_nodes
    RUNS=$RUNS DURATION_S=$DURATION_S CLIENTS=$CLIENTS THREADS=$THREADS \
        OUT=$RESULTS/etcd3.json bench/etcd3.sh
fi

if wanted plots; then
    cargo run -q -p xtask -- plots --results "$RESULTS" --out "$RESULTS"
fi
echo "bench/all.sh: done in $(($(date +%s) - started)) s" >&2
