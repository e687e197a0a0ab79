#!/usr/bin/env bash
# The seeded simulations with many more seeds than CI runs (a nightly job, or
# in the background while working): Raft's whole-node simulation and BFT
# mode's, Byzantine validators included. A failing seed is printed with the
# command that reruns exactly that execution.
#
#   scripts/nightly-sims.sh [raft seeds=1000] [bft seeds=5000]
set -euo pipefail
cd "$(dirname "$0")/.."
raft=${1:-1000}
bft=${2:-5000}
echo "== Raft simulation, $raft seeds (rerun one: STELE_SIM_SEED=<n> cargo test -p stele-consensus --test sim)"
STELE_SIM_SEEDS=$raft cargo test --locked --release -p stele-consensus --test sim seeded -- --nocapture
echo "== BFT simulation, $bft seeds (rerun one: STELE_BFT_SIM_SEED=<n> cargo test -p stele-bft --test sim)"
STELE_BFT_SIM_SEEDS=$bft cargo test --locked --release -p stele-bft --test sim -- --nocapture
