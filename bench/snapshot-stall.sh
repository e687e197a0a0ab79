#!/usr/bin/env bash
# Commit latency while a Raft snapshot is built: a fresh node gets LOAD_S of
# logging writes at 64 clients (~500 k transactions here, so the state and the
# ledger are large), then RUNS open-loop runs of 5 s at RATE tx/s over 128
# clients. Prints each run's latency and how many snapshot builds fell in the
# runs (the geometric schedule puts one in the second run on this machine).
#
#   bench/snapshot-stall.sh
#   STELE=/path/to/other/stele bench/snapshot-stall.sh   # an older binary, A/B
#
# Settings (environment): LOAD_S (20), RATE (2000), RUNS (3), PORT (18643),
# BENCH_DIR (parent of the data folder; a disk, not tmpfs), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOAD_S=${LOAD_S:-20}
RATE=${RATE:-2000}
RUNS=${RUNS:-3}
PORT=${PORT:-18643}

build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-stall.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"

start_node node --data-dir "$WORK/node" --listen "127.0.0.1:$PORT"
wait_listening node "${NODE_PIDS[0]}"
common=(--url "https://127.0.0.1:$PORT" --data-dir "$WORK/node" --workload log --json)
"$STELE" bench "${common[@]}" --clients 64 --duration-s "$LOAD_S" >/dev/null 2>>"$WORK/bench.log"
builds() { grep -c "built a Raft snapshot" "$WORK/node.log" || true; }
before=$(builds)
for run in $(seq "$RUNS"); do
    "$STELE" bench "${common[@]}" --clients 128 --rate "$RATE" --duration-s 5 2>>"$WORK/bench.log" |
        python3 -c "
import json, sys
report = json.loads(sys.stdin.readline())['result']
latency = report['latency_ms']
print('run $run: %.0f tx/s, p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f ms' % (
    report['committed_per_s'], latency['p50'], latency['p99'], latency['p99_9'], latency['max']))"
done
echo "snapshot builds: $before during the load, $(($(builds) - before)) during the runs"
