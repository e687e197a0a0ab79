#!/usr/bin/env bash
# Stele's Redis protocol (RESP) against Redis, same client, same run:
#
#   redis-benchmark -t set,get,incr,mset -c 64 -d 100 -r 100000 -n N --csv  (and -P 16)
#
# against
#   stele       one release node (`stele start --resp-listen 127.0.0.1:PORT`):
#               every write answered at commit, fdatasync'd;
#   always      redis-server --appendonly yes --appendfsync always (durable Redis:
#               fsync before answering each write batch);
#   everysec    redis-server --appendonly yes --appendfsync everysec (Redis's default
#               AOF policy: up to a second of acknowledged writes lost on a crash).
# Each RUNS times (default 3), the three alternating so that they see the same
# machine noise; every data folder is a fresh temporary one on BENCH_DIR's disk.
# Printed: the median of requests/s, p50 and p99 (ms, redis-benchmark's own) per
# target, test and pipeline depth, and the Stele/Redis throughput ratios (the
# issue's targets: SET >= 0.8x and GET >= 0.6x of `always`, without pipelining).
#
# CLUSTER=1 adds a 3-node Stele cluster (stele cluster-init, every node's RESP on
# RESP_BASE_PORT+i-1): SET through the leader's RESP port at a stated load,
# CLUSTER_CLIENTS connections (default 16) with one request in flight each
# (closed loop, no pipelining), CLUSTER_N requests; p50/p99 of SET reported
# against the seed's budget (p50 <= 3 ms, p99 <= 10 ms).
#
#   bench/resp.sh                          # N=100000, 3 runs
#   RUNS=1 N=20000 bench/resp.sh
#   CLUSTER=1 bench/resp.sh
#
# Settings (environment): N (100000), RUNS (3), CLIENTS (64), VALUE_BYTES (100),
# KEYSPACE (100000), PIPELINES ("1 16"), TESTS (set,get,incr,mset), PORT (18453,
# the node's HTTPS), RESP_PORT (16380), REDIS_PORT (16390: always; +1: everysec),
# CLUSTER (0), BASE_PORT (19451: cluster HTTPS on 19451..19453), RESP_BASE_PORT
# (16400), CLUSTER_CLIENTS (16), CLUSTER_N (20000), OUT (bench/results/resp.csv:
# every run's CSV line, labelled), BENCH_DIR, KEEP=1. Installs redis-server and
# redis-tools with apt-get when missing (see also scripts/setup.sh). Loopback
# only; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

N=${N:-100000}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-64}
VALUE_BYTES=${VALUE_BYTES:-100}
KEYSPACE=${KEYSPACE:-100000}
PIPELINES=${PIPELINES:-1 16}
TESTS=${TESTS:-set,get,incr,mset}
PORT=${PORT:-18453}
RESP_PORT=${RESP_PORT:-16380}
REDIS_PORT=${REDIS_PORT:-16390}
CLUSTER=${CLUSTER:-0}
BASE_PORT=${BASE_PORT:-19451}
RESP_BASE_PORT=${RESP_BASE_PORT:-16400}
CLUSTER_CLIENTS=${CLUSTER_CLIENTS:-16}
CLUSTER_N=${CLUSTER_N:-20000}
OUT=${OUT:-bench/results/resp.csv}

ensure_command redis-server redis-server
ensure_command redis-benchmark redis-tools
ensure_command redis-cli redis-tools
ensure_command curl curl
ensure_command python3 python3
build_stele
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/stele-resp.XXXXXX")
trap stop_nodes EXIT
trap 'exit 130' INT TERM
warn_if_tmpfs "$WORK"
echo "$(machine_line); $(redis-server --version | cut -d' ' -f1-3)" >&2

# start_redis NAME PORT FSYNC: a redis-server with an AOF fsync'd as FSYNC, in
# $WORK/NAME; waits for PING.
start_redis() {
    local name=$1 port=$2 fsync=$3
    mkdir -p "$WORK/$name"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --daemonize no \
        --appendonly yes --appendfsync "$fsync" --dir "$WORK/$name" \
        --logfile "$WORK/$name.log" &
    NODE_PIDS+=($!)
    for _ in $(seq 300); do
        if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then return 0; fi
        sleep 0.1
    done
    echo "error: redis-server $name did not answer PING within 30 s; its log:" >&2
    tail -n 20 "$WORK/$name.log" >&2
    return 1
}

# --- The three targets.
start_node stele --data-dir "$WORK/stele" --listen "127.0.0.1:$PORT" \
    --resp-listen "127.0.0.1:$RESP_PORT"
wait_listening stele "${NODE_PIDS[0]}"
if ! grep -q "^resp listening on redis://" "$WORK/stele.out"; then
    echo "error: the node printed no 'resp listening on redis://' line:" >&2
    cat "$WORK/stele.out" >&2
    exit 1
fi
STELE_TOKEN=$(cat "$WORK/stele/user.token")
start_redis always "$REDIS_PORT" always
start_redis everysec "$((REDIS_PORT + 1))" everysec
echo "up: stele redis://127.0.0.1:$RESP_PORT, redis always :$REDIS_PORT, everysec :$((REDIS_PORT + 1)); data in $WORK" >&2

