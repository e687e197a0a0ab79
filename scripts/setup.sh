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
