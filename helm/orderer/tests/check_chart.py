#!/usr/bin/env python3
"""Tests of the orderer chart on its rendered output (run by .ci/checks/helm.sh).

    check_chart.py --helm HELM --orderer ORDERER_BIN [--promtool PROMTOOL]

Renders the chart with default values, each example and chosen values; checks
the manifests with kubernetes-validate, then the properties the chart promises
(PDB = f, hardened pods, probes, config accepted by `orderer check-config`,
schema refusals, entrypoint id derivation), and finally starts four orderers
laid out as the pods would be and waits for /readyz. Prints
`check ok: helm <what>` per check and exits non-zero at the first failure.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "orderer"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
ENTRYPOINT = REPO / "deploy" / "docker-entrypoint.sh"
K8S_VERSION = "1.30.0"
# The chart's kubeVersion floor, the version above, the newest the tool ships.
K8S_VERSIONS_ALL = ("1.25.0", "1.30.0", "1.37.0")
CRD_KINDS = {"Certificate", "ServiceMonitor", "PrometheusRule"}
RELEASE = "t"
FULLNAME = "t-orderer"
OUTPUT_BYTES_MAX = 16 * 1024 * 1024


class CheckFailed(Exception):
    pass


def ok(what):
    print(f"check ok: helm {what}", flush=True)


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def run(cmd, env=None, check=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if len(proc.stdout) > OUTPUT_BYTES_MAX:
        raise CheckFailed(f"{cmd[0]} printed more than {OUTPUT_BYTES_MAX} bytes")
    if check and proc.returncode != 0:
        raise CheckFailed(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


class Chart:
    def __init__(self, helm, orderer, promtool, work):
        self.helm = helm
        self.orderer = orderer
        self.promtool = promtool
        self.work = work
        self.renders = 0
        self.rendered = []

    def template_cmd(self, files=(), sets=(), chart_dir=CHART):
        cmd = [self.helm, "template", RELEASE, str(chart_dir), "--namespace", "ns"]
        for f in files:
            cmd += ["-f", str(f)]
        for s in sets:
            cmd += ["--set", s]
        return cmd

    def render(self, files=(), sets=(), chart_dir=CHART):
        """Rendered manifests as (text, list of documents)."""
        self.renders += 1
        text = run(self.template_cmd(files, sets, chart_dir)).stdout
        docs = [d for d in yaml.safe_load_all(text) if d]
        self.rendered.append(text)
        return text, docs

    def refuses(self, files=(), sets=(), reason=""):
        proc = run(self.template_cmd(files, sets), check=False)
        expect(proc.returncode != 0, f"helm template accepted {list(sets)} {list(map(str, files))}")
        if reason:
            expect(reason in proc.stderr, f"refusal of {list(sets)} does not mention {reason!r}: {proc.stderr}")
        return proc.stderr


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    expect(len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def orderer_yaml(docs):
    cm = one(docs, "ConfigMap", f"{FULLNAME}-config")
    return yaml.safe_load(cm["data"]["orderer.yaml"])


def values_of(files):
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    for f in files:
        over = yaml.safe_load(Path(f).read_text()) or {}
        merged = deep_merge(merged, over)
    return merged


def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def kubernetes_validate(venv_bin, path, label, version=K8S_VERSION):
    proc = run([str(venv_bin / "kubernetes-validate"), "--strict", "--quiet", "-k", version, str(path)],
               check=False)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and not any(f"kind {k} " in line for k in CRD_KINDS)]
    expect(proc.returncode == 0 and not problems, f"kubernetes-validate on {label}:\n" + "\n".join(problems))


def check_kubernetes_validate(chart, venv_bin, cases):
    for label, files, sets in cases:
        text, docs = chart.render(files, sets)
        path = chart.work / f"{label}.yaml"
        path.write_text(text)
        kubernetes_validate(venv_bin, path, label)
        kinds = sorted({d["kind"] for d in docs})
        ok(f"{label}: {len(docs)} manifests ({', '.join(kinds)}) valid for Kubernetes {K8S_VERSION} (strict)")


def check_every_render_valid(chart, venv_bin):
    """Every manifest any test rendered passes kubernetes-validate --strict (one run over all)."""
    path = chart.work / "every-render.yaml"
    text = "\n---\n".join(chart.rendered)
    path.write_text(text)
    for version in K8S_VERSIONS_ALL:
        kubernetes_validate(venv_bin, path, f"every render (Kubernetes {version})", version)
    count = sum(1 for d in yaml.safe_load_all(text) if d)
    ok(f"all {count} manifests of the {len(chart.rendered)} renders of these tests are valid for Kubernetes "
       f"{', '.join(K8S_VERSIONS_ALL)} (strict)")


def check_pdb_is_f(chart):
    for n in (4, 7, 10):
        _, docs = chart.render(sets=[f"replicas={n}", f"channel.consenters={n}"])
        pdb = one(docs, "PodDisruptionBudget")
        f = (n - 1) // 3
        expect(pdb["spec"]["maxUnavailable"] == f, f"n={n}: maxUnavailable {pdb['spec']['maxUnavailable']} != f={f}")
        ok(f"PDB maxUnavailable = f = {f} for {n} consenters")
    for n in (1, 3, 5, 6, 9):
        _, docs = chart.render(sets=[f"replicas={n}", f"channel.consenters={n}"])
        got = one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"]
        expect(got == (n - 1) // 3, f"n={n}: maxUnavailable {got} != f={(n - 1) // 3}")
    ok("PDB maxUnavailable = floor((n-1)/3) also for n = 1, 3, 5, 6, 9 (not n/3)")
    _, docs = chart.render(files=[CHART / "examples" / "org1-of-consortium.yaml"])
    expect(one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1, "org1 example: f of the 4-consenter channel")
    ok("PDB of 2 pods of a 4-consenter channel allows f = 1 (channel-wide f, not per release)")
    _, docs = chart.render(sets=["replicas=7", "podDisruptionBudget.maxUnavailable=1"])
    expect(one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1, "override below f")
    chart.refuses(sets=["replicas=7", "podDisruptionBudget.maxUnavailable=3"], reason="above f=2")
    ok("PDB override below f is taken; above f (3 for 7 consenters) is refused")


def pod_spec(docs):
    return one(docs, "StatefulSet")["spec"]["template"]["spec"]


def check_pod_hardening(chart, cases):
    for label, files, sets in cases:
        _, docs = chart.render(files, sets)
        spec = pod_spec(docs)
        psc = spec["securityContext"]
        expect(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0, f"{label}: pod may run as root")
        expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: pod seccomp")
        expect(spec.get("automountServiceAccountToken") is False, f"{label}: service account token mounted")
        containers = spec["containers"] + spec.get("initContainers", [])
        for c in containers:
            sc = c.get("securityContext", {})
            expect(sc.get("runAsNonRoot") is True, f"{label}/{c['name']}: runAsNonRoot")
            expect(sc.get("readOnlyRootFilesystem") is True, f"{label}/{c['name']}: writable root filesystem")
            expect(sc.get("allowPrivilegeEscalation") is False, f"{label}/{c['name']}: privilege escalation")
            expect(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}/{c['name']}: capabilities not dropped")
            expect(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}/{c['name']}: seccomp")
            expect("limits" in c.get("resources", {}) and "requests" in c["resources"], f"{label}/{c['name']}: resources")
        ok(f"{label}: {len(containers)} containers non-root, read-only root FS, ALL capabilities dropped, "
           "no privilege escalation, seccomp RuntimeDefault, resources set")


def check_probes(chart):
    _, docs = chart.render(sets=["config.operations.listen=0.0.0.0:9555"])
    spec = pod_spec(docs)
    orderer = next(c for c in spec["containers"] if c["name"] == "orderer")
    ports = {p["name"]: p["containerPort"] for p in orderer["ports"]}
    expect(ports.get("operations") == 9555, f"operations containerPort {ports.get('operations')} != 9555")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = orderer[probe]["httpGet"]
        expect(got["path"] == path and got["port"] == "operations", f"{probe} hits {got}")
    expect(orderer_yaml(docs)["operations"]["listen"] == "0.0.0.0:9555", "operations.listen not rendered")
    headless = one(docs, "Service", f"{FULLNAME}-headless")
    expect({p["name"]: p["port"] for p in headless["spec"]["ports"]}["operations"] == 9555, "service port")
    ok("startup and liveness probes hit /healthz, readiness /readyz, on the operations port taken from "
       "config.operations.listen (9555 here)")


def check_config(chart, files, label, offset, ordinal):
    """The rendered orderer.yaml passes `orderer check-config` run through the entrypoint."""
    _, docs = chart.render(files)
    cfg_path = chart.work / f"{label}-orderer.yaml"
    cm = one(docs, "ConfigMap", f"{FULLNAME}-config")
    cfg_path.write_text(cm["data"]["orderer.yaml"])
    env = entry_env(chart, {"POD_NAME": f"{FULLNAME}-{ordinal}", "CONSENTER_ID_OFFSET": str(offset)})
    out = run(["sh", str(ENTRYPOINT), "check-config", "--config", str(cfg_path)], env=env).stdout
    resolved = yaml.safe_load(out)
    want_id = ordinal + offset + 1
    expect(resolved["node"]["id"] == want_id, f"{label}: node.id {resolved['node']['id']} != {want_id}")
    spec = pod_spec(docs)
    env_names = {e["name"] for e in spec["containers"][0]["env"]}
    expect({"POD_NAME", "CONSENTER_ID_OFFSET"} <= env_names, f"{label}: entrypoint env missing")
    expect(resolved["operations"]["listen"].startswith("0.0.0.0:"), f"{label}: operations not reachable in the pod")
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    for key in ("data_dir", "bootstrap_dir"):
        expect(resolved["node"][key] in mounts, f"{label}: node.{key} {resolved['node'][key]} is not a mount")
    ok(f"{label}: rendered orderer.yaml passes `orderer check-config`; pod {FULLNAME}-{ordinal} is consenter "
       f"{want_id}; data and bootstrap dirs are mounted")
    return cfg_path, resolved


def check_config_negative(chart, cfg_path):
    bad = yaml.safe_load(cfg_path.read_text())
    bad["logging"]["format"] = "xml"
    bad_path = chart.work / "bad-orderer.yaml"
    bad_path.write_text(yaml.safe_dump(bad))
    proc = run([chart.orderer, "check-config", "--config", str(bad_path)], env=entry_env(chart, {}), check=False)
    expect(proc.returncode != 0 and "logging.format" in proc.stderr, "check-config accepted logging.format=xml")
    ok("negative control: `orderer check-config` refuses the rendered config with logging.format=xml")


def check_every_key_reachable(chart, resolved):
    """Every key `orderer check-config` knows (except node.id) can be set through `config:`."""
    full = dict(resolved)
    full["node"] = {k: v for k, v in resolved["node"].items() if k != "id"}
    # Change every value so the test cannot pass on defaults alone.
    changed = bump(full)
    path = chart.work / "all-keys.yaml"
    path.write_text(yaml.safe_dump({"config": changed}))
    _, docs = chart.render([path])
    rendered = orderer_yaml(docs)
    expect(rendered == changed, f"config rendered differently:\n{rendered}\n!=\n{changed}")
    keys = count_leaves(changed)
    cfg_path = chart.work / "all-keys-orderer.yaml"
    cfg_path.write_text(one(docs, "ConfigMap", f"{FULLNAME}-config")["data"]["orderer.yaml"])
    out = run([chart.orderer, "check-config", "--config", str(cfg_path)], env=entry_env(chart, {})).stdout
    resolved_again = yaml.safe_load(out)
    resolved_again["node"].pop("id")
    expect(resolved_again == changed, f"orderer resolved the rendered config differently:\n{resolved_again}")
    ok(f"all {keys} orderer.yaml keys but node.id are settable through config: and reach the orderer as given")


def bump(tree):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out[k] = bump(v)
        elif isinstance(v, bool):
            out[k] = not v
        elif isinstance(v, int):
            out[k] = v + 1
        elif k == "listen":
            host, port = v.rsplit(":", 1)
            out[k] = f"{host}:{int(port) + 100}"
        elif k == "format":
            out[k] = "text" if v == "json" else "json"
        elif k == "msp_id":
            out[k] = v + "X"
        elif k == "level":
            out[k] = "debug"
        else:
            out[k] = v + "2"
    return out


def count_leaves(tree):
    return sum(count_leaves(v) if isinstance(v, dict) else 1 for v in tree.values())


def check_schema_refusals(chart):
    cases = [
        (["replicas=-1"], "replicas"),
        (["replicas=0"], "replicas"),
        (["unknownKey=1"], "unknownKey"),
        (["config.cluster.bogus=1"], "bogus"),
        (["config.node.id=3"], "id"),
        (["config.logging.format=xml"], "format"),
        (["config.api.listen=7051"], "listen"),
        (["image.pullPolicy=Sometimes"], "pullPolicy"),
        (["affinity.podAntiAffinity=maybe"], "podAntiAffinity"),
        (["identity.secretNamePattern=orderer-identity"], "secretNamePattern"),
    ]
    for sets, reason in cases:
        chart.refuses(sets=sets, reason=reason)
    ok(f"the schema refuses {len(cases)} wrong values at install time (negative replicas, unknown keys, "
       "node.id, bad enums, listen without port, secret pattern without {id})")
    chart.refuses(sets=["replicas=4", "consenterIdOffset=2", "channel.consenters=4"], reason="channel.consenters")
    chart.refuses(sets=["config.node.msp_dir=/etc/msp"], reason="config.node.msp_dir")
    chart.refuses(sets=["genesis.configMap=a", "genesis.secret=b"], reason="only one of genesis")
    chart.refuses(sets=["certManager.enabled=true"], reason="issuerRef.name")
    ok("the chart refuses ids beyond the channel, an identity path off the identity volume, two genesis "
       "sources, cert-manager without an issuer")


def check_topology(chart):
    _, docs = chart.render(sets=["replicas=4", "consenterIdOffset=3", "channel.consenters=7"])
    sts = one(docs, "StatefulSet")
    spec = sts["spec"]["template"]["spec"]
    expect(sts["spec"]["podManagementPolicy"] == "Parallel", "podManagementPolicy must be Parallel")
    expect(len(sts["spec"]["volumeClaimTemplates"]) == 1, "one PVC per pod")
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    expect(anti["topologyKey"] == "kubernetes.io/hostname", "hard anti-affinity by node")
    expect(spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone", "zone spread")
    ok("StatefulSet: Parallel pod management, one PVC per pod, hard anti-affinity per node, spread over zones")

    projected = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    names = [s["secret"]["name"] for s in projected]
    expect(names == [f"{FULLNAME}-identity-{i}" for i in (4, 5, 6, 7)], f"identity secrets {names}")
    orderer = next(c for c in spec["containers"] if c["name"] == "orderer")
    expect("secrets" not in {m["name"] for m in orderer["volumeMounts"]}, "orderer container mounts every identity")
    ok("pods 0..3 with consenterIdOffset=3 take Secrets t-orderer-identity-4..7; only the init container "
       "mounts them, the orderer sees its own identity only")

    services = [d for d in docs if d["kind"] == "Service"]
    per_pod = [s for s in services if "bftorderer.io/consenter-id" in s["metadata"]["labels"]]
    expect([s["metadata"]["labels"]["bftorderer.io/consenter-id"] for s in per_pod] == ["4", "5", "6", "7"],
           "per-pod services ids")
    for i, s in enumerate(per_pod):
        expect(s["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{FULLNAME}-{i}", "per-pod selector")
        expect(s["spec"]["publishNotReadyAddresses"] is True, "per-pod service hides unready consenters")
    headless = one(docs, "Service", f"{FULLNAME}-headless")
    expect(headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"], "headless")
    ok("headless Service and 4 per-pod Services publish consenters before they are ready (readiness needs the links)")

    policy = one(docs, "NetworkPolicy")
    ports = sorted(p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"])
    expect(ports == ["admin", "api", "cluster", "operations"], f"network policy ports {ports}")
    expect(policy["spec"]["policyTypes"] == ["Ingress"], "policy types")
    ok("NetworkPolicy admits ingress on the cluster, api, admin and operations ports only")


def check_monitoring(chart):
    _, docs = chart.render(sets=["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"])
    sm = one(docs, "ServiceMonitor")
    endpoint = sm["spec"]["endpoints"][0]
    expect(endpoint["port"] == "operations", "service monitor port")
    rule = one(docs, "PrometheusRule")
    # The rules select their targets by job name: the ServiceMonitor must give its targets that name.
    job = [r.get("replacement") for r in endpoint.get("relabelings", [])
           if r.get("targetLabel") == "job" and r.get("action", "replace") == "replace" and not r.get("sourceLabels")]
    selected = set(re.findall(r'\bjob\s*=\s*"([^"]*)"', yaml.safe_dump(rule["spec"]["groups"])))
    expect(len(job) == 1, f"the ServiceMonitor does not set the job label its targets get: {endpoint}")
    expect(selected <= {job[0]}, f"the rules select job(s) {sorted(selected)}, the ServiceMonitor names its job {job[0]!r}")
    ok(f"ServiceMonitor targets get job={job[0]!r}, the job the PrometheusRule's rules select")
    rules_path = chart.work / "rules.yaml"
    rules_path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    expect(len(alerts) >= 1, "no alert rules")
    if chart.promtool:
        run([chart.promtool, "check", "rules", str(rules_path)])
        ok(f"PrometheusRule ({len(alerts)} alerts) passes `promtool check rules`; ServiceMonitor scrapes operations")
    else:
        ok(f"PrometheusRule ({len(alerts)} alerts) rendered (promtool absent: rules not checked)")
    check_rules_from_files(chart)
    _, docs = chart.render()
    expect(not [d for d in docs if d["kind"] in CRD_KINDS], "monitoring CRDs rendered by default")
    ok("ServiceMonitor and PrometheusRule are off by default (no CRDs required)")

    _, docs = chart.render(sets=["certManager.enabled=true", "certManager.issuerRef.name=org-tls-ca"])
    certs = [d for d in docs if d["kind"] == "Certificate"]
    expect(len(certs) == 4, "one Certificate per consenter")
    spec = pod_spec(docs)
    projected = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
    expect(sum(1 for s in projected if s["secret"]["name"].startswith(f"{FULLNAME}-tls-")) == 4, "TLS secrets")
    ok("certManager.enabled: one Certificate per consenter, mounted as its tls/ folder")


def check_rules_from_files(chart):
    """Rule files in files/prometheus/ replace the minimal rule set (a chart copy without the shipped rules)."""
    copy = chart.work / "chart-with-rules"
    shutil.copytree(CHART, copy)
    for old in (copy / "files" / "prometheus").glob("*.y*ml"):
        old.unlink()
    sets = ["metrics.prometheusRule.enabled=true"]
    _, docs = chart.render(sets=sets, chart_dir=copy)
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    expect([g["name"] for g in groups] == [f"bftorderer-{FULLNAME}"], f"minimal rule set not used: {groups}")
    rules = {"groups": [{"name": "from-file", "rules": [
        {"alert": "FromFile", "expr": "bft_view_change_in_progress == 1", "for": "10m"}]}]}
    (copy / "files" / "prometheus" / "orderer.rules.yaml").write_text(yaml.safe_dump(rules))
    _, docs = chart.render(sets=sets, chart_dir=copy)
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    expect([g["name"] for g in groups] == ["from-file"], f"rules from files/prometheus not used: {groups}")
    (copy / "files" / "prometheus" / "orderer.rules.yaml").write_text("rules: []\n")
    proc = run(chart.template_cmd(sets=sets, chart_dir=copy), check=False)
    expect(proc.returncode != 0 and "not a Prometheus rules file" in proc.stderr, "a rules file without groups")
    ok("rule files in files/prometheus/ replace the minimal rules; a file without groups: is refused")
    check_repository_rules(chart)


def rule_files(folder):
    """Prometheus rules files (top-level groups:) under folder, by name."""
    found = {}
    for path in sorted(folder.rglob("*.y*ml")) if folder.is_dir() else []:
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "groups" in doc:
            found[path.name] = path
    return found


def rules_differ(chart_rules, repo_rules):
    """Why the chart's rule files differ from monitoring/prometheus/'s, or None when they are the same bytes."""
    if chart_rules.keys() != repo_rules.keys():
        return (f"helm/orderer/files/prometheus/ has rule files {sorted(chart_rules)}, "
                f"monitoring/prometheus/ has {sorted(repo_rules)}")
    changed = [n for n in repo_rules if chart_rules[n].read_bytes() != repo_rules[n].read_bytes()]
    if changed:
        return f"helm/orderer/files/prometheus/{', '.join(changed)} differ(s) from monitoring/prometheus/"
    return None


def check_repository_rules(chart):
    """The chart ships monitoring/prometheus/'s rule files unchanged, and its PrometheusRule carries them."""
    repo_rules = rule_files(REPO / "monitoring" / "prometheus")
    expect(repo_rules, "no Prometheus rules files (with groups:) under monitoring/prometheus/")
    shipped = rule_files(CHART / "files" / "prometheus")
    why = rules_differ(shipped, repo_rules)
    expect(why is None, f"{why}: the packaged chart would install other rules than monitoring/'s; copy them: "
           + "; ".join(f"cp {p.relative_to(REPO)} helm/orderer/files/prometheus/" for p in repo_rules.values()))
    # Negative control: a chart copy whose rules were edited is told apart.
    copy = chart.work / "chart-with-edited-rules"
    shutil.copytree(CHART, copy)
    edited = next(iter(rule_files(copy / "files" / "prometheus").values()))
    edited.write_text(edited.read_text().replace("for: 2m", "for: 3m", 1))
    expect(rules_differ(rule_files(copy / "files" / "prometheus"), repo_rules) is not None,
           "negative control: an edited copy of the rules passed as equal to monitoring/prometheus/")
    ok(f"helm/orderer/files/prometheus/ holds the {len(repo_rules)} rule file(s) of monitoring/prometheus/ "
       f"unchanged ({', '.join(repo_rules)}); an edited copy is refused")

    _, docs = chart.render(sets=["metrics.prometheusRule.enabled=true"])
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    want = [g for p in repo_rules.values() for g in yaml.safe_load(p.read_text())["groups"]]
    expect(groups == want, "the PrometheusRule's groups are not those of monitoring/prometheus/: "
           f"{[g['name'] for g in groups]} vs {[g['name'] for g in want]}")
    alerts = sum(1 for g in want for r in g["rules"] if "alert" in r)
    records = sum(1 for g in want for r in g["rules"] if "record" in r)
    if chart.promtool:
        rules_path = chart.work / "repo-rules.yaml"
        rules_path.write_text(yaml.safe_dump({"groups": groups}))
        run([chart.promtool, "check", "rules", str(rules_path)])
    ok(f"the PrometheusRule carries monitoring/prometheus/'s rules exactly: {len(want)} groups, {alerts} alerts, "
       f"{records} recording rules" + ("" if chart.promtool else " (promtool absent: not parsed)"))


