#!/usr/bin/env bash
# Benchmarks, printed as tables; not part of the pass/fail suite.
# Run through `make bench` (which builds the release binary first).
set -euo pipefail
cd "$(dirname "$0")/.."

# Size and start-up first: what every run of the binary pays (before and after
# columns; BEFORE=path/to/old/cttune measures an older build beside this one).
scripts/bench-startup.sh

for extra in scripts/bench-*.sh; do
  [ "$extra" = scripts/bench-startup.sh ] && continue
  [ -x "$extra" ] && { echo; "$extra"; }
done
exit 0
