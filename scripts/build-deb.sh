#!/usr/bin/env bash
# Builds the Debian package from the release binary and the generated man page
# (make deb builds both first):
#   build-deb.sh OUTDIR      writes OUTDIR/cttune_VERSION_ARCH.deb and prints its path
# DEB_MAINTAINER overrides the Maintainer field.
set -euo pipefail
out=${1:?usage: build-deb.sh OUTDIR}
binary=.build/release/cttune
maintainer=${DEB_MAINTAINER:-$(git log -1 --format='%cn <%ce>')}
version=$("$binary" --version)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/cttune

# Debian 12 keeps packaged units in /lib/systemd/system and zsh's packaged
# completions in vendor-completions.
make --no-print-directory install-files DESTDIR="$root" PREFIX=/usr INSTALL_FROM=.build/release \
  UNITDIR=/lib/systemd/system ZSHCOMPDIR=/usr/share/zsh/vendor-completions >/dev/null
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/cttune"
gzip -9n "$root/usr/share/man/man1/cttune.1"

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
year=$(date -u -d "@$epoch" +%Y)
doc=$root/usr/share/doc/cttune
install -d "$doc"
cat > "$doc/copyright" <<COPYRIGHT
cttune: sizes Linux connection tracking (nf_conntrack) for a host's load.

Copyright $year the cttune authors.

The Swift runtime and Foundation are linked in statically:
Copyright (c) Apple Inc. and the Swift project authors, Apache License 2.0
with Runtime Library Exception; on Debian systems the Apache License 2.0 is in
/usr/share/common-licenses/Apache-2.0.
COPYRIGHT
printf 'cttune (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- %s  %s\n' \
  "$version" "$version" "$maintainer" "$(date -u -R -d "@$epoch")" | gzip -9n > "$doc/changelog.gz"
# Yams (the YAML parser) compiles its own copy of libyaml into the binary: a
# Swift package cannot link the system one.
install -d "$root/usr/share/lintian/overrides"
printf '# Yams vendors libyaml as a Swift module; Swift packages link it statically.\ncttune: embedded-library libyaml [usr/bin/cttune]\n' \
  > "$root/usr/share/lintian/overrides/cttune"
find "$root" -type d -exec chmod 0755 {} +

install -d "$root/DEBIAN"
# dpkg-shlibdeps reads the package's control file from debian/ beside the tree.
install -d "$stage/debian"
printf 'Source: cttune\n\nPackage: cttune\nArchitecture: any\n' > "$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -e cttune/usr/bin/cttune 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
case "$depends" in *libkmod2*) ;; *) echo "build-deb: libkmod2 missing from Depends ($depends)" >&2; exit 1 ;; esac
cat > "$root/DEBIAN/control" <<CONTROL
Package: cttune
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Description: size Linux connection tracking for the load a host carries
 cttune plans nf_conntrack_max, the conntrack hash size and the conntrack
 timeouts from a load profile (new flows per second, how they close, bursts),
 applies them to the running kernel and to sysctl.d and modprobe.d with a
 journal and rollback, and diagnoses a full table before it drops packets.
 .
 The package ships the load profiles, systemd units that apply the plan at
 boot and write Prometheus metrics every minute, the manual page and shell
 completions.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

mkdir -p "$out"
package=$out/cttune_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$package" >/dev/null
echo "$package"
