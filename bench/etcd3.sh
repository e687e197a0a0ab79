#!/usr/bin/env bash
# Stele vs etcd, both as 3-member clusters on loopback, driven in the same run
# by the same client (`stele bench`: keep-alive reqwest connections, same
# clients, phase length and value size).
#
#   Stele: `--workload kv-put` (POST /app/tx, one put per transaction) at the
#          leader over HTTPS; ceiling GET /node/commit. A commit is fdatasync'd
#          on a majority.
#   etcd:  `--workload etcd-put` (POST /v3/kv/put on etcd's JSON gRPC gateway,
#          plain HTTP) at the etcd leader; ceiling a serializable one-key
#          POST /v3/kv/range (the same gateway and gRPC path, no consensus).
#          etcd fsyncs its WAL as usual (no --unsafe-no-fsync).
#
# The runs alternate (Stele, etcd, Stele, etcd, ...) so that both see the
# same machine noise; the summary is the median of RUNS runs of each and the
# median of the per-run ratios.
#
# Caveats printed with the result: etcd's JSON gateway is an HTTP/1.1 to gRPC
# proxy inside etcd, which costs etcd more than its native gRPC API does
# (etcd's own benchmark uses gRPC); and Stele pays TLS while etcd here does
# not. ETCD_CHECK_PERF=1 adds `etcdctl check perf --load=$ETCD_CHECK_PERF_LOAD`
# (native gRPC, 60 s; the default `l` offers 8,000 puts/s from 500 clients, so
# when etcd cannot keep up, its "Throughput too low: N writes/s" is etcd's
# native put throughput on this machine) as a reference.
#
#   bench/etcd3.sh                            # 5 s phases, 64 clients, 3 runs
#   RUNS=1 DURATION_S=3 bench/etcd3.sh
#
# Settings (environment): DURATION_S (5), CLIENTS (64), THREADS (1), RUNS (3),
# VALUE_BYTES (64), BASE_PORT (19541: Stele nodes on 19541..19543),
# ETCD_PORT (23790: etcd member i serves clients on ETCD_PORT+10*i and peers
# on ETCD_PORT+10*i+1), STELE_WORKLOAD (kv-put), OUT (bench/results/etcd3.json),
# BENCH_DIR, KEEP=1. Installs etcd-server (and jq, curl) with apt-get when
# missing. Loopback only; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION_S=${DURATION_S:-5}
CLIENTS=${CLIENTS:-64}
THREADS=${THREADS:-1}
RUNS=${RUNS:-3}
VALUE_BYTES=${VALUE_BYTES:-64}
BASE_PORT=${BASE_PORT:-19541}
ETCD_PORT=${ETCD_PORT:-23790}
STELE_WORKLOAD=${STELE_WORKLOAD:-kv-put}
OUT=${OUT:-bench/results/etcd3.json}
JSON=1
MEMBERS=3

ensure_command etcd etcd-server
ensure_command jq jq
ensure_command curl curl
if [ "${ETCD_CHECK_PERF:-0}" = 1 ]; then ensure_command etcdctl etcd-client; fi
build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-etcd3.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"
echo "$(machine_line); $(etcd --version | head -1)" >&2

# --- etcd: 3 members on loopback, each with its own data folder.
etcd_client_url() { echo "http://127.0.0.1:$((ETCD_PORT + 10 * $1))"; }
etcd_peer_url() { echo "http://127.0.0.1:$((ETCD_PORT + 10 * $1 + 1))"; }
initial_cluster=
for i in $(seq "$MEMBERS"); do
    initial_cluster+="${initial_cluster:+,}etcd$i=$(etcd_peer_url "$i")"
done
for i in $(seq "$MEMBERS"); do
    # Defaults otherwise (heartbeat 100 ms, election 1 s, WAL fsync on).
    etcd --name "etcd$i" --data-dir "$WORK/etcd$i" \
        --listen-client-urls "$(etcd_client_url "$i")" \
        --advertise-client-urls "$(etcd_client_url "$i")" \
        --listen-peer-urls "$(etcd_peer_url "$i")" \
        --initial-advertise-peer-urls "$(etcd_peer_url "$i")" \
        --initial-cluster "$initial_cluster" \
        --initial-cluster-token stele-bench --initial-cluster-state new \
        --logger zap --log-outputs stderr \
        >"$WORK/etcd$i.out" 2>"$WORK/etcd$i.log" &
    NODE_PIDS+=($!)
