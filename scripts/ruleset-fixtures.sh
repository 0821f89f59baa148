#!/usr/bin/env bash
# Regenerates the nft JSON fixtures of the ruleset analyser's unit tests:
# each Tests/TunerTests/Fixtures/rulesets/NAME.nft is loaded with the real
# nft into a private network namespace and read back with
# `nft -j list ruleset` into NAME.json. Needs root and nft.
#   ruleset-fixtures.sh [NAME...]
set -euo pipefail
cd "$(dirname "$0")/../Tests/TunerTests/Fixtures/rulesets"
[ "$(id -u)" -eq 0 ] || { echo "needs root: it loads each ruleset into a network namespace" >&2; exit 1; }
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls *.nft | sed 's/\.nft$//'))
for name in "${names[@]}"; do
  netns="cttune-fixture-$$"
  ip netns add "$netns"
  trap 'ip netns delete "$netns" 2>/dev/null || true' EXIT
  ip netns exec "$netns" nft -f "$name.nft"
  # nft prints "warning: stmt ops X have no json callback" for statements it
  # writes as plain text; those strings are part of what the tests read.
  ip netns exec "$netns" nft -j list ruleset 2>/dev/null | python3 -m json.tool --indent 1 > "$name.json"
  ip netns delete "$netns"
  trap - EXIT
  echo "$name.json ($(nft --version))"
done