# bench_one LABEL PORT AUTH PIPELINE RUN: one redis-benchmark run; its CSV lines,
# each prefixed with "LABEL,PIPELINE,RUN,", appended to $WORK/runs.csv.
bench_one() {
    local label=$1 port=$2 auth=$3 pipeline=$4 run=$5 auth_args=()
    if [ -n "$auth" ]; then auth_args=(-a "$auth"); fi
    echo "== $label -P $pipeline, run $run/$RUNS" >&2
    timeout 600 redis-benchmark -h 127.0.0.1 -p "$port" "${auth_args[@]}" \
        -t "$TESTS" -c "$CLIENTS" -d "$VALUE_BYTES" -r "$KEYSPACE" -n "$N" \
        -P "$pipeline" --csv >"$WORK/last.csv"
    tail -n +2 "$WORK/last.csv" | sed "s/^/\"$label\",$pipeline,$run,/" >>"$WORK/runs.csv"
}

: >"$WORK/runs.csv"
# A short unmeasured run of each first (connections, first ledger chunk, AOF file).
for target in "stele $RESP_PORT $STELE_TOKEN" "always $REDIS_PORT " "everysec $((REDIS_PORT + 1)) "; do
    read -r label port auth <<<"$target"
    redis-benchmark -h 127.0.0.1 -p "$port" ${auth:+-a "$auth"} \
        -t set,get -c "$CLIENTS" -n 5000 -q >/dev/null
done
for run in $(seq "$RUNS"); do
    for pipeline in $PIPELINES; do
        bench_one stele "$RESP_PORT" "$STELE_TOKEN" "$pipeline" "$run"
        bench_one always "$REDIS_PORT" "" "$pipeline" "$run"
        bench_one everysec "$((REDIS_PORT + 1))" "" "$pipeline" "$run"
    done
done

# --- Optional: a 3-node cluster, SET through the leader's RESP port.
if [ "$CLUSTER" = 1 ]; then
    before_cluster_start() {
        local i
        for i in $(seq "$1"); do
            printf '\n[resp]\nlisten = "127.0.0.1:%s"\n' "$((RESP_BASE_PORT + i - 1))" \
                >>"$WORK/cluster/node$i.toml"
        done
    }
    STELE_START_ARGS=()
    start_stele_cluster 3 "$BASE_PORT"
    leader_index=$((${LEADER##*:} - BASE_PORT + 1))
    leader_resp=$((RESP_BASE_PORT + leader_index - 1))
    echo "== cluster: SET at the leader (node $leader_index, RESP :$leader_resp), $CLUSTER_CLIENTS connections, no pipelining" >&2
    for run in $(seq "$RUNS"); do
        timeout 600 redis-benchmark -h 127.0.0.1 -p "$leader_resp" \
            -a "$(cat "$WORK/cluster/node1/user.token")" \
            -t set -c "$CLUSTER_CLIENTS" -d "$VALUE_BYTES" -r "$KEYSPACE" -n "$CLUSTER_N" \
            --csv >"$WORK/last.csv"
        tail -n +2 "$WORK/last.csv" | sed "s/^/\"cluster3-c$CLUSTER_CLIENTS\",1,$run,/" >>"$WORK/runs.csv"
    done
fi

mkdir -p "$(dirname "$OUT")"
{
    echo '"target","pipeline","run","test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"'
    cat "$WORK/runs.csv"
} >"$OUT"
echo "wrote $OUT" >&2

# --- The summary: medians per target, pipeline and test; Stele/Redis ratios.
python3 - "$OUT" "$(machine_line)" "$N" "$CLIENTS" "$VALUE_BYTES" "$KEYSPACE" "$RUNS" <<'PY'
import csv, statistics, sys
path, machine, n, clients, value_bytes, keyspace, runs = sys.argv[1:8]
rows = list(csv.DictReader(open(path)))
groups = {}
for row in rows:
    key = (row["target"], int(row["pipeline"]), row["test"])
    groups.setdefault(key, []).append(row)
def median(key, field):
    return statistics.median(float(row[field]) for row in groups[key])
print(f"machine: {machine}; redis-benchmark -c {clients} -d {value_bytes} -r {keyspace} -n {n}; median of {runs} runs")
print(f"{'target':<16}{'-P':>4}  {'test':<16}{'req/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
for key in sorted(groups, key=lambda k: (k[1], k[2], k[0])):
    target, pipeline, test = key
    print(f"{target:<16}{pipeline:>4}  {test:<16}{median(key, 'rps'):>12.0f}"
          f"{median(key, 'p50_latency_ms'):>9.3f}{median(key, 'p99_latency_ms'):>9.3f}")
targets = {"SET": 0.8, "GET": 0.6}
for (target, pipeline, test) in sorted(groups, key=lambda k: (k[1], k[2])):
    if target != "stele":
        continue
    for redis in ("always", "everysec"):
        other = (redis, pipeline, test)
        if other not in groups:
            continue
        ratio = median((target, pipeline, test), "rps") / median(other, "rps")
        goal = targets.get(test) if redis == "always" and pipeline == 1 else None
        note = f" (target >= {goal}x: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
        print(f"stele / redis {redis:<8} -P {pipeline:<3} {test:<16} {ratio:.2f}x{note}")
for key in groups:
    if key[0].startswith("cluster3"):
        p50, p99 = median(key, "p50_latency_ms"), median(key, "p99_latency_ms")
        print(f"3-node cluster SET at the leader, {key[0].split('-c')[1]} connections, one request "
              f"in flight each: {median(key, 'rps'):.0f} req/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms "
              f"(budget p50 <= 3 ms: {'met' if p50 <= 3 else 'NOT met'}; "
              f"p99 <= 10 ms: {'met' if p99 <= 10 else 'NOT met'})")
PY
