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
