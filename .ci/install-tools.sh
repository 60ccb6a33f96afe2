#!/usr/bin/env bash
# Installs the external tools the checks use. Idempotent; quiet when present.
set -euo pipefail
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v bc >/dev/null || need_apt+=(bc)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
venv=".venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import fabric_protos.common.common_pb2, fabric_protos.msp.identities_pb2' >/dev/null 2>&1; then
  "$venv/bin/pip" install -q --disable-pip-version-check --pre hyperledger-fabric-protos >/dev/null
fi
echo "openssl: $(openssl version)"
echo "python venv: $("$venv/bin/python" --version)"
