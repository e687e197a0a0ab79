#!/usr/bin/env bash
# Catch-up speed of a new node: a 3-node cluster on loopback (release build) is
# loaded with logging writes for a while, then a 4th node (laid out with
# `cluster-init --joining 1`) is added with POST /admin/members on the leader.
# The call returns once the new node has replicated the whole log as a learner
# (re-executing and checking every batch) and become a voter; the script prints
# how many transactions it caught up with, how long it took, and the rate.
#
#   scripts/measure-catchup.sh [load seconds=20] [runs=3]
set -euo pipefail
cd "$(dirname "$0")/.."
load_s=${1:-20}
runs=${2:-3}
cargo build --release --locked --bin stele >/dev/null
bin=$PWD/target/release/stele
pids=()
dir=""
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  pids=()
  [ -n "$dir" ] && rm -rf "$dir"
  return 0
}
trap cleanup EXIT

rates=()
for run in $(seq "$runs"); do
  dir=$(mktemp -d)
  base=$((20000 + RANDOM % 12000))
  "$bin" cluster-init --dir "$dir" --nodes 3 --joining 1 --base-port "$base" >"$dir/init.out"
  body=$(sed -n 's/^node 4 joins with: POST \/admin\/members //p' "$dir/init.out")
  token=$(cat "$dir/admin.token")
  for id in 1 2 3; do
    RUST_LOG=warn "$bin" start --config "$dir/node$id.toml" >"$dir/node$id.log" 2>&1 &
    pids+=($!)
  done
  leader=""
  for _ in $(seq 600); do
    leader=$(curl -sk --max-time 1 "https://127.0.0.1:$base/node/state" | sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p' || true)
    [ -n "$leader" ] && break
    sleep 0.05
  done
  [ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
  url="https://127.0.0.1:$((base + leader - 1))"
  "$bin" bench --url "$url" --data-dir "$dir/node1" --insecure --workload log \
    --clients 64 --duration-s "$load_s" >/dev/null 2>&1
  seqno=$(curl -sk "$url/node/state" | sed -n 's/.*"ledger_seqno":\([0-9][0-9]*\).*/\1/p')
  RUST_LOG=warn "$bin" start --config "$dir/node4.toml" >"$dir/node4.log" 2>&1 &
  pids+=($!)
  sleep 1
  t0=$(date +%s%3N)
  curl -skf -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
    --data "$body" "$url/admin/members" >/dev/null
  t1=$(date +%s%3N)
  ms=$((t1 - t0))
  rate=$((seqno * 1000 / (ms > 0 ? ms : 1)))
  rates+=("$rate")
  echo "run $run: node 4 caught up with $seqno transactions in $ms ms: $rate tx/s"
  cleanup
done
sorted=($(printf '%s\n' "${rates[@]}" | sort -n))
echo "median catch-up: ${sorted[$((runs / 2))]} tx/s over $runs runs"
