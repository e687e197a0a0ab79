#!/usr/bin/env bash
# BFT mode (P11): time to a new proposer after kill -9 of the current one, on
# a 4-validator cluster of real processes on loopback (release build), with a
# client writing all along (every 20 ms, to each node in turn: a write at a
# non-proposer is refused with 307 and counts as demand). Prints each run and
# the median.
#
#   scripts/measure-bft-failover.sh [runs=5]
#
# Measured from the kill to the first write committed by another node, with
# the default BFT timing (propose 3 s, prevote and precommit 1 s, +0.5 s per
# round) and DEMAND_START_MS (2 s: how long a refused write waits before a
# parked validator starts the height itself).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release --locked --bin stele >/dev/null
bin=$PWD/target/release/stele
dir=$(mktemp -d)
base=$((20000 + RANDOM % 12000))
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

"$bin" cluster-init --dir "$dir" --nodes 4 --base-port "$base" --mode bft >/dev/null
token=$(cat "$dir/node1/user.token")
start() { # node id
  RUST_LOG=warn "$bin" start --config "$dir/node$1.toml" >>"$dir/node$1.log" 2>&1 &
  pids[$1]=$!
}
proposer_of() { # node id -> the proposer it names, or nothing
  curl -sk --max-time 1 "https://127.0.0.1:$((base + $1 - 1))/node/state" \
    | sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p' || true
}
write_at() { # node id -> the status of one write there (or 000)
  curl -sk --max-time 1 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    "https://127.0.0.1:$((base + $1 - 1))/app/tx" \
    --json '{"ops":[{"op":"put","map":"m","key":"k","value":"v"}]}' || true
}
now_ms() { date +%s%3N; }

for id in 1 2 3 4; do start "$id"; done
sleep 2
times=()
for run in $(seq "$runs"); do
  proposer=""
  for _ in $(seq 600); do proposer=$(proposer_of 1); [ -n "$proposer" ] && break; sleep 0.05; done
  [ -n "$proposer" ] || { echo "no proposer" >&2; exit 1; }
  # Steady state: a few writes committed by the proposer.
  for _ in 1 2 3; do write_at "$proposer" >/dev/null; done
  kill -9 "${pids[$proposer]}"; t0=$(now_ms)
  new=""
  while [ -z "$new" ]; do
    for id in 1 2 3 4; do
      [ "$id" = "$proposer" ] && continue
      if [ "$(write_at "$id")" = 200 ]; then new=$id; break; fi
    done
    sleep 0.02
    if [ $(($(now_ms) - t0)) -gt 120000 ]; then echo "no new proposer in 120 s" >&2; exit 1; fi
  done
  t1=$(now_ms)
  times+=($((t1 - t0)))
  echo "run $run: proposer $proposer killed, node $new commits writes after $((t1 - t0)) ms"
  start "$proposer"
  sleep 3 # it catches up
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "median: ${sorted[$((runs / 2))]} ms over $runs runs (propose timeout 3 s, demand wait 2 s)"
