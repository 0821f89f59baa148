#!/bin/sh
# Regenerates the examples of docs/json.md by running the built binary
# against the fixture trees (a scratch copy under a temporary --root):
# every example there is real output, never written by hand.
#
#   swift build && scripts/json-examples.sh [path/to/cttune]
#
# Needs root (status reads the kernel; one example runs in a network
# namespace of its own) and the Debian module tree of `make module-tree` for
# modules, unload and blacklist. The scratch root's path is printed as /srv/image.
set -eu
cd "$(dirname "$0")/.."
cttune=${1:-.build/debug/cttune}
doc=docs/json.md
modules=.cache/module-tree/full
[ -x "$cttune" ] || { echo "no $cttune: run swift build first" >&2; exit 1; }
[ -d "$modules/lib/modules" ] || { echo "no $modules: run make module-tree first" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
root=$scratch/root
mkdir -p "$root/lib" "$root/etc/modprobe.d"
cp -R Tests/TunerTests/Fixtures/hosts/small-vm/. "$root/"
cp -al "$modules/lib/modules" "$root/lib/modules"
export CTTUNE_PROFILE_PATH=

# One example: a heading, the command line and its JSON (status ignored:
# the error examples exit 1 on purpose).
example() {
    name=$1
    shift
    printf '### %s\n\n```\n$ cttune %s\n```\n```json\n' "$name" "$*" | sed "s|$root|/srv/image|g"
    "$cttune" "$@" 2>/dev/null | sed "s|$root|/srv/image|g" || true
    printf '```\n\n'
}

{
    example plan plan --root "$root" --memory 4G --cpus 2 --explain --format json
    example "plan --profile stateless" plan --root "$root" --memory 4G --cpus 2 --profile stateless --explain --format json
    example apply apply --root "$root" --memory 4G --cpus 2 --diff --format json
    example "rollback --list" rollback --list --root "$root" --format json
    id=$("$cttune" rollback --list --root "$root" --format json | sed -n 's/^ *"id": "\(.*\)",$/\1/p' | tail -n 1)
    example "rollback --list ID" rollback --list "$id" --root "$root" --format json
    example rollback rollback --root "$root" --format json
    example "rollback --prune" rollback --prune --keep 1 --root "$root" --format json
    example status status --window 0 --format json
    # A namespace of its own, so the example shows no other namespace of the host.
    ip netns add cttune-json-example
    ip -n cttune-json-example link set lo up
    example "status --namespace" status --namespace cttune-json-example --window 0 --format json
    example learn learn --namespace cttune-json-example --seconds 2 --format json
    ip netns delete cttune-json-example
    example "status: UNKNOWN" status --window 0 --textfile "$root/missing/conntrack.prom" --format json
    example rules rules --ruleset Tests/TunerTests/Fixtures/rulesets/nested-statements.json --format json
    example modules modules --root "$root" --format json
    example unload unload --dry-run --root "$root" --format json
    example blacklist blacklist --dry-run --root "$root" --format json
    example error plan --root "$root/missing" --format json
} >"$scratch/examples.md"

# Replace what lies between the markers, keep the prose around them.
awk -v examples="$scratch/examples.md" '
    /^<!-- examples:begin/ { print; while ((getline line < examples) > 0) print line; skipping = 1; next }
    /^<!-- examples:end/ { skipping = 0 }
    !skipping { print }
' "$doc" >"$scratch/json.md"
mv "$scratch/json.md" "$doc"
