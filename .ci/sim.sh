#!/usr/bin/env bash
# Simulator budget.
#   CI:      2,000 seeds over n in {4,7} + 200 seeds at n=10, every Byzantine
#            strategy mixed in (f Byzantine replicas per cluster), then the
#            negative controls.
#            Twins (500 seeds), and negative controls (f+1 colluders, f+1
#            twins, deliberate faults in the core).
#   LONG=1:  100,000 seeds over n in {4,7,10} and 100,000 Twins scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p orderer --bin sim
sim=target/release/sim
if [ "${LONG:-0}" = 1 ]; then
  "$sim" --seeds 100000 --nodes 4,7,10
  "$sim" --seeds 100000 --nodes 4,7 --twins 1
else
  "$sim" --seeds 2000 --nodes 4,7
  "$sim" --seeds 200 --start 2000 --nodes 10
  echo "-- Twins: one replica runs twice (same keys, different partitions)"
  "$sim" --seeds 500 --nodes 4,7 --twins 1
fi

echo "-- negative control: f+1 colluding split-brain replicas must break agreement"
"$sim" --seeds 100 --nodes 4 --byzantine 2 --strategy split --expect-violation | tail -n 1
"$sim" --seeds 100 --nodes 7 --byzantine 3 --strategy split --expect-violation | tail -n 1

echo "-- negative control: twins of f+1 replicas must break agreement"
"$sim" --seeds 100 --nodes 4 --twins 2 --expect-violation | tail -n 1
"$sim" --seeds 100 --nodes 7 --twins 3 --expect-violation | tail -n 1

echo "-- negative control: deliberate faults in the core must be caught"
# Same target dir (dependencies are reused); the feature build replaces the
# sim binary, so keep a copy under its own name.
cargo build --release -q -p orderer --features mutants --bin sim
cp target/release/sim target/release/sim-mutants
for m in weak-quorum skip-persist null-on-view-change; do
  echo "mutant $m:"
  target/release/sim-mutants --seeds 1000 --nodes 4,7 --mutant "$m" --expect-violation | tail -n 1
done
echo "mutant commit-on-weak-quorum (against amnesiac Byzantine replicas, which hide their votes in view changes):"
target/release/sim-mutants --seeds 2000 --nodes 4,7 --strategy amnesia --mutant commit-on-weak-quorum --expect-violation | tail -n 1
