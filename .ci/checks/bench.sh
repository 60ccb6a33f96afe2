#!/usr/bin/env bash
# Benchmark smoke (not a timed test): a 10-second run of `orderer bench` on
# 4 real processes must commit envelopes and print its summary line; and
# `orderer bench crypto` must print the per-operation costs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p orderer
out=$(mktemp)
trap 'rm -f "$out"' EXIT
target/release/orderer bench crypto | tee "$out" | tail -n 1
grep -q '^bench-crypto: nodes=4 ' "$out"
echo "check ok: bench crypto measured signature and MAC costs"
port=$((23000 + RANDOM % 1000 * 10))
target/release/orderer bench --duration 10 --base-port "$port" > "$out" 2>&1 || { cat "$out"; exit 1; }
line=$(tail -n 1 "$out")
echo "$line"
echo "$line" | grep -Eq '^bench: nodes=4 auth=mac env_bytes=1024 tps=[0-9]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+ bound_tps=[0-9]+ rss_mb_max=[0-9]+$' || { cat "$out"; exit 1; }
tps=$(echo "$line" | sed -E 's/.* tps=([0-9]+) .*/\1/')
[ "$tps" -gt 0 ] || { echo "nothing committed"; exit 1; }
echo "check ok: bench smoke committed envelopes on 4 nodes ($line)"
