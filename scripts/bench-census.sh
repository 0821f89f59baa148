#!/usr/bin/env bash
# The status census at scale: cttune status --census (ctnetlink, counted as it
# streams; by flow class, the default, and without classes, --top 0) against
# conntrack -L -o xml and conntrack -C on the same table,
# from 10 k to 1 M UDP entries in a network namespace with a ct state rule and
# a pinned 1 h UDP timeout (nothing expires between the reads). Then the CPU of
# a healthy timer run (counters only). Needs root.
#   SIZES="10000 100000 1000000" RUNS=3 CTTUNE=path/to/cttune scripts/bench-census.sh
# Times are the best of RUNS (the CPUs may be shared); memory is the peak RSS.
# Restores the global max and deletes its namespace whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
cttune=${CTTUNE:-.build/release/cttune}
sizes=${SIZES:-10000 100000 300000 1000000}
runs=${RUNS:-3}
[ "$(id -u)" -eq 0 ] || { echo "bench-census: needs root (network namespaces, global conntrack values)" >&2; exit 0; }
command -v conntrack >/dev/null || { echo "bench-census: needs conntrack (scripts/install-deps.sh test)" >&2; exit 0; }

. scripts/global-conntrack.sh
global_conntrack_take
ns="cttune-bench-census-$$"
quiet_ns="cttune-bench-quiet-$$"
work=$(mktemp -d)
cleanup() {
  ip netns delete "$ns" 2>/dev/null || true
  ip netns delete "$quiet_ns" 2>/dev/null || true
  rm -rf "$work"
  global_conntrack_restore
}
trap cleanup EXIT

largest=0
for size in $sizes; do [ "$size" -gt "$largest" ] && largest=$size; done
[ "$saved_max" -lt $((largest + 10000)) ] && echo $((largest + 10000)) > /proc/sys/net/netfilter/nf_conntrack_max

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3600
printf 'table inet bench {\n chain input { type filter hook input priority 0; policy accept; ct state established,related accept; }\n}\n' \
  | ip netns exec "$ns" nft -f -

# Adds UDP entries up to a count: one datagram per new tuple (127.a.b.c, port).
cat > "$work/fill.py" <<'PY'
import socket, sys
start, stop = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in range(start, stop):
    host, port = divmod(n, 64)
    a, rest = divmod(host, 250 * 250)
    b, c = divmod(rest, 250)
    try:
        s.sendto(b"x", ("127.%d.%d.%d" % (a + 1, b + 1, c + 1), 1024 + port))
    except OSError:
        pass
PY

# best_of COMMAND...: "seconds peak_kib cpu_seconds" of the fastest of $runs
# runs (cpu: user + system, the fairer figure when the CPUs are shared).
best_of() {
  local best="" line
  for _ in $(seq "$runs"); do
    /usr/bin/time -o "$work/time" -f '%e %M %U %S' ip netns exec "$ns" "$@" >/dev/null 2>&1 || true
    line=$(tail -1 "$work/time" | awk '{printf "%s %s %.2f", $1, $2, $3 + $4}')
    if [ -z "$best" ] || [ "$(echo "${line%% *} < ${best%% *}" | bc)" -eq 1 ]; then best=$line; fi
  done
  echo "$best"
}

# ratio A B: A / B to two places, "-" when B is zero (too fast to time).
ratio() {
  if [ "$(echo "$2 == 0" | bc)" -eq 1 ]; then echo -; else echo "scale=2; $1 / $2" | bc; fi
}

# The kernel's share: a dump that only counts headers (scripts/ctnetlink-floor.c).
floor=$work/ctnetlink-floor
if ! cc -O2 -o "$floor" scripts/ctnetlink-floor.c 2>/dev/null; then floor=true; fi

echo "== status census (ctnetlink) against conntrack -L -o xml, same table, best of $runs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
echo "   census_s: by flow class (the default, --top 10); top0_s: --top 0, no classes (class_ratio: census_s / top0_s);"
echo "   kernel_s: the same dump with every entry ignored, the floor for any census; ratio: census_s / xml_s"
header='%-9s %9s %7s %11s %8s %7s %9s %7s %6s %10s %7s %7s %10s %8s\n'
printf "$header" entries census_s top0_s class_ratio kernel_s xml_s ratio list_s C_s census_cpu xml_cpu cpu_ratio census_MiB xml_MiB
filled=0
for size in $sizes; do
  ip netns exec "$ns" python3 "$work/fill.py" "$filled" "$size"
  filled=$size
  count=$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count)
  read -r census_s census_kib census_cpu <<<"$(best_of "$cttune" status --census --window 0 --format json)"
  read -r top0_s _ _ <<<"$(best_of "$cttune" status --census --top 0 --window 0 --format json)"
  read -r kernel_s _ _ <<<"$(best_of "$floor")"
  read -r xml_s xml_kib xml_cpu <<<"$(best_of conntrack -L -o xml)"
  read -r list_s _ _ <<<"$(best_of conntrack -L)"
  read -r count_s _ _ <<<"$(best_of conntrack -C)"
  printf "$header" "$count" "$census_s" "$top0_s" "$(ratio "$census_s" "$top0_s")" "$kernel_s" "$xml_s" \
    "$(ratio "$census_s" "$xml_s")" "$list_s" "$count_s" "$census_cpu" "$xml_cpu" \
    "$(ratio "$census_cpu" "$xml_cpu")" "$(echo "scale=1; $census_kib / 1024" | bc)" "$(echo "scale=1; $xml_kib / 1024" | bc)"
done

# A healthy timer run: the unit's own command line minus the census (a
# quiet table, not every 15th run), in a namespace with a few entries. The big
# table goes first: --all-namespaces would count it (it is nearly full).
ip netns delete "$ns"
ip netns add "$quiet_ns"
ip netns exec "$quiet_ns" ip link set lo up
for port in 1 2 3; do
  ip netns exec "$quiet_ns" conntrack -I -p udp -s 10.0.0.1 -d 10.0.0.2 --sport "$port" --dport 53 -t 600 >/dev/null 2>&1
done
echo
echo "== a healthy timer run: CPU (user + system) per run, mean of 20"
printf '%-70s %10s\n' "command" "CPU ms"
cpu_ms() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
runs = 20
for _ in range(runs):
    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.2f" % ((usage.ru_utime + usage.ru_stime) * 1000 / runs))
PY
}
textfile="$work/cttune.prom"
for arguments in "--version" "status --quiet --textfile $textfile" "status --quiet --textfile $textfile --all-namespaces"; do
  # shellcheck disable=SC2086
  printf '%-70s %10s\n' "cttune $arguments" "$(cpu_ms ip netns exec "$quiet_ns" "$cttune" $arguments)"
done
printf '%-70s %10s\n' "ip netns exec (the wrapper alone, included above)" "$(cpu_ms ip netns exec "$quiet_ns" true)"
