#!/usr/bin/env bash
# Times cttune on hostile input at scale (docs/robustness.md, "Scale"): many
# files or entries, long names. Each case builds a fixture tree under a
# temporary directory and runs the release binary once; the target is at most
# 2 s for 10 000 files or entries, and a long name refused at once.
#   bench-hostile.sh [COUNT]     (default 10000)
set -euo pipefail
count=${1:-10000}
cd "$(dirname "$0")/.."
cttune=.build/release/cttune
[ -x "$cttune" ] || cttune=.build/debug/cttune
[ -x "$cttune" ] || { echo "build cttune first (swift build -c release)" >&2; exit 1; }
fixture=Tests/TunerTests/Fixtures/hosts/small-vm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cttune=$(realpath "$cttune")

tree() { rm -rf "$work/tree"; cp -r "$fixture" "$work/tree"; }

# Wall time of one run in seconds (exit code ignored: refusals are results too).
seconds() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1 || true
  end=$(date +%s%N)
  echo "scale=2; ($end - $start) / 1000000000" | bc | sed 's/^\./0./'
}

row() { printf '%-62s %8s s\n' "$1" "$2"; }

echo "== hostile input at scale ($count files or entries; release build: $cttune)"
printf '%-62s %10s\n' "case" "wall"

tree
mkdir -p "$work/tree/etc/sysctl.d"
for i in $(seq "$count"); do echo "net.ipv4.conf.all.rp_filter = 1" > "$work/tree/etc/sysctl.d/50-file-$i.conf"; done
row "plan: $count sysctl.d files" "$(seconds "$cttune" plan --memory 1G --root "$work/tree")"
row "apply --check --on-conflict refuse: $count sysctl.d files" \
  "$(seconds "$cttune" apply --check --on-conflict refuse --memory 1G --root "$work/tree")"

tree
"$cttune" apply --memory 1G --root "$work/tree" >/dev/null
journal="$work/tree/var/lib/cttune/journal"
entry=$(ls "$journal")
for i in $(seq "$count"); do
  sed "s/${entry%.json}/20260101T000000.000Z-$i/" "$journal/$entry" > "$journal/20260101T000000.000Z-$i.json"
done
row "rollback --list: $count journal entries" "$(seconds "$cttune" rollback --list --root "$work/tree")"

tree
{
  echo "nf_conntrack 200000 $count $(seq -f 'holder%g' "$count" | paste -sd, -) Live 0x0"
  seq -f 'holder%g 16384 0 - Live 0x0' "$count"
} > "$work/tree/proc/modules"
row "unload --dry-run: nf_conntrack with $count holder modules" "$(seconds "$cttune" unload --dry-run --root "$work/tree")"
row "modules: nf_conntrack with $count holder modules" "$(seconds "$cttune" modules --root "$work/tree")"

# A real depmod'ed tree (make module-tree) with 200 lines per COUNT appended to modules.dep.
modules=.cache/module-tree/full/lib/modules
if [ -d "$modules" ]; then
  tree
  mkdir -p "$work/tree/lib"
  cp -r "$modules" "$work/tree/lib/"
  release=$(ls "$modules")
  echo "$release" > "$work/tree/proc/sys/kernel/osrelease"
  lines=$((count * 200))
  seq -f "kernel/extra/m%g.ko:" "$lines" >> "$work/tree/lib/modules/$release/modules.dep"
  row "modules: a modules.dep of $lines more lines" "$(seconds "$cttune" modules --root "$work/tree")"
  row "blacklist --dry-run: the same tree" "$(seconds "$cttune" blacklist --dry-run --root "$work/tree")"
else
  echo "(no .cache/module-tree: make module-tree for the modules.dep case)"
fi

long=$(head -c 10000 /dev/zero | tr '\0' a)
tree
row "plan --kernel <10 000 characters>" "$(seconds "$cttune" plan --kernel "$long" --root "$work/tree")"
row "plan --profile <10 000 characters>" "$(seconds "$cttune" plan --profile "$long" --root "$work/tree")"
row "rollback <ID of 10 000 characters>" "$(seconds "$cttune" rollback "$long" --root "$work/tree")"
row "status --namespace <10 000 characters>" "$(seconds "$cttune" status --window 0 --namespace "$long")"
