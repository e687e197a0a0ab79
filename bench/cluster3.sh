#!/usr/bin/env bash
# 3-node cluster on loopback: committed tx/s and commit latency at the leader,
# each against the leader's ceiling (GET /node/commit, same clients and
# connections) measured in the same run. A commit is fdatasync'd on a majority.
# With MODE=bft (and NODES=4): a BFT cluster (P11), at the proposer; a commit
# is then fdatasync'd in the ledger of the validators holding > 2/3 of the
# power, after two voting phases whose votes are fdatasync'd first.
#
#   bench/cluster3.sh                    # 10 s per phase, 64 clients
#   DURATION_S=5 WORKLOADS="log" bench/cluster3.sh
#
# Settings (environment): DURATION_S (10), CLIENTS (64), THREADS (1),
# BASE_PORT (19441: nodes on 19441..19443), WORKLOADS (log kv-put
# smallbank-100k), NODES (3), MODE (raft; or bft), BENCH_DIR, KEEP=1, JSON=1
# (as bench/single.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION_S=${DURATION_S:-10}
CLIENTS=${CLIENTS:-64}
THREADS=${THREADS:-1}
BASE_PORT=${BASE_PORT:-19441}
WORKLOADS=${WORKLOADS:-log kv-put smallbank-100k}
NODES=${NODES:-3}
MODE=${MODE:-raft}
CLUSTER_INIT_ARGS=(--mode "$MODE")

build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-cluster.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"

STELE_START_ARGS=()
start_stele_cluster "$NODES" "$BASE_PORT"
echo "$(machine_line)" >&2

common=("${CLUSTER_ARGS[@]}")
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