done
etcd_leader=
for _ in $(seq 600); do
    for i in $(seq "$MEMBERS"); do
        status=$(curl -sS --max-time 2 -X POST -d '{}' "$(etcd_client_url "$i")/v3/maintenance/status" 2>/dev/null || true)
        member=$(printf '%s' "$status" | jq -r '.header.member_id // empty' 2>/dev/null || true)
        leader=$(printf '%s' "$status" | jq -r '.leader // empty' 2>/dev/null || true)
        if [ -n "$member" ] && [ "$member" = "$leader" ]; then
            etcd_leader=$(etcd_client_url "$i")
            break 2
        fi
    done
    sleep 0.1
done
if [ -z "$etcd_leader" ]; then
    echo "error: etcd elected no leader within 60 s; member 1's log:" >&2
    tail -n 20 "$WORK/etcd1.log" >&2
    exit 1
fi
echo "etcd up: $MEMBERS members, leader $etcd_leader, data in $WORK/etcd*" >&2

# --- Stele: 3 nodes, as bench/cluster3.sh.
STELE_START_ARGS=()
start_stele_cluster "$MEMBERS" "$BASE_PORT"

# --- A short unmeasured run of each first: a fresh cluster's first commits
# are slow (connections between nodes, first ledger chunk), which is not what
# the comparison is about.
DURATION_S=2 run_bench "warm-up: stele" "${CLUSTER_ARGS[@]}" --workload "$STELE_WORKLOAD" >/dev/null
DURATION_S=2 run_bench "warm-up: etcd" --url "$etcd_leader" --workload etcd-put >/dev/null

# --- The runs, alternating.
: >"$WORK/stele.jsonl"
: >"$WORK/etcd.jsonl"
common=(--value-bytes "$VALUE_BYTES")
for run in $(seq "$RUNS"); do
    run_bench "stele $STELE_WORKLOAD, run $run/$RUNS" "${CLUSTER_ARGS[@]}" "${common[@]}" \
        --workload "$STELE_WORKLOAD" --label stele >>"$WORK/stele.jsonl"
    run_bench "etcd put, run $run/$RUNS" --url "$etcd_leader" "${common[@]}" \
        --workload etcd-put --label etcd >>"$WORK/etcd.jsonl"
done
collect_runs "$OUT" "$WORK/stele.jsonl" "$WORK/etcd.jsonl"

# --- The summary: medians of each, and the median of the per-run ratios.
jq -r --arg machine "$(machine_line)" '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def r2: . * 100 | round / 100;
    [.[] | select(.settings.label == "stele")] as $s
    | [.[] | select(.settings.label == "etcd")] as $e
    | [range(0; [$s, $e] | map(length) | min)] as $runs
    | "machine: \($machine); \($s[0].settings.clients) clients, \($s[0].settings.duration_s) s phases, \($s[0].settings.value_bytes)-byte values, \($s | length) runs each",
      "stele \($s[0].settings.workload): \([$s[].result.committed_per_s] | median | round) committed tx/s, p99 \([$s[].result.latency_ms.p99] | median) ms (ceiling GET /node/commit \([$s[].ceiling.committed_per_s] | median | round)/s, ratio \([$s[].ratio.throughput] | median))",
      "etcd put:   \([$e[].result.committed_per_s] | median | round) puts/s, p99 \([$e[].result.latency_ms.p99] | median) ms (ceiling serializable range \([$e[].ceiling.committed_per_s] | median | round)/s, ratio \([$e[].ratio.throughput] | median))",
      "stele / etcd throughput: \([$runs[] | $s[.].result.committed_per_s / $e[.].result.committed_per_s] | median | r2)x (runs \([$runs[] | $s[.].result.committed_per_s / $e[.].result.committed_per_s | r2] | map(tostring) | join(", "))); target >= 3x",
      "stele / etcd p99: \([$runs[] | $s[.].result.latency_ms.p99 / $e[.].result.latency_ms.p99] | median | r2)x (below 1: Stele lower)",
      "note: etcd is driven through its JSON gateway over plain HTTP (an HTTP-to-gRPC proxy inside etcd: slower than its native gRPC); Stele over HTTPS"
' "$OUT"

if [ "${ETCD_CHECK_PERF:-0}" = 1 ]; then
    endpoints=
    for i in $(seq "$MEMBERS"); do endpoints+="${endpoints:+,}$(etcd_client_url "$i")"; done
    load=${ETCD_CHECK_PERF_LOAD:-l}
    echo "== etcdctl check perf --load=$load (native gRPC, reference only)" >&2
    # Stele's nodes idle meanwhile; the progress bar lines are dropped.
    ETCDCTL_API=3 timeout 180 etcdctl --endpoints "$endpoints" check perf --load="$load" \
        2>&1 | tr '\r' '\n' | grep -v '^ *[0-9]* / 60' || true
fi
