#!/usr/bin/env bash
# cttune learn with full windows: every number measured, none an estimate.
# A known mix from ct-loadgen in a namespace of its own, the kernel's default
# timeouts (syn_sent 120 s, udp 30 s), a 330 s window with a 60 s burst, and
# the learned numbers against what was generated. Needs root, ip and nft;
# takes about six minutes. Not part of the pass/fail suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-.build/release}
[ -x "$bin/cttune" ] && [ -x "$bin/ct-loadgen" ] || { echo "learn: no release build (make bench builds it)"; exit 0; }
[ "$(id -u)" = 0 ] && command -v nft >/dev/null || { echo "learn: needs root and nft, skipped"; exit 0; }

window=${LEARN_SECONDS:-330}
rate=100 udp=50 hold=2 rst=0.15 half=0.05 orphan=0.02 stream=0.2 burst=3 burst_at=150 burst_seconds=60
ns=cttune-bench-learn-$$
work=$(mktemp -d)
trap 'ip netns delete "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" nft -f - <<NFT
table inet cttune_learn {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    tcp dport 18083 drop
  }
  chain orphans {
    type filter hook output priority -300; policy accept;
    tcp dport 18081 tcp flags & (fin | rst) != 0 drop
    tcp sport 18081 tcp flags & (fin | rst) != 0 drop
  }
}
NFT

echo "== cttune learn over a ${window} s window (kernel default timeouts), learned vs generated"
ip netns exec "$ns" "$bin/ct-loadgen" --seconds $((window + 10)) --rate $rate --hold $hold --rst-share $rst \
  --half-open-share $half --half-open-port 18083 --orphan-share $orphan --orphan-port 18081 \
  --udp-rate $udp --udp-stream-share $stream --burst-factor $burst --burst-at $((burst_at + 5)) \
  --burst-seconds $burst_seconds >"$work/load.json" &
load=$!
sleep 5
start=$(date +%s%N)
"$bin/cttune" learn --seconds "$window" --namespace "$ns" --format json >"$work/learn.json" 2>"$work/learn.err" || true
end=$(date +%s%N)
wait "$load" || true

python3 - "$work/learn.json" "$window" <<PY
import json, sys
report = json.load(open(sys.argv[1]))
window = float(sys.argv[2])
scale = 1 + ($burst - 1) * $burst_seconds / window
closing = 1 - $orphan - $half
generated = {
    "tcp_new_per_second": $rate * scale, "udp_new_per_second": $udp * scale,
    "tcp_established_seconds": $hold, "tcp_rst_close_ratio": $rst / closing,
    "tcp_half_open_ratio": $half, "tcp_orphan_ratio": $orphan, "udp_stream_ratio": $stream,
    "burst_factor": $burst / scale, "other_per_second": 0,
}
print(f"{'number':26} {'generated':>10} {'learned':>10} {'error':>8} {'sample':>7}  estimate")
for name, truth in generated.items():
    m = report["measurements"][name]
    value = m["value"]
    error = f"{(value - truth) / truth * 100:+.1f} %" if value is not None and truth else "-"
    shown = f"{value:.4g}" if value is not None else "null"
    print(f"{name:26} {truth:>10.4g} {shown:>10} {error:>8} {m['sample']:>7}  {m['estimate']}")
events = report["events"]
print(f"events {events['received']}, confidence {events['confidence']}, overflows {events['overflows']}, "
      f"socket drops {events['socket_drops']}, missed new/destroy {events['missed_new']}/{events['missed_destroy']}")
PY
echo "wall time of learn: $(( (end - start) / 1000000000 )) s"
python3 - "$work/load.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"ct-loadgen ran {run['connections']} TCP and {run['udp_flows']} UDP flows in {run['seconds']} s, {run['failures']} failed connects")
PY
sed "s/^/  /" "$work/learn.err"
