#!/usr/bin/env bash
# Receipt latency against the transaction's age (issue P10): on an existing
# data folder (DATA, e.g. one `KEEP=1 bench/recovery.sh` left), a receipt of
# the last transaction against one of transaction 5, whose 256-leaf tile is
# read back from the ledger. Warm: medians of 190 over one kept-alive
# connection. Cold (root only): a new connection right after dropping the
# page cache, medians of COLD_RUNS, each for another old tile.
#
#   DATA=/tmp/stele-recovery.XXXX/node bench/receipt-age.sh
#
# Settings (environment): DATA (required), PORT (18997), COLD_RUNS (15),
# STELE (a binary to measure instead of this tree's).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

: "${DATA:?set DATA to a data folder with a ledger of many transactions}"
PORT=${PORT:-18997}
COLD_RUNS=${COLD_RUNS:-15}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stele-receipt-age.XXXXXX")
build_stele
trap stop_nodes EXIT
trap 'exit 130' INT TERM

start_node node --data-dir "$DATA" --listen "127.0.0.1:$PORT"
wait_listening node "${NODE_PIDS[0]}"
url=https://127.0.0.1:$PORT
auth="Authorization: Bearer $(cat "$DATA/user.token")"
last=$(curl -sk "$url/node/commit" | sed -n 's/.*"transaction_id":"\([0-9.]*\)".*/\1/p')
old=""
for view in $(seq 1 64); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' -H "$auth" "$url/node/receipt?transaction_id=$view.5")
    if [ "$code" = 200 ]; then old_view=$view; old=$view.5; break; fi
done
[ -n "$old" ] || { echo "error: no receipt for seqno 5 in views 1-64" >&2; exit 1; }

median_ms() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]*1000}'; }
# warm ID: 200 receipts of ID over one connection, the first 10 dropped.
warm() {
    local args=()
    for _ in $(seq 200); do args+=(-o /dev/null "$url/node/receipt?transaction_id=$1"); done
    curl -sk -H "$auth" -w '%{time_total}\n' "${args[@]}" | tail -190 | median_ms
}
# cold ID...: each after dropping the page cache, on a new connection.
cold() {
    for id in "$@"; do
        sync
        echo 3 > /proc/sys/vm/drop_caches
        read -r code seconds < <(curl -sk -H "$auth" -o /dev/null \
            -w '%{http_code} %{time_total}\n' "$url/node/receipt?transaction_id=$id")
        [ "$code" = 200 ] || { echo "error: receipt of $id answered $code" >&2; exit 1; }
        echo "$seconds"
    done | median_ms
}

echo "$(machine_line)" >&2
echo "last transaction $last; old transaction $old"
echo "warm, ms: recent $(warm "$last"), old $(warm "$old")"
if [ -w /proc/sys/vm/drop_caches ]; then
    olds=(); recents=()
    for run in $(seq "$COLD_RUNS"); do
        olds+=("$old_view.$((run * 7919 + 3))")
        recents+=("$last")
    done
    echo "cold, ms (new connection, empty page cache): recent $(cold "${recents[@]}"), old $(cold "${olds[@]}")"
else
    echo "cold: skipped (dropping the page cache needs root)"
fi
