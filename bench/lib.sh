# Helpers of the bench/ scripts (sourced, not run): build the binary, start
# nodes in the background and wait for them, stop them on exit. Every wait is
# bounded; every node listens on loopback only.

# The release binary, built incrementally (or $STELE, if set).
build_stele() {
    # STELE set: that binary instead (A/B runs against an older build).
    if [ -n "${STELE:-}" ]; then
        echo "using $STELE" >&2
        return
    fi
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
    cargo build --release --bin stele >&2
    STELE=$CARGO_TARGET_DIR/release/stele
}

# Warns when FOLDER is on tmpfs: fdatasync is free there, and commit figures
# would not mean durable.
warn_if_tmpfs() {
    if [ "$(stat -f -c %T "$1")" = tmpfs ]; then
        echo "warning: $1 is on tmpfs: fdatasync costs nothing there; set BENCH_DIR to a disk folder" >&2
    fi
}

NODE_PIDS=()

# start_node NAME ARGS...: `stele start ARGS` in the background, its stdout in
# $WORK/NAME.out and its log in $WORK/NAME.log.
start_node() {
    local name=$1
    shift
    "$STELE" start "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    NODE_PIDS+=($!)
}

# wait_listening NAME PID: until the node prints `listening on` (at most 60 s).
wait_listening() {
    local name=$1 pid=$2
    for _ in $(seq 600); do
        if grep -q "^listening on " "$WORK/$name.out" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: node $name exited before serving; its log:" >&2
            tail -n 30 "$WORK/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "error: node $name did not serve within 60 s; its log:" >&2
    tail -n 30 "$WORK/$name.log" >&2
    return 1
}

# Stops every node started here: SIGTERM, then SIGKILL after 30 s.
kill_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${NODE_PIDS[@]}"; do
        for _ in $(seq 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
}

# Stops every node started here (kill_nodes) and removes $WORK unless KEEP=1.
stop_nodes() {
    kill_nodes
    if [ -n "${WORK:-}" ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    elif [ -n "${WORK:-}" ]; then
        echo "kept $WORK" >&2
    fi
}

# run_bench LABEL ARGS...: `stele bench ARGS`, bounded by twice the phases plus
# two minutes of setup; with JSON=1 its JSON line, else its table, on stdout.
# STELE_BENCH: another binary's client (A/B runs of older nodes, one client).
run_bench() {
    local label=$1
    shift
    local format=()
    if [ "${JSON:-0}" = 1 ]; then format=(--json); fi
    echo "== $label" >&2
    timeout $((2 * DURATION_S + 120)) "${STELE_BENCH:-$STELE}" bench --duration-s "$DURATION_S" \
        --clients "$CLIENTS" --threads "$THREADS" "${format[@]}" "$@"
}

# ensure_command COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is
# missing (apt-get as root, or through sudo).
ensure_command() {
    local command=$1 package=$2 sudo=()
    if command -v "$command" >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    echo "installing $package (for $command)" >&2
    if ! "${sudo[@]}" apt-get install -y "$package" >&2; then
        "${sudo[@]}" apt-get update >&2
        "${sudo[@]}" apt-get install -y "$package" >&2
    fi
    command -v "$command" >/dev/null 2>&1 || { echo "error: $package gave no $command" >&2; return 1; }
}

# start_stele_cluster NODES BASE_PORT: `stele cluster-init` in $WORK/cluster,
# starts every node, waits for them and for a leader. Sets LEADER
# (host:port) and CLUSTER_ARGS (--url of the leader, every node's --cacert
# and the user token) for `stele bench`. Extra `stele start` flags can be
# given in STELE_START_ARGS, extra `cluster-init` flags in CLUSTER_INIT_ARGS
# (arrays), extra `[cluster]` settings (TOML lines, every node's file, joining
# nodes' too) in CLUSTER_SETTINGS; cluster-init's output is in
# $WORK/cluster-init.out. A function `before_cluster_start`, if the script
# defines one, runs (with NODES) after the layout and before the nodes start,
# e.g. to add a section to each $WORK/cluster/node<i>.toml.
start_stele_cluster() {
    local nodes=$1 base_port=$2 i state= toml
    "$STELE" cluster-init --dir "$WORK/cluster" --nodes "$nodes" --base-port "$base_port" \
        "${CLUSTER_INIT_ARGS[@]}" >"$WORK/cluster-init.out"
    if [ -n "${CLUSTER_SETTINGS:-}" ]; then
        printf '%s\n' "$CLUSTER_SETTINGS" >"$WORK/cluster-settings.toml"
        for toml in "$WORK"/cluster/node*.toml; do
            sed -i "/^node_id = /r $WORK/cluster-settings.toml" "$toml"
        done
    fi
    if declare -F before_cluster_start >/dev/null; then before_cluster_start "$nodes"; fi
    for i in $(seq "$nodes"); do
        start_node "node$i" --config "$WORK/cluster/node$i.toml" "${STELE_START_ARGS[@]}"
    done
    for i in $(seq "$nodes"); do
        wait_listening "node$i" "${NODE_PIDS[$((${#NODE_PIDS[@]} - nodes + i - 1))]}"
    done
    # The leader, as node 1 sees it: GET /node/state names it once elected.
    LEADER=
    for _ in $(seq 600); do
        state=$(curl -sS --max-time 2 --cacert "$WORK/cluster/node1/tls/node.crt" \
            "https://127.0.0.1:$base_port/node/state" 2>/dev/null || true)
        LEADER=$(printf '%s' "$state" | grep -o '"leader_address":"[^"]*"' | cut -d'"' -f4 || true)
        if [ -n "$LEADER" ]; then break; fi
        sleep 0.1
    done
    if [ -z "$LEADER" ]; then
        echo "error: no leader within 60 s; last state: ${state:-none}" >&2
        return 1
    fi
    # Every node's certificate: the leader may change, and clients follow it.
    CLUSTER_ARGS=(--url "https://$LEADER" --token-file "$WORK/cluster/node1/user.token")
    for i in $(seq "$nodes"); do
        CLUSTER_ARGS+=(--cacert "$WORK/cluster/node$i/tls/node.crt")
    done
    echo "stele cluster up: $nodes nodes on 127.0.0.1:$base_port.., leader $LEADER" >&2
}

# The machine, for the logs and results.
machine_line() {
    echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

# collect_runs OUT FILE...: the JSON lines of FILE... as one JSON array in OUT.
collect_runs() {
    local out=$1
    shift
    mkdir -p "$(dirname "$out")"
    cat "$@" | jq -s '.' >"$out"
    echo "wrote $out" >&2
}