def entry_env(chart, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERER_")}
    env["PATH"] = f"{Path(chart.orderer).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def check_entrypoint(chart):
    def node_id(extra):
        env = entry_env(chart, extra)
        proc = run(["sh", str(ENTRYPOINT), "check-config"], env=env, check=False)
        return proc.returncode, (yaml.safe_load(proc.stdout) or {}).get("node", {}).get("id"), proc.stderr

    cases = [
        ({"POD_NAME": "org1-orderer-0"}, 1),
        ({"POD_NAME": "org1-orderer-3", "CONSENTER_ID_OFFSET": "2"}, 6),
        ({"POD_NAME": "org1-orderer-11", "CONSENTER_ID_OFFSET": "10"}, 22),
        ({"POD_NAME": "org1-orderer-1", "ORDERER_NODE_ID": "9"}, 9),
    ]
    for extra, want in cases:
        rc, got, err = node_id(extra)
        expect(rc == 0 and got == want, f"entrypoint with {extra}: id {got} (rc {rc}) != {want}: {err}")
    for extra, reason in (({"POD_NAME": "orderer"}, "does not end in"),
                          ({"POD_NAME": "orderer-x"}, "not a whole number"),
                          ({"POD_NAME": "orderer-1", "CONSENTER_ID_OFFSET": "010"}, "leading zeros"),
                          ({"POD_NAME": "orderer-1", "CONSENTER_ID_OFFSET": "-1"}, "not a whole number")):
        rc, _, err = node_id(extra)
        expect(rc != 0 and reason in err, f"entrypoint accepted {extra}: {err}")
    ok(f"entrypoint: consenter id = ordinal + offset + 1 ({len(cases)} cases), bad pod names and offsets refused")

    src = chart.work / "secrets"
    ident = src / "6"
    for rel in ("msp/signcerts/cert.pem", "msp/keystore/priv_sk", "msp/cacerts/ca-cert.pem",
                "msp/tlscacerts/tlsca-cert.pem", "tls/server.crt", "tls/server.key", "tls/ca.crt"):
        p = ident / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"-----BEGIN TEST-----\n{rel}\n-----END TEST-----\n")
    run([chart.orderer, "keygen", "--out", str(ident / "mac.key")], env=entry_env(chart, {}))
    dest = chart.work / "identity"
    env = entry_env(chart, {"POD_NAME": "org1-orderer-3", "CONSENTER_ID_OFFSET": "2",
                            "IDENTITY_SOURCE_DIR": str(src), "IDENTITY_MSP_DIR": str(dest / "msp"),
                            "IDENTITY_TLS_DIR": str(dest / "tls"), "IDENTITY_MAC_KEY_FILE": str(dest / "mac.key")})
    run(["sh", str(ENTRYPOINT), "install-identity"], env=env)
    expect((dest / "msp/keystore/priv_sk").read_text() == (ident / "msp/keystore/priv_sk").read_text(), "copy")
    for p in (dest / "mac.key", dest / "tls/server.key", dest / "msp/keystore/priv_sk"):
        mode = stat.S_IMODE(p.stat().st_mode)
        expect(mode & 0o077 == 0, f"{p} has mode {oct(mode)}")
    (ident / "mac.key").unlink()
    (ident / "mac.key").write_text("not hex\n")
    proc = run(["sh", str(ENTRYPOINT), "install-identity"], env=env, check=False)
    expect(proc.returncode != 0 and "64 hex digits" in proc.stderr, "install-identity accepted a bad mac.key")
    env["POD_NAME"] = "org1-orderer-0"
    proc = run(["sh", str(ENTRYPOINT), "install-identity"], env=env, check=False)
    expect(proc.returncode != 0 and "no identity for consenter 3" in proc.stderr, "missing identity accepted")
    ok("entrypoint install-identity copies consenter 6's identity with owner-only modes; refuses a bad mac.key "
       "and a missing identity")


