#!/usr/bin/env bash
# Builds the Debian package from debian/ with dpkg-buildpackage, in this tree
# so that the release build already in .build is reused (debian/rules runs
# `make release man`, which then has nothing left to do), and writes the
# results into OUTDIR instead of the parent directory:
#   build-deb.sh OUTDIR    OUTDIR/cttune_VERSION_ARCH.deb, .buildinfo and .changes, and
#                          the source package OUTDIR/cttune_VERSION.dsc and .tar.xz;
#                          prints the .deb's path (the build log: OUTDIR/build-deb.log)
set -euo pipefail
out=$(realpath -m "${1:?usage: build-deb.sh OUTDIR}")
cd "$(dirname "$0")/.."
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
mkdir -p "$out"
rm -f "$out"/cttune_* "$out"/cttune-dbgsym_*
log=$out/build-deb.log
# No detached debug symbols package: the release binary is built without -g.
if ! DEB_DESTDIR="$out" DEB_BUILD_OPTIONS="noddebs ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b \
  --buildinfo-file="$out/cttune_${version}_${arch}.buildinfo" --buildinfo-option=-u"$out" \
  --changes-file="$out/cttune_${version}_${arch}.changes" --changes-option=-u"$out" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "build-deb: dpkg-buildpackage failed (whole log: $log)" >&2
  exit 1
fi
# debian/changelog and the binary must agree on the version.
binary_version=$(.build/release/cttune --version)
if [ "$binary_version" != "$version" ]; then
  echo "build-deb: debian/changelog says $version but cttune --version says $binary_version: add a changelog entry (dch -v $binary_version)" >&2
  exit 1
fi
# The package tree and debhelper's state files, not .build (see override_dh_auto_clean).
debian/rules clean >/dev/null 2>&1
# The source package, from the files git knows (tracked or new, not ignored):
# what `dpkg-buildpackage -us -uc` builds from, without the build cache.
source=$(mktemp -d)
trap 'rm -rf "$source"' EXIT
tree=$source/cttune-$version
mkdir -p "$tree"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  if [ -e "$file" ] || [ -L "$file" ]; then cp -P --parents -t "$tree" "$file"; fi
done
(cd "$source" && dpkg-source --build "cttune-$version" >>"$log" 2>&1)
mv "$source/cttune_$version.dsc" "$source/cttune_$version.tar.xz" "$out/"
echo "$out/cttune_${version}_${arch}.deb"
