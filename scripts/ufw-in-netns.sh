#!/usr/bin/env bash
# Enables ufw with its default stateful rules inside network namespace NETNS,
# leaving its iptables rules loaded there.
#   ufw-in-netns.sh NETNS
# ufw writes /etc/ufw and /etc/default/ufw: it runs in a private mount
# namespace where copies are bound over both, so the host's files and
# firewall stay untouched. Its sysctl file is replaced by /dev/null
# (the sysctls it sets are not what is being tested).
set -euo pipefail
netns=${1:?usage: $0 NETNS}
command -v ufw >/dev/null || { echo "ufw is not installed (apt-get install ufw)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a /etc/ufw "$work/ufw"
cp /etc/default/ufw "$work/default-ufw"
sed -i 's|^IPT_SYSCTL=.*|IPT_SYSCTL=/dev/null|' "$work/default-ufw"
ip netns exec "$netns" unshare --mount --propagation private bash -euc '
  mount --bind "$1/ufw" /etc/ufw
  mount --bind "$1/default-ufw" /etc/default/ufw
  ufw --force enable >/dev/null
  ufw allow 22/tcp >/dev/null
' _ "$work"
