#!/usr/bin/env bash
# Installs what a fresh machine lacks for building and testing Stele.
# A fresh machine has only the Rust toolchain (rustup, cargo, rustc).
set -euo pipefail

have_component() { rustup component list --installed 2>/dev/null | grep -q "^$1"; }

for component in rustfmt clippy; do
    if ! have_component "$component"; then
        echo "setup: installing rustup component $component"
        rustup component add "$component"
    fi
done

# curl (with HTTP/2): tests/e2e/http_server.rs checks that curl over HTTP/2 reads
# the node's early refusals; the test is skipped, with a message, without it.
if ! command -v curl >/dev/null 2>&1; then
    echo "setup: installing curl"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update && apt-get install -y curl
    else
        sudo apt-get update && sudo apt-get install -y curl
    fi
fi

# redis-server, redis-cli and redis-benchmark (Debian's redis-server and
# redis-tools): the RESP tests (tests/e2e/resp.rs, tests/e2e/resp_differential.rs)
# start their own throwaway redis-server as the oracle and drive Stele with
# redis-cli and redis-benchmark; bench/resp.sh compares against it. The packaged
# service is not wanted (CI has no systemd, and a Redis on port 6379 is nobody's
# business here): while the packages install, a policy-rc.d that answers 101
# ("action forbidden", honoured by invoke-rc.d and deb-systemd-invoke) keeps
# their scripts from starting it, unless the machine already has a policy.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 \
    || ! command -v redis-benchmark >/dev/null 2>&1; then
    echo "setup: installing redis-server and redis-tools"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        own_policy=1
    fi
    status=0
    "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y redis-server redis-tools \
        || status=$?
    if [ "$own_policy" -eq 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
    if [ "$status" -ne 0 ]; then exit "$status"; fi
fi
