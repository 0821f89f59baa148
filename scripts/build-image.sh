#!/usr/bin/env bash
# Builds the cttune container image from the Debian package: a minimal
# Debian root (mmdebstrap --variant=minbase) of this host's release with the
# package and its dependencies installed from the archive at build time (no
# network at run time), written as an OCI image layout archive with
# coreutils, gzip and tar alone (one layer; digests by sha256sum). Load it with
# `skopeo copy oci-archive:FILE docker-daemon:cttune:VERSION`, `podman load -i FILE`
# or `docker load -i FILE` (Docker 25+ reads OCI archives).
#   build-image.sh OUTDIR PACKAGE.deb   OUTDIR/cttune-image_VERSION_ARCH.oci.tar, prints its path
set -euo pipefail
out=$(realpath -m "${1:?usage: build-image.sh OUTDIR PACKAGE.deb}")
deb=$(realpath "${2:?usage: build-image.sh OUTDIR PACKAGE.deb}")
version=$(dpkg-deb --field "$deb" Version)
arch=$(dpkg --print-architecture)
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$work/blobs/sha256"
# Reproducible timestamps: the changelog's date.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l "$(dirname "$0")/../debian/changelog" -S Timestamp)}
# No documentation, man pages or locales in the image: the binary's --help is the manual there.
# The package's dependencies from the archive, then the package itself with dpkg.
depends=$(dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/[[:space:]]//g' | grep -v '^$' | LC_ALL=C sort -u | paste -sd, -)
mmdebstrap --quiet --variant=minbase --include="$depends" \
  --customize-hook="copy-in $deb /tmp" --customize-hook="chroot \"\$1\" dpkg -i /tmp/$(basename "$deb")" \
  --customize-hook="rm -f \"\$1\"/tmp/$(basename "$deb")" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/log/*' \
  "$suite" "$work/rootfs.tar" >&2
gzip -n -9 < "$work/rootfs.tar" > "$work/layer.tar.gz"
diff_id=$(sha256sum < "$work/rootfs.tar" | cut -d' ' -f1)
layer=$(sha256sum < "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$work/blobs/sha256/$layer"
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
goarch=$(case "$arch" in amd64) echo amd64 ;; arm64) echo arm64 ;; *) echo "$arch" ;; esac)
cat > "$work/config.json" <<JSON
{"architecture":"$goarch","os":"linux","created":"$created",
 "config":{"Entrypoint":[],"Cmd":["cttune","status"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
  "Labels":{"org.opencontainers.image.title":"cttune","org.opencontainers.image.version":"$version"}},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"$created","created_by":"mmdebstrap --variant=minbase --include=$depends $suite, dpkg -i cttune_${version}_$arch.deb"}]}
JSON
config=$(sha256sum < "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$work/blobs/sha256/$config"
cat > "$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
JSON
manifest=$(sha256sum < "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$work/blobs/sha256/$manifest"
cat > "$work/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,
  "annotations":{"org.opencontainers.image.ref.name":"$version","io.containerd.image.name":"cttune:$version"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci-layout"
image=$out/cttune-image_${version}_$arch.oci.tar
rm -f "$out"/cttune-image_*.oci.tar
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -C "$work" -cf "$image" oci-layout index.json blobs
echo "$image"
