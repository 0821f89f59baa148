#!/usr/bin/env bash
# What the binary costs before it does any work: installed size, and the CPU
# (user + system, perf's task-clock) of start-up, a plan and a healthy timer
# run, against `sysctl` reading the same keys.
#   bench-startup.sh [BINARY]     default .build/release/cttune (make release)
#   BEFORE=OLD_BINARY bench-startup.sh
#                                 measures OLD_BINARY too, in a column beside
#                                 it; without BEFORE the column holds the
#                                 figures recorded before the Foundation-free
#                                 build (README, Benchmarks).
# RUNS (default 200) runs per command; the status runs need root for the
# kernel log and the per-CPU counters, as the timer unit has.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/cttune}
before=${BEFORE:-}
runs=${RUNS:-200}
[ -x "$bin" ] || { echo "build cttune first (make release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Recorded on the 2-CPU VM (kernel 6.18) with the release build (make release)
# that linked all of Foundation, ICU's data and Yams (commit d61b627).
declare -A recorded=(
  [binary]=82.2 [installed]=59.5 [version]=5.1 [plan]=14.6 [healthy]=7.8 [unit]=11.6
)

# Mean CPU milliseconds (task-clock) of a command over $runs runs.
cpu_ms() {
  if command -v perf >/dev/null && perf stat -x, -e task-clock true >/dev/null 2>&1; then
    perf stat -r "$runs" -x, -e task-clock -- "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ { printf "%.1f\n", $1 }'
  else
    # getrusage of the children, through bash's `times` (millisecond resolution).
    local user sys
    read -r user sys < <(bash -c 'for _ in $(seq '"$runs"'); do "$@" >/dev/null 2>&1 || true; done; times' _ "$@" |
      sed -n 2p | sed -E 's/([0-9]+)m([0-9.]+)s/\1 \2/g' | awk '{ print $1 * 60 + $2, $3 * 60 + $4 }')
    echo "scale=1; ($user + $sys) * 1000 / $runs" | bc
  fi
}

# Bytes of the binary as installed (dh_strip and rpm strip it) plus what the
# package installs beside it: profiles, units, completions, the man page.
installed_mib() {
  local binary=$1 total
  strip -o "$work/stripped" "$binary"
  total=$(stat -c %s "$work/stripped")
  for file in profiles/*.yaml contrib/systemd/cttune-* contrib/systemd/cttune.tmpfiles .build/fleet/cttune.1; do
    [ -f "$file" ] && total=$((total + $(stat -c %s "$file")))
  done
  for shell in bash zsh fish; do
    total=$((total + $("$binary" --generate-completion-script "$shell" | wc -c)))
  done
  echo "scale=1; $total / 1048576" | bc
}

# One column of figures for a binary, in the order of the rows below.
measure() {
  local binary=$1
  echo "$(echo "scale=1; $(stat -c %s "$binary") / 1048576" | bc)"
  installed_mib "$binary"
  cpu_ms "$binary" --version
  cpu_ms "$binary" plan --format json
  cpu_ms "$binary" status --quiet --window 0
  # The timer unit's own command line (contrib/systemd/cttune-status.service),
  # with the 1 s window: fewer runs, each takes a second.
  runs=$(( runs < 20 ? runs : 20 )) cpu_ms "$binary" status --textfile "$work/cttune.prom" --quiet --census-every 15 --all-namespaces
}

keys=(net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_buckets net.netfilter.nf_conntrack_count)
for key in $(sysctl -N -a 2>/dev/null | grep -E '^net\.netfilter\.nf_conntrack_(tcp_timeout_(established|time_wait|close|close_wait|fin_wait|last_ack|syn_sent|syn_recv)|udp_timeout|udp_timeout_stream|generic_timeout)$'); do
  keys+=("$key")
done

mapfile -t after < <(measure "$bin")
if [ -n "$before" ]; then
  mapfile -t old < <(measure "$before")
  label="$before"
else
  old=("${recorded[binary]}" "${recorded[installed]}" "${recorded[version]}" "${recorded[plan]}" "${recorded[healthy]}" "${recorded[unit]}")
  label="recorded"
fi
sysctl_ms=$(cpu_ms sysctl "${keys[@]}")

echo "== start-up and size, before (${label}) and after ($bin); CPU = user + system, mean of $runs runs"
printf '%-62s %9s %9s %8s\n' "figure" "before" "after" "target"
rows=("binary size, MiB (unstripped)" "installed package, MiB (binary stripped)" "cttune --version, ms CPU"
  "cttune plan --format json, ms CPU" "healthy timer run (status --quiet --window 0), ms CPU"
  "timer unit's command line (1 s window, 20 runs), ms CPU")
targets=("-" "20" "2" "10" "6" "-")
for i in "${!rows[@]}"; do
  printf '%-62s %9s %9s %8s\n' "${rows[$i]}" "${old[$i]}" "${after[$i]}" "${targets[$i]}"
done
printf '%-62s %9s %9s %8s\n' "sysctl (${#keys[@]} keys), ms CPU" "" "$sysctl_ms" "-"
