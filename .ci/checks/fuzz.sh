#!/usr/bin/env bash
# Fuzz smoke (optional): builds the cargo-fuzz targets and runs each one for
# a few seconds over its kept corpus. Off unless FUZZ_SMOKE=1 and cargo-fuzz
# is installed: building the instrumented targets takes minutes, and every
# corpus input is already replayed without the fuzzer by
# `cargo test -p orderer --test fuzz_corpus` (part of the unit and
# integration tests). The long runs are in docs/fuzzing.md, never in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${FUZZ_SMOKE:-0}" != 1 ]; then
  echo "check skipped: fuzz smoke (set FUZZ_SMOKE=1 to run it; the corpus is replayed by the fuzz_corpus test)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1 && ! cargo install cargo-fuzz --locked >/dev/null 2>&1; then
  echo "check skipped: fuzz smoke (cargo-fuzz is not installed and cannot be installed here)"
  exit 0
fi
cd fuzz
targets=$(RUSTC_BOOTSTRAP=1 cargo fuzz list)
RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none -O
artifacts=$(mktemp -d)
trap 'rm -rf "$artifacts"' EXIT
for t in $targets; do
  # 5 s each (9 targets: under a minute); a crash fails the check.
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -O "$t" -- -max_total_time=5 -timeout=10 \
    -artifact_prefix="$artifacts/" >"$artifacts/$t.log" 2>&1; then
    tail -40 "$artifacts/$t.log"
    echo "fuzz smoke FAILED: $t"
    exit 1
  fi
  echo "$t: $(grep -E '^Done' "$artifacts/$t.log" || echo done)"
done
echo "check ok: fuzz smoke ($(echo $targets | wc -w) targets, 5 s each, no crash)"
