#!/usr/bin/env bash
# Creates .cache/python-venv with the Python packages the tests drive:
#   prometheus_client    its text-format parser validates `cttune status --textfile`
#   kubernetes-validate  contrib/kubernetes against the Kubernetes API schemas (pinned:
#                        its schemas, and so the verdicts, change with its version)
# Idempotent: does nothing when the venv already has them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/python-venv
packages=(prometheus_client kubernetes-validate==1.37.0)
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import prometheus_client" 2>/dev/null \
  && [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "1.37.0" ]; then
  exit 0
fi
python=$(command -v python3 || true)
if [ -z "$python" ]; then
  echo "python3 is missing: run scripts/install-deps.sh test" >&2
  exit 1
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install -q "${packages[@]}"
