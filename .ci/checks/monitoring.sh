#!/usr/bin/env bash
# Monitoring: Prometheus rules (syntax + promtool unit tests, with a firing
# and a quiet case for every alert), the Grafana
# dashboard (Grafana's published TypeScript schema + every PromQL query
# parsed), runbooks for every alert, then end to end against a real
# `orderer dev` network: the scrape lints clean, exports every metric the
# rules and the dashboard use, and a real Prometheus evaluates all rules
# without errors.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
rules=monitoring/prometheus/rules/bftorderer.rules.yml
tests=monitoring/prometheus/tests/bftorderer.test.yml
dashboard=monitoring/grafana/bftorderer-overview.json
venv=.venv

tmp=$(mktemp -d)
# A doctored copy of the unit tests sits next to them (rule paths are relative).
negative="$(dirname "$tests")/.negative-control.yml"
dev_pid=""
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null || true
  [ -n "$dev_pid" ] && kill -INT "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  rm -rf "$tmp" "$negative"
}
trap cleanup EXIT
fail() { echo "monitoring check FAILED: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
npm_dir="${BFT_NPM_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/bftorderer-monitoring-npm}"
if [ ! -x "$npm_dir/node_modules/.bin/tsc" ] || [ ! -d "$npm_dir/node_modules/@grafana/schema" ]; then
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --silent @grafana/schema@13.2.3 typescript@7.0.2 >/dev/null
fi
# PyYAML reads the rules and their unit tests (the same pin as the other checks).
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import yaml' 2>/dev/null ||
  "$venv/bin/pip" install -q --disable-pip-version-check pyyaml==6.0.3 >/dev/null

# --- rules ---------------------------------------------------------------
promtool check rules "$rules" >"$tmp/check.log" 2>&1 || { cat "$tmp/check.log"; fail "promtool check rules"; }
echo "check ok: monitoring rules parse ($(grep -o '[0-9]* rules found' "$tmp/check.log"))"
promtool test rules "$tests" >"$tmp/test.log" 2>&1 || { cat "$tmp/test.log"; fail "promtool test rules"; }
# Negative control: a wrong expectation must make the unit tests fail.
sed 's/is 90% full/is 91% full/' "$tests" >"$negative"
if promtool test rules "$negative" >/dev/null 2>&1; then
  rm -f "$negative"
  fail "promtool test rules passed a deliberately wrong expectation"
fi
rm -f "$negative"
# Every alert of the rules file needs at least one firing case (an
# alert_rule_test whose exp_alerts lists alerts) and one quiet case (one
# whose exp_alerts is empty); an alertname no rule defines is refused too,
# since promtool passes a quiet case of a misspelt alert.
cat >"$tmp/cases.py" <<'PY'
import sys, yaml
rules_path, tests_path = sys.argv[1], sys.argv[2]
alerts = [r["alert"] for g in yaml.safe_load(open(rules_path))["groups"] for r in g["rules"] if "alert" in r]
firing, quiet, unknown = set(), set(), set()
for test in yaml.safe_load(open(tests_path))["tests"]:
    for case in test.get("alert_rule_test") or []:
        name = case["alertname"]
        (firing if case.get("exp_alerts") else quiet).add(name)
        if name not in alerts:
            unknown.add(name)
problems = [f"{a} has no firing case (an alert_rule_test for it whose exp_alerts is not empty)"
            for a in alerts if a not in firing]
problems += [f"{a} has no quiet case (an alert_rule_test for it with exp_alerts: [])" for a in alerts if a not in quiet]
problems += [f"{n} is tested in {tests_path} but no rule of {rules_path} defines it" for n in sorted(unknown)]
if problems or not alerts:
    sys.exit("\n".join(problems or [f"no alerts in {rules_path}"]))
print(len(alerts))
PY
alerts=$("$venv/bin/python" "$tmp/cases.py" "$rules" "$tests") || fail "the unit tests in $tests do not cover every alert of $rules (see above)"
# Negative control: without BftLeaderFlapping's quiet cases the coverage check must fail and say so.
"$venv/bin/python" - "$tests" "$tmp/no-quiet.yml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for test in doc["tests"]:
    test["alert_rule_test"] = [c for c in test.get("alert_rule_test") or []
                               if c["alertname"] != "BftLeaderFlapping" or c.get("exp_alerts")]
yaml.safe_dump(doc, open(sys.argv[2], "w"))
PY
if "$venv/bin/python" "$tmp/cases.py" "$rules" "$tmp/no-quiet.yml" >/dev/null 2>"$tmp/no-quiet.log" ||
  ! grep -q "BftLeaderFlapping has no quiet case" "$tmp/no-quiet.log"; then
  cat "$tmp/no-quiet.log"
  fail "negative control: the coverage check accepted unit tests without a quiet case for BftLeaderFlapping"
fi
echo "check ok: monitoring promtool unit tests pass; each of the $alerts alerts has a firing and a quiet case (a test without one fails)"
for url in $(grep -o 'runbook_url: "[^"]*"' "$rules" | cut -d'"' -f2); do
  [ -f "$url" ] || fail "runbook $url (named by $rules) does not exist"
done
echo "check ok: monitoring every alert has a runbook under docs/runbooks"

# --- dashboard -----------------------------------------------------------
mkdir -p "$tmp/ts"
ln -s "$npm_dir/node_modules" "$tmp/ts/node_modules"
cat >"$tmp/ts/tsconfig.json" <<'EOF'
{ "compilerOptions": { "strict": true, "noEmit": true, "module": "esnext", "moduleResolution": "bundler",
  "target": "es2020", "skipLibCheck": true }, "files": ["dashboard.ts"] }
EOF
# Type-checks a dashboard JSON file against @grafana/schema's Dashboard
# (object literal + `satisfies`: literal types kept, unknown keys refused).
schema_check() {
  {
    echo "import type { Dashboard } from '@grafana/schema';"
    printf 'export const dashboard = '
    cat "$1"
    echo ' satisfies Dashboard;'
  } >"$tmp/ts/dashboard.ts"
  "$tmp/ts/node_modules/.bin/tsc" -p "$tmp/ts/tsconfig.json"
}
schema_check "$dashboard" || fail "$dashboard does not match @grafana/schema's Dashboard type"
sed 's/"schemaVersion": 39/"schemaVersion": "39"/' "$dashboard" >"$tmp/bad-dashboard.json"
schema_check "$tmp/bad-dashboard.json" >/dev/null 2>&1 && fail "the schema check accepted a dashboard with a string schemaVersion"
echo "check ok: monitoring dashboard matches Grafana's published schema (@grafana/schema Dashboard, tsc strict)"

# Every query of the dashboard, with its template variables filled in, as a
# throwaway recording rule, so that promtool parses each PromQL expression.
python3 - "$dashboard" "$tmp/dashboard-queries.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        exprs.extend(t["expr"] for t in p.get("targets", []))
        walk(p.get("panels", []))
walk(d["panels"])
vars_ = {v["name"] for v in d["templating"]["list"]}
assert {"channel", "node"} <= vars_, f"template variables channel and node are required, found {vars_}"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$channel", ".*").replace("$node", ".*")
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")

PY
promtool check rules "$tmp/dashboard-queries.yml" >"$tmp/dq.log" 2>&1 || { cat "$tmp/dq.log"; fail "a dashboard query does not parse"; }
echo "check ok: monitoring dashboard PromQL parses ($(grep -o '[0-9]* rules found' "$tmp/dq.log" | cut -d' ' -f1) queries)"

# --- end to end ----------------------------------------------------------
[ -x target/release/orderer ] || cargo build --release -q -p orderer
port=$((23000 + RANDOM % 900 * 10))
target/release/orderer dev --dir "$tmp/net" --base-port "$port" --demo 200 >"$tmp/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do
  grep -qs "runs until Ctrl-C" "$tmp/dev.log" && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$tmp/dev.log"; fail "orderer dev exited"; }
  sleep 1
done
grep -q "demo: submitted=200 accepted=200" "$tmp/dev.log" || { cat "$tmp/dev.log"; fail "demo load"; }
ops="127.0.0.1:$((port + 4))"
curl --silent --show-error --max-time 10 "http://$ops/metrics" >"$tmp/scrape.txt"
promtool check metrics <"$tmp/scrape.txt" >"$tmp/lint.log" 2>&1 || { cat "$tmp/lint.log"; fail "promtool check metrics"; }
echo "check ok: monitoring a live node's /metrics passes promtool check metrics ($(grep -c '^bft_' "$tmp/scrape.txt") series)"
# The event-fed figures saw the demo load on this node.
for series in bft_blocks_committed_total bft_envelope_commit_latency_seconds_count \
  bft_store_commit_duration_seconds_count bft_block_envelopes_count bft_submit_results_total; do
  awk -v n="$series" '$1 ~ "^"n"[{ ]" && $2 > 0 { found = 1 } END { exit !found }' "$tmp/scrape.txt" \
    || fail "$series is not above 0 on a node that ordered the demo load"
done
echo "check ok: monitoring blocks, envelope commit latency, fsync and submit outcomes were measured during the demo load"

cat >"$tmp/coverage.py" <<'PY'
import re, sys
rules, queries, scrape = open(sys.argv[1]).read(), open(sys.argv[2]).read(), open(sys.argv[3]).read()
name = re.compile(r"(?<![:\w])(bft_\w+)(?![:\w])")
exported = set()
for line in scrape.splitlines():
    m = re.match(r"(bft_\w+)", line)
    if m:
        exported.add(m.group(1))
def missing(text):
    return sorted({n for n in name.findall(text) if n not in exported})
bad = missing(rules)
if bad:
    sys.exit(f"rules use metrics the node does not export: {bad}")
bad = missing(queries)
if bad:
    sys.exit(f"the dashboard uses metrics the node does not export: {bad}")
used = len(set(name.findall(rules)) | set(name.findall(queries)))
print(f"check ok: monitoring the node exports all {used} metric names the rules and the dashboard use")
PY
python3 "$tmp/coverage.py" "$rules" "$tmp/dashboard-queries.yml" "$tmp/scrape.txt"
{ cat "$rules"; echo "# expr: bft_not_exported_total > 0"; } >"$tmp/bad-rules.yml"
if python3 "$tmp/coverage.py" "$tmp/bad-rules.yml" "$tmp/dashboard-queries.yml" "$tmp/scrape.txt" >/dev/null 2>&1; then
  fail "the coverage check accepted a rule on a metric the node does not export"
fi

prom_port=$((port + 50))
targets=""
for i in 0 1 2 3; do targets="$targets\"127.0.0.1:$((port + 10 * i + 4))\","; done
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $root/$rules
scrape_configs:
  - job_name: bftorderer
    static_configs:
      - targets: [${targets%,}]
EOF
promtool check config "$tmp/prometheus.yml" >/dev/null || fail "generated prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
sleep 30
kill -0 "$prom_pid" 2>/dev/null || { cat "$tmp/prometheus.log"; fail "prometheus exited"; }
api="http://127.0.0.1:$prom_port/api/v1"
curl --silent --show-error --max-time 10 "$api/rules" >"$tmp/rules.json"
curl --silent --show-error --max-time 10 --data-urlencode 'query=up{job="bftorderer"}' "$api/query" >"$tmp/up.json"
curl --silent --show-error --max-time 10 --data-urlencode 'query=channel_instance:bft_envelopes_committed:rate1m' "$api/query" >"$tmp/rate.json"
python3 - "$tmp/rules.json" "$tmp/up.json" "$tmp/rate.json" <<'PY'
import json, sys
rules = json.load(open(sys.argv[1]))["data"]["groups"]
all_rules = [r for g in rules for r in g["rules"]]
bad = [(r["name"], r.get("health"), r.get("lastError")) for r in all_rules if r.get("health") != "ok"]
if bad or not all_rules:
    sys.exit(f"rules not healthy in Prometheus: {bad or 'no rules loaded'}")
up = json.load(open(sys.argv[2]))["data"]["result"]
if len(up) != 4 or any(s["value"][1] != "1" for s in up):
    sys.exit(f"expected 4 targets up, got {up}")
rate = json.load(open(sys.argv[3]))["data"]["result"]
if len(rate) != 4:
    sys.exit(f"expected a throughput series per node from the recording rules, got {rate}")
firing = sorted({r["name"] for r in all_rules if r.get("state") == "firing"})
print(f"check ok: monitoring a real Prometheus scraped 4 nodes for 30 s and evaluated all {len(all_rules)} rules with health ok (firing: {firing or 'none'})")
PY
