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
#             and its ledger starts at the snapshot; it then fetches the
#             batches before the snapshot from its peers in the background.
#             The script also times that fetch (until node 4's /node/state
#             names no skipped seqnos), and reports its rate in tx/s and
#             MB/s of ledger against the disk's sequential read speed (dd
#             with O_DIRECT of the leader's largest chunk file).
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
    # `stele bench` runs 600 s at most: longer loads go in rounds (each
    # with a 1 s ceiling phase: only the ledger they fill matters here).
    round=$((left < 600 ? left : 600))
    "$STELE" bench "${CLUSTER_ARGS[@]}" "${WORKLOAD_ARGS[@]}" --clients "${CLIENTS:-64}" \
      --duration-s "$round" --ceiling-s 1 >/dev/null 2>&1
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
  if [ "$mode" = resume ]; then
    skipped=$(curl -sk "https://$node4/node/state" | sed -n 's/.*"ledger_skipped":\[\([0-9]*\),\([0-9]*\)\].*/\2/p')
    ledger4="$WORK/cluster/node4/ledger"
    t1=$(now_ms)
    for _ in $(seq 120000); do
      if ! curl -sk "https://$node4/node/state" | grep -q '"ledger_skipped"'; then break; fi
      sleep 0.005
    done
    fetch_ms=$(($(now_ms) - t1 + ms))
    # The fetched chunks: those that start at or before the last skipped seqno.
    fetched=0
    for f in "$ledger4"/ledger_* "$ledger4"/archive/ledger_*; do
      [ -f "$f" ] || continue
      first=${f##*/ledger_}; first=${first%%[-.]*}
      if [ "$first" -le "${skipped:-0}" ]; then fetched=$((fetched + $(stat -c %s "$f"))); fi
    done
    chunk=$(ls -S "$WORK/cluster/node1/ledger"/ledger_* | head -1)
    disk=$(dd if="$chunk" of=/dev/null bs=1M iflag=direct 2>&1 | sed -n 's/.*, \([0-9.]* [MG]B\/s\)$/\1/p')
    echo "run $run: node 4 fetched ${skipped:-0} skipped transactions ($((fetched / 1000000)) MB of ledger) within $fetch_ms ms of the join: $(( ${skipped:-0} * 1000 / (fetch_ms > 0 ? fetch_ms : 1) )) tx/s, $(( fetched / 1000 / (fetch_ms > 0 ? fetch_ms : 1) )) MB/s; the disk reads a chunk at $disk (dd, O_DIRECT)"
  fi
  stop_nodes
done
sorted=($(printf '%s\n' "${rates[@]}" | sort -n))
echo "median catch-up ($mode): ${sorted[$((runs / 2))]} tx/s over $runs runs"
