#!/usr/bin/env bash
# Time to elect a new leader after kill -9 of the leader, on a 3-node cluster of
# real processes on loopback (release build). Prints each run and the median.
#
#   scripts/measure-failover.sh [runs=5]
#
# Measured from the kill to the moment both survivors name the same new leader
# in /node/state (polled every 10 ms), with the default Raft timing
# (heartbeat 100 ms, election timeout 500-1000 ms).
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

"$bin" cluster-init --dir "$dir" --nodes 3 --base-port "$base" >/dev/null
start() { # node id
  RUST_LOG=warn "$bin" start --config "$dir/node$1.toml" >"$dir/node$1.log" 2>&1 &
  pids[$1]=$!
}
leader_of() { # node id -> the leader it names, or nothing
  curl -sk --max-time 1 "https://127.0.0.1:$((base + $1 - 1))/node/state" \
    | sed -n 's/.*"leader":\([0-9][0-9]*\).*/\1/p' || true
}
agreed() { # node ids... -> the leader they all name, or nothing
  local first="" id seen
  for id in "$@"; do
    seen=$(leader_of "$id")
    [ -n "$seen" ] || return 0
    if [ -z "$first" ]; then first=$seen; elif [ "$seen" != "$first" ]; then return 0; fi
  done
  echo "$first"
}
now_ms() { date +%s%3N; }

for id in 1 2 3; do start "$id"; done
times=()
for run in $(seq "$runs"); do
  leader=""
  for _ in $(seq 600); do leader=$(agreed 1 2 3); [ -n "$leader" ] && break; sleep 0.05; done
  [ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
  survivors=()
  for id in 1 2 3; do [ "$id" != "$leader" ] && survivors+=("$id"); done
  sleep 1 # steady state: heartbeats flowing
  kill -9 "${pids[$leader]}"; t0=$(now_ms)
  while :; do
    new=$(agreed "${survivors[@]}")
    if [ -n "$new" ] && [ "$new" != "$leader" ]; then break; fi
    sleep 0.01
  done
  t1=$(now_ms)
  times+=($((t1 - t0)))
  echo "run $run: leader $leader killed, node $new leads after $((t1 - t0)) ms"
  start "$leader"
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "median: ${sorted[$((runs / 2))]} ms over $runs runs (heartbeat 100 ms, election timeout 500-1000 ms)"
