#!/usr/bin/env bash
# A/B of release binaries on the logging write path: a fresh single node per
# run, the binaries alternated, `stele bench --workload log`; prints per run the
# committed tx/s, p50 ms, the ceiling's tx/s and the ratio to it.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [MORE ...]     (ROUNDS=3 CLIENTS=64 DURATION_S=5)
set -euo pipefail
ROUNDS=${ROUNDS:-3} CLIENTS=${CLIENTS:-64} DURATION_S=${DURATION_S:-5} PORT=${PORT:-18443}
[ $# -ge 2 ] || { echo "usage: $0 BINARY BINARY [BINARY ...]" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  index=0
  for bin in "$@"; do
    index=$((index + 1))
    dir=$out/$index-$round
    mkdir -p "$dir"
    "$bin" start --data-dir "$dir/data" --listen "127.0.0.1:$PORT" > "$dir/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$dir/node.log" && break; sleep 0.1; done
    "$bin" bench --url "https://127.0.0.1:$PORT" --data-dir "$dir/data" --workload log \
      --clients "$CLIENTS" --duration-s "$DURATION_S" > "$dir/bench.txt" 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$bin round $round: $(grep -E 'log \(POST|ceiling \(GET|ratio to' "$dir/bench.txt" \
      | awk '{print $(NF-5), $(NF-4)}' | tr '\n' ' ')"
  done
done
