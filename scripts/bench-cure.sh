#!/usr/bin/env bash
# The cures, proven on the kernel: a DNS-like load (UDP to one port, one
# exchange per query) plus a TCP service whose replies are accepted only by
# `ct state established,related accept`, in one network namespace, run
#   1. at the kernel's default sizing,
#   2. at cttune's plan without classes (max M entries, M MiB at max),
#   3. with the DNS class under its `timeouts` cure and the max at M/4,
#   4. with the DNS class notracked,
# then `cttune rollback --all` in the namespace, compared with the ruleset
# before the cures. Needs root; prints one table.
#   RATE=10000 DURATION=90 scripts/bench-cure.sh
# Restores the global max and hash size and deletes its namespace whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
cttune=${CTTUNE:-.build/release/cttune}
loadgen=${LOADGEN:-.build/release/ct-loadgen}
rate=${RATE:-10000}
duration=${DURATION:-90}
memory=${MEMORY:-16G}
tcp_rate=50
[ "$(id -u)" -eq 0 ] || { echo "bench-cure: needs root (network namespaces, global conntrack values)" >&2; exit 0; }

. scripts/global-conntrack.sh
global_conntrack_take
ns="cttune-cure-$$"
state=$(mktemp -d)
mkdir -p "$state/var-lib" "$state/run"
cleanup() {
  rm -rf "$state"
  ip netns delete "$ns" 2>/dev/null || true
  global_conntrack_restore
}
trap cleanup EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
entry_bytes=$(cat /sys/kernel/slab/nf_conntrack/object_size 2>/dev/null || awk '$1=="nf_conntrack" {print $4}' /proc/slabinfo 2>/dev/null || echo 256)
mib() { echo "scale=1; $1 / 1048576" | bc; }

stat_sum() {
  ip netns exec "$ns" python3 -c '
import sys
rows = [line.split() for line in open("/proc/net/stat/nf_conntrack")]
column = rows[0].index(sys.argv[1])
print(sum(int(row[column], 16) for row in rows[1:]))' "$1"
}

# cttune in the namespace, with private, empty /var/lib and /run (its journal and lock).
in_ns_cttune() {
  ip netns exec "$ns" unshare -m --propagation private sh -c \
    'mount --bind "$0/var-lib" /var/lib && mount --bind "$0/run" /run && shift && exec "$@"' "$state" sh "$cttune" "$@"
}

profiles="$state/profiles"
mkdir -p "$profiles"
common="load:
  tcp: {new_per_second: $tcp_rate, established_seconds: 0.1}
  udp: {new_per_second: 0}
  other_per_second: 0
burst_factor: 1"
printf 'description: the proof load without classes\nload:\n  tcp: {new_per_second: %s, established_seconds: 0.1}\n  udp: {new_per_second: %s, stream_ratio: 0}\n  other_per_second: 0\nburst_factor: 1\n' \
  "$tcp_rate" "$rate" > "$profiles/none.yaml"
for cure in timeouts notrack; do
  printf 'description: the proof load, its DNS class cured with %s\n%s\nclasses:\n  - name: dns\n    match: {protocol: udp, ports: 18082}\n    load: {udp: {new_per_second: %s, stream_ratio: 0}}\n    cure: %s\n' \
    "$cure" "$common" "$rate" "$cure" > "$profiles/$cure.yaml"
done

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
# Only TCP needs state: its replies come back to the client's ephemeral port.
ip netns exec "$ns" nft -f - <<'EOF'
table inet fw {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" udp dport 18082 accept
		iif "lo" udp sport 18082 accept
		iif "lo" tcp dport 18080 accept
		meta l4proto tcp ct state established,related accept
	}
}
EOF
before=$(ip netns exec "$ns" nft list ruleset)

plan_none=$("$cttune" plan --profile "$profiles/none.yaml" --memory "$memory" --explain --format json)
setting() { echo "$1" | json "[s['planned'] for s in d['settings'] if s['key'] == '$2'][0]"; }
kernel_max=$(echo "$plan_none" | json 'd["estimate"]["anchors"][0]["max"]')
kernel_buckets=$(echo "$plan_none" | json 'd["estimate"]["anchors"][0]["buckets"]')
m_max=$(setting "$plan_none" net.netfilter.nf_conntrack_max)
m_buckets=$(setting "$plan_none" nf_conntrack.hashsize)
m_bytes=$(echo "$plan_none" | json 'd["estimate"]["memory_bytes"]')

