#!/usr/bin/env bash
# Catch-up speed of a new node: a 3-node cluster on loopback (release build) is
# loaded with logging writes for a while, then a 4th node (laid out with
# `cluster-init --joining 1`) is added with POST /admin/members on the leader.
# The clock runs from that call until node 4 itself reports (GET /node/state)
# the last transaction committed before the call as committed: the call alone
# returns once node 4 is within a few entries of the leader and a voter, and
# openraft's default notion of "close" was 5,000 entries. The script prints how
# many transactions node 4 caught up with, how long it took, and the rate.
#
# Two ways to catch up, chosen by MODE:
#   log       the leader never compacts its log (snapshot_entries = 0): the new
#             node replicates the whole log, re-executing and checking every batch;
#   snapshot  the leader compacts every 1,000 entries: the new node receives a
#             snapshot transfer (the KV state and the ledger up to it, checked as
#             installed, not re-executed), then the log after it.
#   resume    as snapshot, with `snapshot_transfer = "resume"`: the new node
#             receives the KV state and the tree's frontier, not the ledger,
#             and its ledger starts at the snapshot.
#
#   scripts/measure-catchup.sh [load seconds=20] [runs=3] [mode=log|snapshot|resume]
#
# WORKLOAD=smallbank loads the contended SmallBank mix over 100 accounts
# instead of logging writes: the state stays ~200 keys however long the
# ledger (what separates O(history) from O(state)); CLIENTS (64).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
load_s=${1:-20}
runs=${2:-3}
mode=${3:-log}
STELE_START_ARGS=()
CLUSTER_INIT_ARGS=(--joining 1)
case "$mode" in
  log) CLUSTER_SETTINGS="snapshot_entries = 0" ;;
  snapshot) CLUSTER_SETTINGS=$'snapshot_entries = 1000\nlog_entries_kept = 20' ;;
  resume) CLUSTER_SETTINGS=$'snapshot_entries = 1000\nlog_entries_kept = 20\nsnapshot_transfer = "resume"' ;;
  *) echo "mode must be log, snapshot or resume" >&2; exit 2 ;;
esac
case "${WORKLOAD:-log}" in
  log) WORKLOAD_ARGS=(--workload log) ;;
  smallbank) WORKLOAD_ARGS=(--workload smallbank --accounts 100) ;;
  *) echo "WORKLOAD must be log or smallbank" >&2; exit 2 ;;
esac
build_stele
trap stop_nodes EXIT
now_ms() { date +%s%3N; }

rates=()
for run in $(seq "$runs"); do
  WORK=$(mktemp -d)
  base=$((20000 + RANDOM % 12000))
  start_stele_cluster 3 "$base"
  body=$(sed -n 's/^node 4 joins with: POST \/admin\/members //p' "$WORK/cluster-init.out")
  token=$(cat "$WORK/cluster/admin.token")
  left=$load_s
  while ((left > 0)); do
    # `stele bench` runs 600 s at most: longer loads go in rounds.
    round=$((left < 600 ? left : 600))
    "$STELE" bench "${CLUSTER_ARGS[@]}" "${WORKLOAD_ARGS[@]}" --clients "${CLIENTS:-64}" \
      --duration-s "$round" >/dev/null 2>&1
    left=$((left - round))
  done
  seqno=$(curl -sk "https://$LEADER/node/state" | sed -n 's/.*"ledger_seqno":\([0-9][0-9]*\).*/\1/p')
  start_node node4 --config "$WORK/cluster/node4.toml"
  wait_listening node4 "${NODE_PIDS[3]}"
  t0=$(now_ms)
  curl -skf -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
    --data "$body" "https://$LEADER/admin/members" >/dev/null
  node4=$(printf '%s' "$body" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p')
  for _ in $(seq 60000); do
    caught=$(curl -sk "https://$node4/node/state" | sed -n 's/.*"last_committed":"[0-9]*\.\([0-9]*\)".*/\1/p')
    if [ -n "$caught" ] && [ "$caught" -ge "$seqno" ]; then break; fi
    sleep 0.005
  done
  ms=$(($(now_ms) - t0))
  installed=$(curl -sk "https://$node4/node/state" | sed -n 's/.*"snapshots_installed":\([0-9]*\).*/\1/p')
  rate=$((seqno * 1000 / (ms > 0 ? ms : 1)))
  rates+=("$rate")
  echo "run $run: node 4 caught up with $seqno transactions in $ms ms: $rate tx/s (snapshots installed: $installed)"
  stop_nodes
done
sorted=($(printf '%s\n' "${rates[@]}" | sort -n))
echo "median catch-up ($mode): ${sorted[$((runs / 2))]} tx/s over $runs runs"
