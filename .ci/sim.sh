#!/usr/bin/env bash
# Simulator budget. CI: >= 2,000 seeds over n in {4,7} (some 10) plus negative
# controls. LONG=1: >= 100,000 seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p orderer --bin sim
sim=target/release/sim
if [ "${LONG:-0}" = 1 ]; then
  "$sim" --seeds 100000 --nodes 4,7,10
else
  "$sim" --seeds 2000 --nodes 4,7
  "$sim" --seeds 200 --nodes 10
fi
