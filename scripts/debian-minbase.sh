#!/usr/bin/env bash
# A minimal Debian root (mmdebstrap --variant=minbase) of this host's release
# with a package's dependencies installed, for installing that package into
# it. Built once and cached under .cache/debian-minbase (keyed by the
# release and the dependency names); use it read-only, as an overlay's lower
# directory:
#   debian-minbase.sh PACKAGE.deb   prints the root's path
set -euo pipefail
deb=$(realpath "${1:?usage: debian-minbase.sh PACKAGE.deb}")
cd "$(dirname "$0")/.."
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
# Dependency names only: the release's versions satisfy a package built on it.
depends=$(dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/[[:space:]]//g' | grep -v '^$' | LC_ALL=C sort -u | paste -sd, -)
key=$(printf '%s %s' "$suite" "$depends" | sha256sum | cut -c1-12)
cache=$PWD/.cache/debian-minbase
root=$cache/$suite-$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -e "$root.complete" ]; then
  rm -rf "$root"
  echo "debian-minbase: building a $suite minbase root with $depends (once)" >&2
  mmdebstrap --quiet --variant=minbase --include="$depends" "$suite" "$root" >&2
  touch "$root.complete"
fi
echo "$root"
