#!/usr/bin/env bash
# Creates the virtualenv whose ansible-playbook the fleet tests run
# (.cache/ansible-venv), unless it already has a matching ansible-core.
set -euo pipefail
venv=${1:-.cache/ansible-venv}
requirement='ansible-core>=2.16,<2.18'
# Run, not just found: a virtualenv's scripts name its interpreter by absolute
# path, so a moved or copied one is made again.
if "$venv/bin/ansible-playbook" --version >/dev/null 2>&1 && "$venv/bin/python" -m pip show ansible-core >/dev/null 2>&1; then
  "$venv/bin/python" - "$requirement" <<'PY' && exit 0
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
sys.exit(0 if Requirement(sys.argv[1]).specifier.contains(version("ansible-core")) else 1)
PY
fi
# The system interpreter (python3-venv), not whichever python3 is first in PATH.
/usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