# run NAME MAX BUCKETS SECONDS: the load, then one row.
run() {
  local name=$1 max=$2 buckets=$3 seconds=$4
  echo "$buckets" > /proc/sys/net/netfilter/nf_conntrack_buckets
  echo "$max" > /proc/sys/net/netfilter/nf_conntrack_max
  ip netns exec "$ns" conntrack -F >/dev/null 2>&1 || true
  local drops_before early_before; drops_before=$(stat_sum drop); early_before=$(stat_sum early_drop)
  local result; result=$(ip netns exec "$ns" "$loadgen" --rate "$tcp_rate" --udp-rate "$rate" --seconds "$seconds" --sample 0.5)
  local drops=$(( $(stat_sum drop) - drops_before )) early=$(( $(stat_sum early_drop) - early_before ))
  local dns; dns=$(ip netns exec "$ns" conntrack -L -p udp --dport 18082 2>/dev/null | wc -l)
  local peak; peak=$(echo "$result" | json 'd["peak_count"]')
  printf '%-20s %8s %8s %8s %9s %8s %7s %8s %9s %10s %9s\n' "$name" "$max" "$(mib $(( max * entry_bytes + buckets * 8 )))" "$peak" \
    "$(mib $(( peak * entry_bytes + peak * 8 )))" "$dns" "$drops" "$early" "$(echo "$result" | json 'd["failures"]')" \
    "$(echo "$result" | json 'd["udp_flows"]')" "$(echo "$result" | json 'd["connections"]')"
}

echo "== the cures, proven: $rate UDP queries/s to one port plus $tcp_rate TCP flows/s behind ct state, $duration s per run"
echo "   sizings for $memory of RAM, $entry_bytes B per entry; M = cttune's plan without classes: $m_max entries, $(mib "$m_bytes") MiB at max"
echo "   peak: largest nf_conntrack_count (0.5 s samples); MiB@peak: its entries and a bucket each; dns@end: the class's entries"
echo "   at the end; drops: packets dropped for want of an entry; evicted: live unassured entries the kernel dropped to make room"
printf '%-20s %8s %8s %8s %9s %8s %7s %8s %9s %10s %9s\n' run max "MiB@max" peak "MiB@peak" "dns@end" drops evicted "tcp fail" \
  "udp flows" "tcp flows"
run "kernel default" "$kernel_max" "$kernel_buckets" "$duration"
in_ns_cttune apply --profile "$profiles/none.yaml" --memory "$memory" --runtime-only --allow-partial >/dev/null
run "cttune, no classes" "$m_max" "$m_buckets" "$duration"
in_ns_cttune apply --profile "$profiles/timeouts.yaml" --memory "$memory" --runtime-only --allow-partial >/dev/null
quarter=$(( m_max / 4 ))
run "timeouts cure, M/4" "$quarter" "$(( (quarter + 511) / 512 * 512 ))" "$duration"
plan_timeouts=$("$cttune" plan --profile "$profiles/timeouts.yaml" --memory "$memory" --format json)
in_ns_cttune apply --profile "$profiles/notrack.yaml" --memory "$memory" --runtime-only --allow-partial >/dev/null
plan_notrack=$(ip netns exec "$ns" "$cttune" plan --profile "$profiles/notrack.yaml" --memory "$memory" --format json)
run "notrack cure" "$(setting "$plan_notrack" net.netfilter.nf_conntrack_max)" "$(setting "$plan_notrack" nf_conntrack.hashsize)" \
  "$(( duration / 3 ))"
in_ns_cttune rollback --all >/dev/null
after=$(ip netns exec "$ns" nft list ruleset)
echo "   the plan with the timeouts cure keeps the max at $(setting "$plan_timeouts" net.netfilter.nf_conntrack_max) entries (sized for the worst GC phase)"
if [ "$before" = "$after" ]; then
  echo "   rollback --all: the namespace's ruleset is identical to the one before the cures"
else
  echo "   rollback --all: the ruleset DIFFERS from the one before the cures"
  diff <(echo "$before") <(echo "$after") || true
fi
