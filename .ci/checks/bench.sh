#!/usr/bin/env bash
# Benchmark smoke (not a timed test): a 10-second run of `orderer bench` on
# 4 real processes (MAC fast path) and a 3-second one with every consensus
# message signed must commit envelopes on every node and print the summary
# line; and `orderer bench crypto` must print the per-operation costs.
# About 40 seconds once built. docs/bench.md describes the options.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p orderer --bin orderer
out=$(mktemp)
json=$(mktemp)
trap 'rm -f "$out" "$json"' EXIT
target/release/orderer bench crypto | tee "$out" | tail -n 1
grep -q '^bench-crypto: nodes=4 ' "$out"
echo "check ok: bench crypto measured signature and MAC costs"

# smoke AUTH SECS: runs the bench and checks its last line and per-node figures.
smoke() {
  local auth=$1 secs=$2 port=$((23000 + RANDOM % 900 * 10))
  target/release/orderer bench --auth "$auth" --duration "$secs" --base-port "$port" --json "$json" > "$out" 2>&1 ||
    { cat "$out"; exit 1; }
  line=$(tail -n 1 "$out")
  echo "$line"
  echo "$line" | grep -Eq "^bench: nodes=4 auth=$auth env_bytes=1024 tps=[0-9]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+ bound_tps=[0-9]+ rss_mb_max=[0-9]+\$" ||
    { cat "$out"; exit 1; }
  tps=$(echo "$line" | sed -E 's/.* tps=([0-9]+) .*/\1/')
  [ "$tps" -gt 0 ] || { echo "nothing committed"; exit 1; }
  # tps is the minimum over the nodes: every node committed; the JSON has them all.
  [ "$(grep -c '"committed"' "$json")" -eq 5 ] || { cat "$json"; echo "per-node figures missing"; exit 1; }
}
smoke mac 10
echo "check ok: bench smoke committed envelopes on all 4 nodes ($line)"
smoke signatures 3
echo "check ok: bench smoke with every message signed committed envelopes on all 4 nodes ($line)"
