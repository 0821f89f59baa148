#!/usr/bin/env bash
# Installs a cttune .deb into a throwaway copy of a minimal Debian root and
# runs its life cycle as an administrator would: install, enable the units,
# apply, remove, purge. Each step's output follows a "=== STEP" line.
#
#   unshare --net --mount --propagation private deb-lifecycle.sh PACKAGE.deb LOWER WORK
#
# LOWER (scripts/debian-minbase.sh) is never written: the root is an overlay
# whose upper directory, WORK/upper, keeps every change after the namespace
# ends. dpkg --root runs the maintainer scripts chrooted into the root, and
# the /proc mounted there is the host's kernel: the private network
# namespace (unshare --net) is what keeps the host's conntrack values out of
# reach; the global ones (max, hash size) are read-only in it.
set -euo pipefail
deb=${1:?usage: deb-lifecycle.sh PACKAGE.deb LOWER WORK}
lower=${2:?}
work=${3:?}
if [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
  echo "deb-lifecycle: run me in a network namespace of my own (unshare --net)" >&2
  exit 1
fi
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
root=$work/root
mkdir -p "$work/upper" "$work/work" "$root"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
ip link set lo up

timeouts() {
  for file in /proc/sys/net/netfilter/nf_conntrack_*timeout*; do echo "${file##*/}=$(cat "$file")"; done
}
step() { echo "=== $1"; }
cttune_files=(/etc/sysctl.d/90-cttune.conf /etc/sysctl.d/99-zz-cttune.conf /etc/modprobe.d/cttune.conf
  /etc/modprobe.d/cttune-blacklist.conf /etc/modules-load.d/cttune.conf /var/lib/cttune)

step "timeouts before"; timeouts
step install; dpkg --root="$root" --install "$deb" 2>&1
step enable; systemctl --root="$root" enable cttune-apply.service cttune-status.timer 2>&1
step "enabled links"; (cd "$root" && find etc/systemd -name 'cttune*' | sort)
# As cttune-apply.service would, plus the files; the JSON goes to WORK/apply.json.
# The profile pins two timeouts, so that the apply changes them whatever the
# host (it lives in the root's /tmp, a tmpfs: not one of cttune's files).
step apply
printf 'extends: default\ntimeouts:\n  nf_conntrack_tcp_timeout_established: 7440\n  nf_conntrack_udp_timeout: 45\n' >"$root/tmp/pinned.yaml"
status=0
chroot "$root" /usr/bin/cttune apply --profile /tmp/pinned.yaml --allow-partial --format json >"$work/apply.json" 2>"$work/apply.err" || status=$?
cat "$work/apply.err"
echo "exit $status"
step "timeouts applied"; timeouts
step "rollback help"; chroot "$root" /usr/bin/cttune rollback --help 2>&1 || true
step remove; dpkg --root="$root" --remove cttune 2>&1
step "timeouts after remove"; timeouts
# Whatever rollback left, and the files of commands this test did not run
# (blacklist, --on-conflict override): purge must remove them all.
step "left for purge"
for path in "${cttune_files[@]}"; do
  if [ "$path" = /var/lib/cttune ]; then
    mkdir -p "$root$path/journal" && touch "$root$path/journal/left-behind.json"
  elif [ ! -e "$root$path" ]; then
    mkdir -p "$(dirname "$root$path")" && echo "# written by the life-cycle test" > "$root$path"
  fi
  echo "$path"
done
step purge; dpkg --root="$root" --purge cttune 2>&1
step "dpkg status"; dpkg --root="$root" -l cttune 2>&1 || true
