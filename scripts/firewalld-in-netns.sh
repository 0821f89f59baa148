#!/usr/bin/env bash
# Runs firewalld with its default configuration (zone public) inside network
# namespace NETNS until it has loaded its nftables rules, then stops it and
# leaves those rules loaded there.
#   firewalld-in-netns.sh NETNS
# firewalld needs a D-Bus system bus and writes /etc/firewalld and
# /run/firewalld: it runs in a private mount namespace with its own bus and
# copies of those directories, so the host's bus, files and firewall stay
# untouched. CleanupOnExit=no keeps the rules after it stops. It also runs in
# a PID namespace of its own: when the script ends, the kernel kills every
# process left in it (the bus, polkitd that the bus started, firewalld), so
# no daemon outlives the script holding a file or a pipe of its caller.
set -euo pipefail
netns=${1:?usage: $0 NETNS}
command -v firewalld >/dev/null || { echo "firewalld is not installed (apt-get install firewalld)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/dbus" "$work/run" "$work/log"
cp -a /etc/firewalld "$work/etc"
sed -i 's/^CleanupOnExit=.*/CleanupOnExit=no/' "$work/etc/firewalld.conf"
grep -q '^CleanupOnExit=no' "$work/etc/firewalld.conf" || echo 'CleanupOnExit=no' >> "$work/etc/firewalld.conf"
ip netns exec "$netns" ip link set lo up
ip netns exec "$netns" unshare --mount --propagation private --pid --fork --mount-proc bash -euc '
  work=$1
  mkdir -p /run/dbus /run/firewalld
  mount --bind "$work/dbus" /run/dbus
  mount --bind "$work/etc" /etc/firewalld
  mount --bind "$work/run" /run/firewalld
  bus_pid=$(dbus-daemon --system --fork --nopidfile --print-pid --address=unix:path=/run/dbus/system_bus_socket)
  firewalld --nofork --nopid --log-file "$work/log/firewalld.log" &
  firewalld_pid=$!
  # firewalld does not always act on SIGTERM promptly: give it 5 s, then
  # SIGKILL (with CleanupOnExit=no its rules stay either way).
  stop() {
    kill "$firewalld_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$firewalld_pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$firewalld_pid" 2>/dev/null || true
    wait "$firewalld_pid" 2>/dev/null || true
    kill "$bus_pid" 2>/dev/null || true
  }
  trap stop EXIT
  for _ in $(seq 1 120); do
    state=$(firewall-cmd --state 2>/dev/null || true)
    if [ "$state" = running ] && nft list table inet firewalld >/dev/null 2>&1; then exit 0; fi
    kill -0 "$firewalld_pid" 2>/dev/null || break
    sleep 0.25
  done
  echo "firewalld did not reach the running state:" >&2
  tail -n 20 "$work/log/firewalld.log" >&2 || true
  exit 1
' _ "$work"
