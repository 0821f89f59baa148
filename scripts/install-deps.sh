#!/usr/bin/env bash
# Installs the Debian packages cttune needs, only those missing.
#   install-deps.sh build   libkmod-dev, libmnl-dev, libnftables-dev, libyaml-dev (headers and pkg-config files for CKmod, CMnl,
#                           CNftables, CYaml)
#   install-deps.sh package the build set plus what dpkg-buildpackage needs (make deb)
#   install-deps.sh image   the package set plus mmdebstrap (make image)
#   install-deps.sh test    the build and package sets plus the tools the test suite drives
#                           (gdb: the test watchdog prints a hung run's stacks)
#                           (prometheus: promtool and the server, with prometheus-node-exporter
#                           for the alerting end-to-end test; their services are not started)
set -euo pipefail
build=(libkmod-dev libmnl-dev libnftables-dev libyaml-dev pkg-config)
package=(dpkg-dev debhelper)
test=(iproute2 procps nftables kmod conntrack iptables strace time bc cpio ufw firewalld python3 python3-venv systemd man-db mandoc zsh fish binutils lintian cloud-init rpm mmdebstrap gdb prometheus prometheus-node-exporter)
case "${1:-build}" in
  build) wanted=("${build[@]}") ;;
  package) wanted=("${build[@]}" "${package[@]}") ;;
  image) wanted=("${build[@]}" "${package[@]}" mmdebstrap) ;;
  test) wanted=("${build[@]}" "${package[@]}" "${test[@]}") ;;
  *) echo "usage: $0 build|package|image|test" >&2; exit 64 ;;
esac
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "need root to install ${missing[*]}: run 'sudo apt-get install ${missing[*]}'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# firewalld's and ufw's packages would start the daemon on the host, which
# would firewall it: the tests run them only inside network namespaces. A
# policy-rc.d answering 101 makes invoke-rc.d/deb-systemd-invoke skip the start.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
