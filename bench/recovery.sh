#!/usr/bin/env bash
# Issue 7, items 5 and 6: `stele verify` speed on a ledger of at least 1 M
# transactions, and the time from start to serving on that ledger with and
# without a KV snapshot.
#
#   bench/recovery.sh                 # TX=1000000 logging writes, 3 runs each
#
# Settings (environment): TX (1000000), RUNS (3), PORT (18543), CLIENTS (64),
# BENCH_DIR (parent of the data folder; a disk, not tmpfs), KEEP=1.
# The node takes a snapshot every 100,000 committed transactions (the default).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

TX=${TX:-1000000}
RUNS=${RUNS:-3}
PORT=${PORT:-18543}
CLIENTS=${CLIENTS:-64}
# Most load rounds of 30 s before giving up on reaching TX.
LOAD_ROUNDS_MAX=40

build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-recovery.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"
data=$WORK/node
url=https://127.0.0.1:$PORT

seqno() {
    curl -sS --max-time 5 --cacert "$data/tls/node.crt" "$url/node/state" \
        | sed -n 's/.*"ledger_seqno":\([0-9][0-9]*\).*/\1/p'
}
now_ms() { date +%s%3N; }

# Serving time into SERVE_MS: from spawning the process to its `listening on`
# line, which it prints once the state is rebuilt (and, as a cluster of one,
# elected and applied). Not in a subshell: NODE_PIDS must reach kill_nodes.
serve() {
    local started
    started=$(now_ms)
    NODE_PIDS=()
    start_node node --data-dir "$data" --listen "127.0.0.1:$PORT"
    wait_listening node "${NODE_PIDS[0]}"
    SERVE_MS=$(($(now_ms) - started))
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

# Load the ledger.
start_node node --data-dir "$data" --listen "127.0.0.1:$PORT"
wait_listening node "${NODE_PIDS[0]}"
for _ in $(seq "$LOAD_ROUNDS_MAX"); do
    have=$(seqno)
    [ "$have" -ge "$TX" ] && break
    echo "loading: $have of $TX transactions" >&2
    timeout 120 "$STELE" bench --url "$url" --data-dir "$data" --cacert "$data/tls/node.crt" \
        --workload log --clients "$CLIENTS" --duration-s 30 >/dev/null 2>&1 || true
done
have=$(seqno)
[ "$have" -ge "$TX" ] || { echo "error: only $have transactions after loading" >&2; exit 1; }
kill_nodes
NODE_PIDS=()

verify_rates=()
for _ in $(seq "$RUNS"); do
    started=$(now_ms)
    "$STELE" verify "$data/ledger" >/dev/null 2>&1
    ms=$(($(now_ms) - started))
    verify_rates+=($((have * 1000 / (ms > 0 ? ms : 1))))
done

with=()
for _ in $(seq "$RUNS"); do
    serve
    with+=("$SERVE_MS")
    kill_nodes
done
mv "$data/snapshots" "$WORK/snapshots.aside"
without=()
for _ in $(seq "$RUNS"); do
    serve
    without+=("$SERVE_MS")
    kill_nodes
    # A start writes snapshots again as it commits: keep the folder empty.
    rm -rf "$data/snapshots"
done
mv "$WORK/snapshots.aside" "$data/snapshots"

echo "ledger: $have transactions"
echo "stele verify: median $(median "${verify_rates[@]}") tx/s (runs: ${verify_rates[*]})"
echo "start to serving, with snapshots: median $(median "${with[@]}") ms (runs: ${with[*]})"
echo "start to serving, without:        median $(median "${without[@]}") ms (runs: ${without[*]})"
