#!/usr/bin/env bash
# 3-node cluster on loopback: committed tx/s and commit latency at the leader,
# each against the leader's ceiling (GET /node/commit, same clients and
# connections) measured in the same run. A commit is fdatasync'd on a majority.
#
#   bench/cluster3.sh                    # 10 s per phase, 64 clients
#   DURATION_S=5 WORKLOADS="log" bench/cluster3.sh
#
# Settings (environment): DURATION_S (10), CLIENTS (64), THREADS (1),
# BASE_PORT (19441: nodes on 19441..19443), WORKLOADS (log kv-put
# smallbank-100k), BENCH_DIR, KEEP=1, JSON=1 (as bench/single.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION_S=${DURATION_S:-10}
CLIENTS=${CLIENTS:-64}
THREADS=${THREADS:-1}
BASE_PORT=${BASE_PORT:-19441}
WORKLOADS=${WORKLOADS:-log kv-put smallbank-100k}
NODES=3
# How long the cluster may take to agree on a leader, in tenths of a second.
LEADER_WAIT_TENTHS=600

build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-cluster.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"

"$STELE" cluster-init --dir "$WORK/cluster" --nodes "$NODES" --base-port "$BASE_PORT" >/dev/null
for i in $(seq "$NODES"); do
    start_node "node$i" --config "$WORK/cluster/node$i.toml"
done
for i in $(seq "$NODES"); do
    wait_listening "node$i" "${NODE_PIDS[$((i - 1))]}"
done

# Every node's certificate: the leader may change, and clients follow it.
cacerts=()
for i in $(seq "$NODES"); do
    cacerts+=(--cacert "$WORK/cluster/node$i/tls/node.crt")
done

# The leader, as node 1 sees it: GET /node/state names it once elected.
leader=
for _ in $(seq "$LEADER_WAIT_TENTHS"); do
    state=$(curl -sS --max-time 2 --cacert "$WORK/cluster/node1/tls/node.crt" \
        "https://127.0.0.1:$BASE_PORT/node/state" 2>/dev/null || true)
    leader=$(printf '%s' "$state" | grep -o '"leader_address":"[^"]*"' | cut -d'"' -f4 || true)
    if [ -n "$leader" ]; then break; fi
    sleep 0.1
done
if [ -z "$leader" ]; then
    echo "error: no leader within $((LEADER_WAIT_TENTHS / 10)) s; last state: ${state:-none}" >&2
    exit 1
fi
echo "cluster up: $NODES nodes on 127.0.0.1:$BASE_PORT.., leader $leader; $(nproc) cores" >&2

common=(--url "https://$leader" "${cacerts[@]}" --token-file "$WORK/cluster/node1/user.token")
for workload in $WORKLOADS; do
    case $workload in
        log | kv-put | receipt) run_bench "$workload" "${common[@]}" --workload "$workload" ;;
        smallbank-100k) run_bench "$workload (uncontended)" "${common[@]}" --workload smallbank --accounts 100000 ;;
        smallbank-100) run_bench "$workload (contended)" "${common[@]}" --workload smallbank --accounts 100 ;;
        *) echo "unknown workload $workload" >&2; exit 2 ;;
    esac
done
