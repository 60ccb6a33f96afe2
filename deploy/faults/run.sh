#!/usr/bin/env bash
# Fault tests with real orderer processes (see deploy/faults/README.md).
#
#   deploy/faults/run.sh [--short|--long] [--nodes N] [other `faults` options]
#
# Starts N real `orderer` processes, each in its own network namespace, with
# clients submitting signed envelopes over HTTPS the whole time; a nemesis
# kills (SIGKILL) the primary, a random node and every node, partitions a
# node away, splits the cluster, drops a node's messages one way (iptables)
# and slows a node down (the transport's fault hook); then it heals, and a
# checker reads every ledger back. Last line:
#   faults: nodes=<n> rounds=<R> acked=<A> committed=<C> lost=<L> duplicated=<D> divergent=<X>
# Exit code 0 only when nothing was lost, duplicated or divergent.
#
# Needs root (network namespaces, iptables); installs iproute2 and iptables
# with apt-get when they are missing. --short (the default) runs one round of
# each fault (about two minutes); --long runs 50 rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
  echo "faults: needs root to create network namespaces and iptables rules; run it as root (sudo $0 $*)" >&2
  exit 2
fi
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "faults: installing ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null; then
    echo "faults: cannot install ${missing[*]}; install them and run again" >&2
    exit 2
  fi
fi
probe=bftf-probe-$$
if ! ip netns add "$probe" 2>/dev/null; then
  echo "faults: this machine does not let root create network namespaces (ip netns add failed); the fault tests need them" >&2
  exit 2
fi
if ! ip netns exec "$probe" iptables -L >/dev/null 2>&1; then
  ip netns del "$probe"
  echo "faults: iptables does not work inside a network namespace here (kernel netfilter missing?); the fault tests need it" >&2
  exit 2
fi
ip netns del "$probe"

cleanup() {
  # The harness removes its namespaces itself; this catches an interrupted run.
  for ns in $(ip netns list 2>/dev/null | awk '/^bftf-/ {print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
  ip link del bftf-h0 2>/dev/null || true
}
trap cleanup EXIT

cargo build --release -q -p orderer --bin orderer --bin faults
dir=${FAULTS_DIR:-$(mktemp -d)/faults-network}
echo "faults: network folder $dir (logs in nodes/orderer*/orderer.log; kept when the run fails)"
status=0
target/release/faults --dir "$dir" "$@" || status=$?
if [ "$status" = 0 ] && [ -z "${FAULTS_DIR:-}" ]; then
  rm -rf "$(dirname "$dir")"
fi
exit "$status"
