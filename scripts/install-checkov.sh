#!/usr/bin/env bash
# Installs checkov into its own virtual environment, .venv-checkov, when it is
# missing. checkov pins many libraries (boto3, networkx, packaging, ...) that
# would clash with the project's constraints.txt, so it never goes into .venv.
# tests/manifests calls this script; it is safe to run again (a no-op then).
set -euo pipefail
CHECKOV_VERSION="3.3.30"
cd "$(dirname "$0")/.."
VENV=.venv-checkov
PY="${PY:-python3}"
if [ -x "$VENV/bin/checkov" ] && "$VENV/bin/python" -c "import checkov.version as v, sys; sys.exit(v.version != '$CHECKOV_VERSION')" 2>/dev/null; then
  exit 0
fi
echo "installing checkov==$CHECKOV_VERSION into $VENV"
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
"$VENV/bin/checkov" --version
