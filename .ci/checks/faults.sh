#!/usr/bin/env bash
# Fault tests with real orderer processes in network namespaces (short mode):
# SIGKILL of the primary, of a random node and of every node, a node
# partitioned away, a split, one-way drops and a slow node, under continuous
# load; every acknowledged envelope must be in exactly one committed block
# and all ledgers identical. 4 nodes, then 7.
set -euo pipefail
cd "$(dirname "$0")/../.."
for n in 4 7; do
  out=$(mktemp)
  bash deploy/faults/run.sh --short --nodes "$n" 2>&1 | tee "$out" | grep -E '^(round|faults: (clients|heights|stalled|nodes=))'
  line=$(tail -n 1 "$out")
  rm -f "$out"
  echo "$line" | grep -Eq "^faults: nodes=$n rounds=[0-9]+ acked=[1-9][0-9]* committed=[0-9]+ lost=0 duplicated=0 divergent=0$" || { echo "fault test at n=$n failed: $line"; exit 1; }
  echo "check ok: fault test n=$n ($line)"
done
