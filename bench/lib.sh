# Helpers of the bench/ scripts (sourced, not run): build the binary, start
# nodes in the background and wait for them, stop them on exit. Every wait is
# bounded; every node listens on loopback only.

# The release binary, built incrementally.
build_stele() {
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

# Stops every node started here (SIGTERM, then SIGKILL after 30 s) and removes
# $WORK unless KEEP=1.
stop_nodes() {
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
    if [ -n "${WORK:-}" ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    elif [ -n "${WORK:-}" ]; then
        echo "kept $WORK" >&2
    fi
}

# run_bench LABEL ARGS...: `stele bench ARGS`, bounded by twice the phases plus
# two minutes of setup; with JSON=1 its JSON line, else its table, on stdout.
run_bench() {
    local label=$1
    shift
    local format=()
    if [ "${JSON:-0}" = 1 ]; then format=(--json); fi
    echo "== $label" >&2
    timeout $((2 * DURATION_S + 120)) "$STELE" bench --duration-s "$DURATION_S" \
        --clients "$CLIENTS" --threads "$THREADS" "${format[@]}" "$@"
}
