#!/usr/bin/env bash
# The GC-phase matrix: the planner's steady and worst-phase peaks against the
# kernel's measured peaks, for short-connection loads (client closes first,
# every flow ends in TIME_WAIT) at several time_wait timeouts and rates, each
# started right after a garbage-collection pass ("synced", the worst phase)
# and at random moments. Needs root. Not pass/fail: it prints a table.
#   TIMEOUTS="5 30 120" RATES="100 300" RANDOM_PHASES=3 scripts/bench-gc.sh
# The global nf_conntrack_max is left as it is (far above these loads), so a
# "fits" column says whether every measured peak stayed under cttune's max;
# the drop counters show the kernel's own verdict. Both rates of one timeout
# run at the same time in two namespaces: the same entry mix, so the
# gc_worker's pacing is what each would see alone (its running mean is over
# remaining lifetimes, not counts).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-.build/release}
cttune=$bin/cttune
loadgen=$bin/ct-loadgen
timeouts=${TIMEOUTS:-5 30 120}
rates=${RATES:-100 300}
random_phases=${RANDOM_PHASES:-3}
# Each run's ct-loadgen output (samples included) is kept here when set.
keep=${KEEP:-}
[ "$(id -u)" -eq 0 ] || { echo "bench-gc: needs root (network namespaces)" >&2; exit 0; }

work=$(mktemp -d)
namespaces=()
cleanup() {
  for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

new_namespace() { # NAME: a namespace whose loopback flows are tracked
  local ns="cttune-gcbench-$$-$1"
  namespaces+=("$ns")
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  printf 'table inet bench {\n chain input { type filter hook input priority 0; policy accept; ct state established,related accept; }\n}\n' \
    | ip netns exec "$ns" nft -f -
  echo "$ns"
}

drops() { # NS: the namespace's drop counter summed over CPUs
  ip netns exec "$1" python3 -c '
rows = [line.split() for line in open("/proc/net/stat/nf_conntrack")]
column = rows[0].index("drop")
print(sum(int(row[column], 16) for row in rows[1:]))'
}

# Returns right after a GC pass: a sentinel namespace's 1 s UDP entries are
# removed only by the gc_worker, so the moment its count drops is a pass.
wait_for_gc_pass() {
  local ns; ns=$(new_namespace "sync-$RANDOM")
  ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=1
  ip netns exec "$ns" bash -c 'for port in $(seq 20001 20300); do echo x > /dev/udp/127.0.0.1/$port; done 2>/dev/null; true'
  local held; held=$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count)
  local deadline=$((SECONDS + 75))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count)" -lt $((held / 2)) ] && break
    sleep 0.05
  done
  ip netns delete "$ns"
}

profile() { # RATE TIMEOUT: a profile describing the load exactly
  local file="$work/load-$1-$2.yaml"
  printf 'load:\n  tcp:\n    new_per_second: %s\n    established_seconds: 0\n    rst_close_ratio: 0\n    orphan_ratio: 0\n    half_open_ratio: 0\n  udp:\n    new_per_second: 0\n  other_per_second: 0\nburst_factor: 1\ntimeouts:\n  nf_conntrack_tcp_timeout_time_wait: %s\n' "$1" "$2" > "$file"
  echo "$file"
}

echo "Reproduce: make bench (or TIMEOUTS=\"$timeouts\" RATES=\"$rates\" RANDOM_PHASES=$random_phases scripts/bench-gc.sh after swift build -c release)"
echo "kernel $(uname -r); each cell: 1 synced + $random_phases random phases"
echo "steady/worst: predicted peaks; cttune: planned max (headroom 1.25); peaks measured per phase; after 1st reap: the"
echo "mean over phases of the largest count after the first reap (the steady sawtooth); ratio: cttune max / largest peak"
printf '%-8s %6s %8s %8s %8s  %-20s %-20s %9s %6s %6s %5s %8s %8s %5s\n' \
  time_wait rate steady worst cttune "synced (1st reap)" "random min/mean/max" "after 1st" ratio drops fail kernel kube fits
