#!/usr/bin/env bash
# Builds real Debian kernel module trees for the module tests:
#   .cache/module-tree/full/               netfilter and lib modules of the newest
#                                          linux-image-*-cloud-amd64, depmod'ed,
#                                          with an empty modules.builtin
#   .cache/module-tree/builtin-conntrack/  the same, with nf_conntrack listed in
#                                          modules.builtin and its .ko removed
# Each tree is ROOT/lib/modules/VERSION plus an empty ROOT/etc/modprobe.d; the
# version is in .cache/module-tree/VERSION. The .deb is kept in .cache/debs so
# later runs only re-extract when the archive offers a newer kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache
trees=$cache/module-tree

newest_package() {
  apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-cloud-amd64$' | awk '{print $1}' | sort -V | tail -1
}

package=$(newest_package)
if [ -z "$package" ]; then
  apt-get update -q >/dev/null
  package=$(newest_package)
fi
if [ -z "$package" ]; then
  echo "module-tree: apt-cache knows no linux-image-*-cloud-amd64 package — check /etc/apt/sources.list" >&2
  exit 1
fi
version=${package#linux-image-}

if [ -f "$trees/VERSION" ] && [ "$(cat "$trees/VERSION")" = "$version" ] \
  && [ -f "$trees/full/lib/modules/$version/modules.dep.bin" ] \
  && [ -f "$trees/builtin-conntrack/lib/modules/$version/modules.dep.bin" ]; then
  exit 0
fi

mkdir -p "$cache/debs"
deb=$(ls "$cache/debs/${package}_"*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
  echo "module-tree: downloading $package" >&2
  (cd "$cache/debs" && apt-get download -q "$package" >/dev/null 2>&1)
  deb=$(ls "$cache/debs/${package}_"*.deb | tail -1)
fi

work=$(mktemp -d "$cache/module-tree.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/deb"

# make_tree NAME [BUILTIN_MODULE...]: copies net/ and lib/ into NAME, lists the
# given modules as built in (deleting their .ko, as a kernel build would) and runs depmod.
make_tree() {
  local name=$1; shift
  local root=$work/$name modules=$work/$name/lib/modules/$version
  mkdir -p "$modules/kernel" "$root/etc/modprobe.d"
  cp -a "$work/deb/lib/modules/$version/kernel/net" "$work/deb/lib/modules/$version/kernel/lib" "$modules/kernel/"
  : >"$modules/modules.builtin"
  : >"$modules/modules.builtin.modinfo"
  local module path
  for module in "$@"; do
    path=$(cd "$modules" && find kernel -name "$module.ko*" | head -1)
    [ -n "$path" ] || { echo "module-tree: no $module.ko in $package" >&2; exit 1; }
    rm "$modules/$path"
    echo "${path%.xz}" >>"$modules/modules.builtin"
  done
  (cd "$modules" && find kernel -name '*.ko*' | sort >modules.order)
  depmod -b "$root" "$version"
}
make_tree full
make_tree builtin-conntrack nf_conntrack

rm -rf "$trees"
mkdir -p "$trees"
mv "$work/full" "$work/builtin-conntrack" "$trees/"
echo "$version" >"$trees/VERSION"
echo "module-tree: $trees ($version)" >&2
