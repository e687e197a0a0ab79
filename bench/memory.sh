#!/usr/bin/env bash
# Memory growth at constant state (issue P10): a single node under the
# contended SmallBank mix (100 accounts: the KV state stays ~200 keys however
# many transactions commit), its RSS sampled every STEP_S seconds against
# its committed seqno. Prints "seconds seqno rss_kib" rows, then the growth
# in bytes per committed transaction between the first sample after the
# warm-up and the last (what the history, the ledger index and the log keep
# per transaction; the state itself does not grow).
#
#   bench/memory.sh                      # 60 s, 64 clients
#   DURATION_S=300 bench/memory.sh > rss.tsv
#
# Settings (environment): DURATION_S (60), STEP_S (5), WARMUP_S (5),
# CLIENTS (64), PORT (18463), STELE (a binary to measure instead of this
# tree's), BENCH_DIR, KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION_S=${DURATION_S:-60}
STEP_S=${STEP_S:-5}
WARMUP_S=${WARMUP_S:-5}
CLIENTS=${CLIENTS:-64}
PORT=${PORT:-18463}

build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-memory.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"

start_node node --data-dir "$WORK/node" --listen "127.0.0.1:$PORT"
wait_listening node "${NODE_PIDS[0]}"
pid=${NODE_PIDS[0]}
echo "$(machine_line)" >&2

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
seqno() {
    curl -sk --max-time 5 -H "Authorization: Bearer $(cat "$WORK/node/user.token")" \
        "https://127.0.0.1:$PORT/node/commit" | sed -n 's/.*"transaction_id":"[0-9]*\.\([0-9]*\)".*/\1/p'
}

# In rounds of at most BENCH_ROUND_S (`stele bench` runs 600 s at most, and
# measures the GET ceiling after each round: the seqno stands still then), so
# that long runs (10 M transactions take ~10-15 min) keep the load on.
BENCH_ROUND_S=600
load() {
    local left=$((DURATION_S + WARMUP_S)) round
    while ((left > 0)); do
        round=$((left < BENCH_ROUND_S ? left : BENCH_ROUND_S))
        "${STELE_BENCH:-$STELE}" bench --url "https://127.0.0.1:$PORT" --data-dir "$WORK/node" \
            --workload smallbank --accounts 100 --clients "$CLIENTS" \
            --duration-s "$round" --json >> "$WORK/bench.json" 2>> "$WORK/bench.log" || return
        left=$((left - round))
    done
}
load &
bench_pid=$!
sleep "$WARMUP_S"
printf 'seconds\tseqno\trss_kib\n' | tee "$WORK/rows.tsv"
start=$(date +%s)
first_seqno=$(seqno); first_rss=$(rss_kib)
printf '0\t%s\t%s\n' "$first_seqno" "$first_rss" | tee -a "$WORK/rows.tsv"
last_seqno=$first_seqno; last_rss=$first_rss
while (($(date +%s) - start < DURATION_S)); do
    sleep "$STEP_S"
    last_seqno=$(seqno); last_rss=$(rss_kib)
    printf '%s\t%s\t%s\n' $(($(date +%s) - start)) "$last_seqno" "$last_rss" | tee -a "$WORK/rows.tsv"
done
# The running round first (the loop's child), then the loop.
pkill -P "$bench_pid" 2>/dev/null || true
kill "$bench_pid" 2>/dev/null || true
wait "$bench_pid" 2>/dev/null || true
txs=$((last_seqno - first_seqno))
if ((txs <= 0)); then
    echo "no transaction committed during the run (see $WORK/bench.log)" >&2
    exit 1
fi
echo "growth: $(((last_rss - first_rss) * 1024 / txs)) bytes per committed transaction over $txs transactions (RSS ${first_rss} -> ${last_rss} KiB)" >&2
# The least-squares slope over every sample: less sensitive than the two
# ends to a transient (a snapshot build holds tens of MB for a while).
awk -F'\t' 'NR > 1 { n++; x[n] = $2; y[n] = $3 * 1024; sx += $2; sy += $3 * 1024 }
    END { mx = sx / n; my = sy / n
          for (i = 1; i <= n; i++) { num += (x[i] - mx) * (y[i] - my); den += (x[i] - mx) ^ 2 }
          if (den > 0) printf "slope: %.1f bytes per committed transaction (least squares over %d samples)\n", num / den, n }' \
    "$WORK/rows.tsv" >&2
