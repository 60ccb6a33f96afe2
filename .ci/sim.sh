#!/usr/bin/env bash
# Simulator budget.
#   CI:      2,000 seeds over n in {4,7} + 200 seeds at n=10, every Byzantine
#            strategy mixed in (f Byzantine replicas per cluster), then the
#            negative controls.
#   LONG=1:  100,000 seeds over n in {4,7,10}.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p orderer --bin sim
sim=target/release/sim
if [ "${LONG:-0}" = 1 ]; then
  "$sim" --seeds 100000 --nodes 4,7,10
else
  "$sim" --seeds 2000 --nodes 4,7
  "$sim" --seeds 200 --start 2000 --nodes 10
fi

echo "-- negative control: f+1 colluding split-brain replicas must break agreement"
"$sim" --seeds 100 --nodes 4 --byzantine 2 --strategy split --expect-violation | tail -n 1
"$sim" --seeds 100 --nodes 7 --byzantine 3 --strategy split --expect-violation | tail -n 1

echo "-- negative control: deliberate faults in the core must be caught"
cargo build --release -q -p orderer --features mutants --bin sim --target-dir target/mutants
for m in weak-quorum skip-persist null-on-view-change; do
  echo "mutant $m:"
  target/mutants/release/sim --seeds 1000 --nodes 4,7 --mutant "$m" --expect-violation | tail -n 1
done