def leaf_paths(tree, prefix=""):
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v and path not in FREE_FORM_VALUES:
            yield from leaf_paths(v, path + ".")
        else:
            yield path


FREE_FORM_VALUES = {"resources"}


def check_readme_lists_values():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = list(leaf_paths(values))
    missing = [p for p in paths if f"| `{p}` |" not in readme]
    expect(not missing, f"README.md values table misses: {', '.join(missing)}")
    ok(f"README.md lists all {len(paths)} values of values.yaml")


# Identity Secret key -> file of a `ca-tools issue --role orderer` folder.
SECRET_KEY_FILES = {
    "msp-signcert.pem": "msp/signcerts/*.pem",
    "msp-key.pem": "msp/keystore/priv_sk",
    "msp-cacert.pem": "msp/cacerts/ca-cert.pem",
    "msp-tlscacert.pem": "msp/tlscacerts/tlsca-cert.pem",
    "tls.crt": "tls/server.crt",
    "tls.key": "tls/server.key",
    "ca.crt": "tls/ca.crt",
    "mac.key": "mac.key",
}
READY_WAIT_S = 60


def check_pods_start(chart):
    """Four pods laid out exactly as the chart mounts them start and become ready.

    `orderer dev` makes real crypto and a genesis block. Each consenter's
    folder becomes an identity Secret (the keys README.md documents); the
    Secrets are projected with the rendered StatefulSet's items; the
    entrypoint's install-identity copies the pod's own identity; the rendered
    orderer.yaml (paths under a per-pod root, loopback ports of the genesis
    block) runs through the entrypoint; each node's /readyz must say READY.
    """
    dev = chart.work / "dev"
    base = free_port_base()
    env = entry_env(chart, {})
    run([chart.orderer, "dev", "--dir", str(dev), "--base-port", str(base), "--exit-after-demo"], env=env)
    _, docs = chart.render(sets=["replicas=4", "channel.consenters=4"])
    spec = pod_spec(docs)
    config = orderer_yaml(docs)
    init = next(c for c in spec["initContainers"] if c["name"] == "identity")
    init_env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    secrets = chart.work / "projected"
    for source in next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]:
        consenter_id = int(source["secret"]["name"].rsplit("-", 1)[1])
        node = dev / "crypto" / ("ordererorg1" if consenter_id <= 2 else "ordererorg2") / "orderers" / f"orderer{consenter_id}"
        for item in source["secret"]["items"]:
            [src] = sorted(node.glob(SECRET_KEY_FILES[item["key"]]))
            dest = secrets / item["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
    procs = []
    try:
        for ordinal in range(4):
            root = chart.work / f"pod{ordinal}"
            pod = {"POD_NAME": f"{FULLNAME}-{ordinal}", "CONSENTER_ID_OFFSET": "0"}
            installer = dict(pod, IDENTITY_SOURCE_DIR=str(secrets))
            for key in ("IDENTITY_MSP_DIR", "IDENTITY_TLS_DIR", "IDENTITY_MAC_KEY_FILE"):
                installer[key] = str(root) + init_env[key]
            run(["sh", str(ENTRYPOINT), "install-identity"], env=entry_env(chart, installer))
            cfg = yaml.safe_load(yaml.safe_dump(config))
            for key in ("data_dir", "msp_dir", "tls_dir", "mac_key_file", "bootstrap_dir"):
                cfg["node"][key] = str(root) + cfg["node"][key]
            cfg["node"]["msp_id"] = "OrdererOrg1MSP" if ordinal < 2 else "OrdererOrg2MSP"
            port = base + 10 * ordinal
            for section, offset in (("cluster", 0), ("api", 1), ("admin", 3), ("operations", 4)):
                cfg[section]["listen"] = f"127.0.0.1:{port + offset}"
            boot = Path(cfg["node"]["bootstrap_dir"])
            boot.mkdir(parents=True)
            shutil.copy(dev / "bootstrap" / "devchannel.block", boot)
            cfg_path = root / "orderer.yaml"
            cfg_path.write_text(yaml.safe_dump(cfg))
            log = open(root / "orderer.log", "w")
            procs.append((subprocess.Popen(["sh", str(ENTRYPOINT), "start", "--config", str(cfg_path)],
                                           env=entry_env(chart, pod), stdout=log, stderr=subprocess.STDOUT), log))
        for ordinal in range(4):
            wait_ready(f"http://127.0.0.1:{base + 10 * ordinal + 4}/readyz", procs[ordinal][0],
                       chart.work / f"pod{ordinal}" / "orderer.log")
        for ordinal in range(4):
            text = (chart.work / f"pod{ordinal}" / "orderer.log").read_text()
            expect(f"consenter id {ordinal + 1}" in text, f"pod {ordinal} did not run as consenter {ordinal + 1}")
    finally:
        for proc, log in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    ok("4 pods laid out as the chart mounts them (identity Secret keys -> projected paths -> install-identity, "
       "rendered orderer.yaml, entrypoint) start with real crypto and report /readyz READY")


def free_port_base(tries_max=20):
    """A base port whose 4 x 10 ports are free now (other networks may run on this machine)."""
    for _ in range(tries_max):
        base = 24000 + 10 * random.randrange(0, 400)
        try:
            for port in range(base, base + 40):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise CheckFailed(f"no free range of 40 ports found in {tries_max} tries")


def wait_ready(url, proc, log_path):
    deadline = time.monotonic() + READY_WAIT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"orderer exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                body = answer.read(4096).decode()
                if answer.status == 200 and "READY" in body:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.5)
    raise CheckFailed(f"{url} not READY within {READY_WAIT_S}s ({last}):\n{log_path.read_text()[-3000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--helm", required=True)
    ap.add_argument("--orderer", required=True)
    ap.add_argument("--promtool", default="")
    args = ap.parse_args()
    venv_bin = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        chart = Chart(args.helm, args.orderer, args.promtool, Path(tmp))
        try:
            cases = [("default values", [], [])] + [(f"example {e.name}", [e], []) for e in EXAMPLES]
            cases.append(("all options on", [], ["metrics.serviceMonitor.enabled=true",
                                                 "metrics.prometheusRule.enabled=true", "certManager.enabled=true",
                                                 "certManager.issuerRef.name=tlsca", "genesis.blocks.ch1\\.block=AAEC",
                                                 "service.perPod.type=LoadBalancer"]))
            check_kubernetes_validate(chart, venv_bin, cases)
            check_pdb_is_f(chart)
            check_pod_hardening(chart, cases)
            check_probes(chart)
            cfg_path, resolved = check_config(chart, [], "default values", offset=0, ordinal=2)
            for e in EXAMPLES:
                offset = int(values_of([e]).get("consenterIdOffset", 0))
                check_config(chart, [e], f"example {e.name}", offset=offset, ordinal=1)
            check_config_negative(chart, cfg_path)
            check_every_key_reachable(chart, resolved)
            check_schema_refusals(chart)
            check_topology(chart)
            check_monitoring(chart)
            check_entrypoint(chart)
            check_readme_lists_values()
            check_pods_start(chart)
            check_every_render_valid(chart, venv_bin)
        except CheckFailed as e:
            print(f"check FAILED: helm {e}", file=sys.stderr)
            return 1
        print(f"helm chart: {chart.renders} renders checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
