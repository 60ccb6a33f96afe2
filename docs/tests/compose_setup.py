#!/usr/bin/env python3
"""Runs the compose network's setup without a container engine.

Reads deploy/compose/docker-compose.yaml and runs, on this machine, what its
services would run: the one-shot `ca-tools` and `channels` scripts (twice: the
second run must reuse everything), then every orderer service with its
ORDERER_* environment and the shipped orderer.yaml, container paths mapped to
a temporary folder and listen addresses to free local ports. Each orderer must
accept its configuration (`orderer check-config`), start, report /healthz and
show channel "mychannel" in /metrics: the certificates, MAC keys, genesis
block and per-node settings of the compose file fit together. (The consenters
cannot reach each other here — their hosts are compose service names — so
readiness is not expected.)

Usage: compose_setup.py REPO BIN_DIR WORK_DIR BASE_PORT
"""

import os
import re
import subprocess
import sys
import time
import urllib.request

import yaml

SETUP_SERVICES = ("ca-tools", "channels")
ORDERERS = ("orderer1", "orderer2", "orderer3", "orderer4")
START_SECONDS_MAX = 30


def fail(msg):
    print(f"check FAILED: docs compose: {msg}", file=sys.stderr)
    sys.exit(1)


def remap(text, work, compose_dir):
    """Container paths (/network..., /compose/...) to local ones, in one pass."""
    places = {"/network": os.path.join(work, "network"), "/compose/": compose_dir + "/"}
    # Compose writes a literal $ as $$ in commands.
    text = text.replace("$$", "$")
    return re.sub(r"(?<![\w./-])(/network|/compose/)", lambda m: places[m.group(1)], text)


def run_setup(services, work, compose_dir, env):
    for name in SETUP_SERVICES:
        svc = services.get(name) or fail(f"service {name} is missing")
        if svc.get("entrypoint") != ["/bin/sh", "-ec"]:
            fail(f"service {name}: expected entrypoint [/bin/sh, -ec]")
        script = remap(svc["command"][0], work, compose_dir)
        r = subprocess.run(["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail(f"service {name} failed:\n{r.stdout}{r.stderr}")
        yield name, r.stdout


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except Exception as e:  # connection refused while starting, HTTP errors
        return None, str(e)


def main():
    repo, bin_dir, work, base = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    compose_dir = os.path.join(repo, "deploy", "compose")
    with open(os.path.join(compose_dir, "docker-compose.yaml")) as f:
        services = yaml.safe_load(f)["services"]
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])

    first = list(run_setup(services, work, compose_dir, env))
    block = os.path.join(work, "network", "bootstrap", "mychannel.block")
    if not os.path.isfile(block):
        fail("the channels service wrote no mychannel.block")
    before = os.path.getmtime(block)
    second = list(run_setup(services, work, compose_dir, env))
    if any(out.strip() for _, out in second) or os.path.getmtime(block) != before:
        fail(f"a second `up` redid setup work: {second}")
    print(f"check ok: docs compose setup services {', '.join(n for n, _ in first)} made certificates, MAC keys "
          "and the genesis block, and reuse them when run again")

    inspect = subprocess.run([os.path.join(bin_dir, "channels"), "inspect", block], capture_output=True, text=True)
    for host in ORDERERS:
        if f'"{host}"' not in inspect.stdout:
            fail(f"genesis block does not list consenter host {host}")
    if '"mac_public_key": []' in inspect.stdout:
        fail("a consenter has no MAC public key in the genesis block (mac.pub missing when channels ran)")

    procs = []
    try:
        for i, name in enumerate(ORDERERS):
            svc = services[name]
            node_env = {k: remap(str(v), work, compose_dir) for k, v in svc["environment"].items()}
            data = os.path.join(work, f"data{i + 1}")
            port = base + 10 * i
            node_env.update({
                "ORDERER_NODE_DATA_DIR": data,
                "ORDERER_NODE_BOOTSTRAP_DIR": os.path.join(work, "network", "bootstrap"),
                "ORDERER_CLUSTER_LISTEN": f"127.0.0.1:{port}",
                "ORDERER_API_LISTEN": f"127.0.0.1:{port + 1}",
                "ORDERER_ADMIN_LISTEN": f"127.0.0.1:{port + 3}",
                "ORDERER_OPERATIONS_LISTEN": f"127.0.0.1:{port + 4}",
            })
            cfg = os.path.join(compose_dir, "orderer.yaml")
            full_env = dict(env, **node_env)
            r = subprocess.run([os.path.join(bin_dir, "orderer"), "check-config", "--config", cfg],
                               env=full_env, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{name}: orderer check-config refused its settings: {r.stderr}")
            log = open(os.path.join(work, f"{name}.log"), "w")
            procs.append(subprocess.Popen([os.path.join(bin_dir, "orderer"), "start", "--config", cfg],
                                          env=full_env, stdout=log, stderr=subprocess.STDOUT))
        for i, name in enumerate(ORDERERS):
            ops = f"http://127.0.0.1:{base + 10 * i + 4}"
            deadline = time.time() + START_SECONDS_MAX
            while True:
                status, _ = get(ops + "/healthz")
                _, metrics = get(ops + "/metrics")
                if status == 200 and 'bft_ledger_height{channel="mychannel"}' in metrics:
                    break
                if procs[i].poll() is not None or time.time() > deadline:
                    with open(os.path.join(work, f"{name}.log")) as f:
                        fail(f"{name} did not start with channel mychannel:\n{f.read()[-3000:]}")
                time.sleep(0.5)
        print("check ok: docs compose orderer1-4 accept their settings (check-config), start, "
              "and join mychannel from the genesis block")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
