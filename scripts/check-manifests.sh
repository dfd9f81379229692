#!/usr/bin/env bash
# Offline checks of manifests/ (the same ones `make test` runs): each overlay renders
# with `kubectl kustomize`, core kinds validate strictly against Kubernetes 1.32,
# custom resources against the CRD schemas vendored under manifests/crds/, every pod is
# PSS-restricted, and checkov reports no failure. No cluster is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is needed (kubectl kustomize renders the overlays)" >&2; exit 2; }
bash scripts/install-checkov.sh
exec .venv/bin/pytest -q tests/manifests "$@"
