#!/usr/bin/env bash
# P5's figure: committed tx/s and p99 commit latency of a 3-node cluster (at the
# leader; a commit is fdatasync'd on a majority) against a single node, same
# build, logging writes, runs alternated so both see the same machine. Each
# figure is also given as a ratio to its node's ceiling (GET /node/commit, same
# clients and connections, same run). Prints each run and the medians.
#
#   scripts/measure-cluster-vs-single.sh [runs=3] [seconds per phase=5]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export DURATION_S=${2:-5} WORKLOADS=log JSON=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for run in $(seq "$runs"); do
  bench/single.sh 2>/dev/null | grep '^{' > "$out/single-$run.json"
  bench/cluster3.sh 2>/dev/null | grep '^{' > "$out/cluster-$run.json"
done
python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rows = {"single": [], "cluster": []}
for kind in rows:
    for run in range(1, runs + 1):
        report = json.loads(open(f"{out}/{kind}-{run}.json").read().splitlines()[0])
        result, ratio = report["result"], report["ratio"]
        rows[kind].append((result["committed_per_s"], result["latency_ms"]["p99"], ratio["throughput"]))
        print(f"run {run} {kind:7}: {result['committed_per_s']:8.0f} tx/s  p99 {result['latency_ms']['p99']:6.2f} ms  "
              f"{ratio['throughput']:.2f}x of its ceiling")
med = {kind: [statistics.median(col) for col in zip(*values)] for kind, values in rows.items()}
s, c = med["single"], med["cluster"]
print(f"median single : {s[0]:.0f} tx/s, p99 {s[1]:.2f} ms, {s[2]:.2f}x ceiling")
print(f"median cluster: {c[0]:.0f} tx/s, p99 {c[1]:.2f} ms, {c[2]:.2f}x ceiling")
print(f"cluster / single: throughput {c[0] / s[0]:.2f}x, p99 {c[1] / s[1]:.2f}x")
PY
