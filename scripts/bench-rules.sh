#!/usr/bin/env bash
# Times `cttune rules` on a generated ruleset of RULES rules (default 100000)
# against `nft -j list ruleset` producing that JSON, and prints the ratio.
#   bench-rules.sh [RULES]
# Loads the ruleset into a private network namespace (deleted on exit), so
# it needs root. Uses the release build when there is one.
set -euo pipefail
rules=${1:-100000}
cd "$(dirname "$0")/.."
cttune=.build/release/cttune
[ -x "$cttune" ] || cttune=.build/debug/cttune
[ -x "$cttune" ] || { echo "build cttune first (swift build -c release)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root: it loads the ruleset into a network namespace" >&2; exit 1; }

netns="cttune-bench-$$"
work=$(mktemp -d)
cleanup() { ip netns delete "$netns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$netns"

# 100 regular chains jumped to from one base chain; one rule in 50 matches
# ct state, the rest are stateless address/port matches.
chains=100
per_chain=$(( (rules + chains - 1) / chains ))
awk -v chains="$chains" -v per="$per_chain" -v total="$rules" 'BEGIN {
  print "table inet bench {"
  print "  chain input { type filter hook input priority filter; policy accept; }"
  n = 0
  for (c = 0; c < chains && n < total; c++) {
    print "  chain c" c " {"
    for (r = 0; r < per && n < total; r++) {
      if (n % 50 == 0) print "    ct state established,related accept"
      else printf "    ip saddr 10.%d.%d.%d tcp dport %d accept\n", int(n / 65536) % 256, int(n / 256) % 256, n % 256, 1024 + n % 60000
      n++
    }
    print "  }"
  }
  print "}"
}' > "$work/ruleset.nft"
ip netns exec "$netns" nft -f "$work/ruleset.nft"

now() { date +%s.%N; }
start=$(now)
ip netns exec "$netns" nft -j list ruleset > "$work/ruleset.json"
listed=$(now)
"$cttune" rules --ruleset "$work/ruleset.json" --format json > "$work/report.json"
analysed=$(now)

count=$(grep -o '"rules_examined": [0-9]*' "$work/report.json" | grep -o '[0-9]*$')
verdict=$(grep -o '"verdict": "[a-z-]*"' "$work/report.json" | head -1)
awk -v a="$start" -v b="$listed" -v c="$analysed" -v n="$count" -v bytes="$(wc -c < "$work/ruleset.json")" -v v="$verdict" 'BEGIN {
  list = b - a; analyse = c - b
  printf "rules analysed:              %d (%.1f MiB of nft JSON), %s\n", n, bytes / 1048576, v
  printf "nft -j list ruleset:         %.3f s\n", list
  printf "cttune rules --ruleset FILE: %.3f s\n", analyse
  printf "ratio cttune / nft:          %.2f (%s)\n", analyse / list, analyse < list ? "faster than nft lists it" : "SLOWER than nft lists it"
}'
