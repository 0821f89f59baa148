#!/usr/bin/env bash
# The seed outage, side by side: the same loopback workload against the
# kernel's default sizing, kube-proxy's formula and cttune's plan, on a
# memory size small enough that the load-blind sizings matter. Needs root.
#   DURATION=90 scripts/bench-outage.sh
# Prints one table per workload. Restores the global max and hash size and
# deletes its namespaces whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
cttune=.build/release/cttune
loadgen=.build/release/ct-loadgen
duration=${DURATION:-90}
[ "$(id -u)" -eq 0 ] || { echo "bench-outage: needs root (network namespaces, global conntrack values)" >&2; exit 0; }

. scripts/global-conntrack.sh
global_conntrack_take
namespaces=()
state=$(mktemp -d)
mkdir -p "$state/var-lib" "$state/run"
cleanup() {
  rm -rf "$state"
  for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
  global_conntrack_restore
}
trap cleanup EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
entry_bytes=$(awk '$1=="nf_conntrack" {print $4}' /proc/slabinfo 2>/dev/null || echo 256)

# Sum of one column of the per-CPU statistics inside a namespace.
stat_sum() {
  ip netns exec "$1" python3 -c '
import sys
rows = [line.split() for line in open("/proc/net/stat/nf_conntrack")]
column = rows[0].index(sys.argv[1])
print(sum(int(row[column], 16) for row in rows[1:]))' "$2"
}

# run_case NAME MAX BUCKETS TIMEOUT-SETTER LOADGEN-ARGS...
run_case() {
  local name=$1 max=$2 buckets=$3 setter=$4; shift 4
  local ns="cttune-bench-$$-${#namespaces[@]}"
  namespaces+=("$ns")
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  printf 'table inet bench {\n chain input { type filter hook input priority 0; policy accept; ct state established,related accept; tcp dport 18999 drop; }\n}\n' \
    | ip netns exec "$ns" nft -f -
  echo "$buckets" > /proc/sys/net/netfilter/nf_conntrack_buckets
  echo "$max" > /proc/sys/net/netfilter/nf_conntrack_max
  $setter "$ns"
  local drops_before; drops_before=$(stat_sum "$ns" drop)
  local result; result=$(ip netns exec "$ns" "$loadgen" --seconds "$duration" --sample 0.5 "$@")
  local drops=$(( $(stat_sum "$ns" drop) - drops_before ))
  local memory=$(( max * entry_bytes + buckets * 8 ))
  printf '%-16s %9s %9s %10s %10s %9s %10s %9s\n' "$name" "$max" "$buckets" "$(echo "scale=1; $memory / 1048576" | bc) MiB" \
    "$(echo "$result" | json 'd["peak_count"]')" "$drops" "$(echo "$result" | json 'd["failures"]')" "$(echo "$result" | json 'd["connections"]')"
  ip netns delete "$ns"
}

boot_timeouts() { :; }
kube_proxy_timeouts() {
  ip netns exec "$1" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=86400 net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600
}

compare() { # TITLE PROFILE MEMORY LOADGEN-ARGS...
  local title=$1 profile=$2 memory=$3; shift 3
  local plan; plan=$("$cttune" plan --profile "$profile" --memory "$memory" --explain --format json)
  local anchors='d["estimate"]["anchors"]'
  # The namespace gets the planned timeouts; max and buckets are global and set
  # above. apply runs with private, empty /var/lib and /run (its journal and
  # lock), so the benchmark leaves nothing on the host.
  cttune_timeouts() {
    ip netns exec "$1" unshare -m --propagation private sh -c \
      'mount --bind "$0/var-lib" /var/lib && mount --bind "$0/run" /run && shift && exec "$@"' "$state" \
      sh "$cttune" apply --profile "$profile" --memory "$memory" --runtime-only --allow-partial >/dev/null \
      || echo "bench-outage: cttune apply failed in $1" >&2
  }
  echo "== $title ($duration s, sizings for $memory of RAM, $entry_bytes B per entry)"
  printf '%-16s %9s %9s %10s %10s %9s %10s %9s\n' sizing max buckets "mem@max" "peak" drops failures flows
  run_case "kernel default" "$(echo "$plan" | json "$anchors[0]['max']")" "$(echo "$plan" | json "$anchors[0]['buckets']")" boot_timeouts "$@"
  run_case "kube-proxy" "$(echo "$plan" | json "$anchors[1]['max']")" "$(echo "$plan" | json "$anchors[1]['buckets']")" kube_proxy_timeouts "$@"
  run_case "cttune" "$(echo "$plan" | json 'd["settings"][0]["planned"]')" "$(echo "$plan" | json 'd["settings"][1]["planned"]')" cttune_timeouts "$@"
  echo
}

echo "Reproduce: make bench (or DURATION=$duration scripts/bench-outage.sh after swift build -c release)"
compare "steady: 300 connections/s, client closes first" scripts/bench-profiles/loopback-web.yaml 512M --rate 300
compare "flood: 200 connections/s + 2000 unanswered SYNs/s" scripts/bench-profiles/loopback-flood.yaml 1G \
  --rate 200 --half-open-port 18999 --half-open-rate 2000
