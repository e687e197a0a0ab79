#!/usr/bin/env bash
# P11's figure: committed logging writes/s and commit latency (p50, p99) of a
# 4-validator BFT cluster (at the proposer) against a 3-node Raft cluster (at
# the leader), same build, same clients (64), runs alternated so both see the
# same machine. Each is also given as a ratio to its node's ceiling (GET
# /node/commit, same run). Prints each run and the medians.
#
#   scripts/measure-bft-vs-raft.sh [runs=3] [seconds per phase=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export DURATION_S=${2:-10} WORKLOADS=log JSON=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for run in $(seq "$runs"); do
  bench/cluster3.sh 2>/dev/null | grep '^{' > "$out/raft-$run.json"
  NODES=4 MODE=bft bench/cluster3.sh 2>/dev/null | grep '^{' > "$out/bft-$run.json"
done
python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rows = {"raft": [], "bft": []}
for kind in rows:
    for run in range(1, runs + 1):
        report = json.loads(open(f"{out}/{kind}-{run}.json").read().splitlines()[0])
        result, ratio = report["result"], report["ratio"]
        latency = result["latency_ms"]
        rows[kind].append((result["committed_per_s"], latency["p50"], latency["p99"], ratio["throughput"]))
        print(f"run {run} {kind:4}: {result['committed_per_s']:8.0f} tx/s  p50 {latency['p50']:6.2f} ms  "
              f"p99 {latency['p99']:6.2f} ms  {ratio['throughput']:.2f}x of its ceiling")
med = {kind: [statistics.median(col) for col in zip(*values)] for kind, values in rows.items()}
r, b = med["raft"], med["bft"]
print(f"median raft (3 nodes): {r[0]:.0f} tx/s, p50 {r[1]:.2f} ms, p99 {r[2]:.2f} ms, {r[3]:.2f}x ceiling")
print(f"median bft  (4 nodes): {b[0]:.0f} tx/s, p50 {b[1]:.2f} ms, p99 {b[2]:.2f} ms, {b[3]:.2f}x ceiling")
print(f"bft / raft: throughput {b[0] / r[0]:.2f}x, p50 {b[1] / r[1]:.2f}x, p99 {b[2] / r[2]:.2f}x")
PY
