#!/usr/bin/env bash
# Benchmarks, printed as tables; not part of the pass/fail suite.
# Run through `make bench` (which builds the release binary first).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/cttune
runs=${RUNS:-50}

# Average wall time of a command over $runs runs, in milliseconds.
average_ms() {
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1 || true; done
  end=$(date +%s%N)
  echo "scale=3; ($end - $start) / $runs / 1000000" | bc
}

echo "== cttune plan against reading the same values with sysctl ($runs runs each)"
keys=(net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_buckets net.netfilter.nf_conntrack_count)
for key in $(sysctl -N -a 2>/dev/null | grep -E '^net\.netfilter\.nf_conntrack_(tcp_timeout_(established|time_wait|close|close_wait|fin_wait|last_ack|syn_sent|syn_recv)|udp_timeout|udp_timeout_stream|generic_timeout)$'); do
  keys+=("$key")
done
plan_ms=$(average_ms "$bin" plan --format json)
sysctl_ms=$(average_ms sysctl "${keys[@]}")
printf '%-44s %10s\n' "command" "ms/run"
printf '%-44s %10s\n' "cttune plan --format json" "$plan_ms"
printf '%-44s %10s\n' "sysctl (${#keys[@]} keys)" "$sysctl_ms"
printf 'ratio plan / sysctl: %s\n' "$(echo "scale=2; $plan_ms / $sysctl_ms" | bc)"

for extra in scripts/bench-*.sh; do
  [ -x "$extra" ] && { echo; "$extra"; }
done
exit 0
