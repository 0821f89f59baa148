#!/usr/bin/env bash
# Provides Debian's lsinitramfs for the initramfs tests without installing
# initramfs-tools (whose dependencies include udev): downloads
# initramfs-tools-core once into .cache/debs and extracts lsinitramfs and
# unmkinitramfs into .cache/initramfs-tools/bin. They need only sh and cpio.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.cache/initramfs-tools/bin
[ -x "$bin/lsinitramfs" ] && [ -x "$bin/unmkinitramfs" ] && exit 0
mkdir -p .cache/debs "$bin"
deb=$(ls .cache/debs/initramfs-tools-core_*.deb 2>/dev/null | tail -1 || true)
if [ -z "$deb" ]; then
  (cd .cache/debs && apt-get download -q initramfs-tools-core >/dev/null 2>&1) || {
    apt-get update -q >/dev/null
    (cd .cache/debs && apt-get download -q initramfs-tools-core >/dev/null 2>&1)
  }
  deb=$(ls .cache/debs/initramfs-tools-core_*.deb | tail -1)
fi
work=$(mktemp -d .cache/initramfs-tools.XXXXXX)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work"
cp "$work/usr/bin/lsinitramfs" "$work/usr/bin/unmkinitramfs" "$bin/"
echo "initramfs-lister: $bin" >&2