for timeout in $timeouts; do
  # Long enough for the worst phase: the first reap comes up to about 65 s
  # after an idle pass, and entries live time_wait seconds.
  seconds=$((timeout + ${EXTRA_SECONDS:-75}))
  declare -A peaks=() reaps=() settled=() dropped=() failed=()
  for phase in synced $(seq 1 "$random_phases"); do
    pids=() outputs=() nss=()
    for rate in $rates; do
      ns=$(new_namespace "$timeout-$rate-$phase")
      ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait="$timeout"
      nss+=("$ns")
    done
    if [ "$phase" = synced ]; then wait_for_gc_pass; else sleep $((RANDOM % 60)); fi
    i=0
    for rate in $rates; do
      ns=${nss[$i]}
      echo "$(drops "$ns")" > "$work/drops-$ns"
      ip netns exec "$ns" "$loadgen" --rate "$rate" --seconds "$seconds" --sample 0.25 > "$work/out-$ns" &
      pids+=($!)
      i=$((i + 1))
    done
    wait "${pids[@]}"
    i=0
    for rate in $rates; do
      ns=${nss[$i]}
      out=$(cat "$work/out-$ns")
      [ -n "$keep" ] && mkdir -p "$keep" && cp "$work/out-$ns" "$keep/$timeout-$rate-$phase.json"
      peaks[$rate]+="$(echo "$out" | json 'd["peak_count"]') "
      settled[$rate]+="$(echo "$out" | json 'next((max(c for t, c in d["samples"][i + 1:]) for i, (a, b) in enumerate(zip(d["samples"], d["samples"][1:])) if b[1] < a[1] * 0.9), 0)') "
      if [ "$phase" = synced ]; then
        reaps[$rate]=$(echo "$out" | json 'next((f"{b[0]:.0f}s" for a, b in zip(d["samples"], d["samples"][1:]) if b[1] < a[1] * 0.9), "-")')
      fi
      dropped[$rate]=$(( ${dropped[$rate]:-0} + $(drops "$ns") - $(cat "$work/drops-$ns") ))
      failed[$rate]=$(( ${failed[$rate]:-0} + $(echo "$out" | json 'd["failures"]') ))
      ip netns delete "$ns"
      i=$((i + 1))
    done
  done
  for rate in $rates; do
    plan=$("$cttune" plan --profile "$(profile "$rate" "$timeout")" --explain --format json)
    read -r steady worst max kernel kube < <(echo "$plan" | json '" ".join(str(x) for x in [d["estimate"]["steady_peak_entries"], d["estimate"]["worst_peak_entries"], d["settings"][0]["planned"], d["estimate"]["anchors"][0]["max"], d["estimate"]["anchors"][1]["max"]])')
    read -r synced rmin rmean rmax all ratio fits after < <(python3 -c '
import sys
values = [int(v) for v in sys.argv[1].split()]
synced, randoms = values[0], values[1:] or [values[0]]
top = max(values)
settled = [int(v) for v in sys.argv[3].split() if int(v) > 0]
after = round(sum(settled) / len(settled)) if settled else "-"
print(synced, min(randoms), round(sum(randoms) / len(randoms)), max(randoms), top, f"{int(sys.argv[2]) / top:.2f}", "yes" if top <= int(sys.argv[2]) else "NO", after)' "${peaks[$rate]}" "$max" "${settled[$rate]}")
    printf '%-8s %6s %8s %8s %8s  %-20s %-20s %9s %6s %6s %5s %8s %8s %5s\n' \
      "${timeout}s" "$rate" "$steady" "$worst" "$max" "$synced (${reaps[$rate]})" "$rmin/$rmean/$rmax" "$after" "$ratio" \
      "${dropped[$rate]}" "${failed[$rate]}" "$kernel" "$kube" "$fits"
  done
  unset peaks reaps settled dropped failed
done
