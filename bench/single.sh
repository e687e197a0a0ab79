#!/usr/bin/env bash
# Single node: committed tx/s and commit latency of each workload over HTTPS,
# each against the same node's ceiling (GET /node/commit, same clients and
# connections) measured in the same run. Every commit is fdatasync'd.
#
#   bench/single.sh                      # 10 s per phase, 64 clients
#   DURATION_S=5 CLIENTS=64 bench/single.sh
#   JSON=1 bench/single.sh > results.jsonl
#
# Settings (environment): DURATION_S (10), CLIENTS (64), THREADS (client
# runtime threads, 1), PORT (18443), WORKLOADS (see below), BENCH_DIR (parent
# of the temporary data folder; it must be on a disk, not tmpfs), KEEP=1 keeps
# the data folder and node log. Loopback only; the node is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION_S=${DURATION_S:-10}
CLIENTS=${CLIENTS:-64}
THREADS=${THREADS:-1}
PORT=${PORT:-18443}
WORKLOADS=${WORKLOADS:-log kv-put smallbank-100k smallbank-100 receipt}

build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-bench.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"

start_node node --data-dir "$WORK/node" --listen "127.0.0.1:$PORT"
wait_listening node "${NODE_PIDS[0]}"
echo "node up: https://127.0.0.1:$PORT, data in $WORK/node; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2

common=(--url "https://127.0.0.1:$PORT" --data-dir "$WORK/node")
# The nodes' CPU (and the client's) per committed write, from /proc.
for pid in "${NODE_PIDS[@]}"; do common+=(--cpu-pid "$pid"); done
for workload in $WORKLOADS; do
    case $workload in
        log | kv-put | receipt) run_bench "$workload" "${common[@]}" --workload "$workload" ;;
        smallbank-100k) run_bench "$workload (uncontended)" "${common[@]}" --workload smallbank --accounts 100000 ;;
        smallbank-100) run_bench "$workload (contended)" "${common[@]}" --workload smallbank --accounts 100 ;;
        *) echo "unknown workload $workload" >&2; exit 2 ;;
    esac
done
