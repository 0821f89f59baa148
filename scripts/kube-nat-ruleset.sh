#!/usr/bin/env bash
# Prints an iptables-restore file shaped like kube-proxy's iptables mode:
# KUBE-SERVICES dispatching to one KUBE-SVC chain per service, a KUBE-SEP
# chain per endpoint with DNAT (picked by -m statistic), KUBE-MARK-MASQ and a
# MASQUERADE in KUBE-POSTROUTING, plus the filter-table firewall chains.
#   kube-nat-ruleset.sh SERVICES ENDPOINTS_PER_SERVICE
set -euo pipefail
services=${1:?usage: $0 SERVICES ENDPOINTS_PER_SERVICE}
endpoints=${2:?usage: $0 SERVICES ENDPOINTS_PER_SERVICE}
chain_id() { printf '%s' "$1" | sha256sum | tr 'a-f' 'A-F' | cut -c1-16; }

echo "*filter"
echo ":INPUT ACCEPT [0:0]"
echo ":FORWARD ACCEPT [0:0]"
echo ":OUTPUT ACCEPT [0:0]"
echo ":KUBE-FORWARD - [0:0]"
echo ":KUBE-FIREWALL - [0:0]"
echo "-A INPUT -j KUBE-FIREWALL"
echo "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
echo "-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
echo "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
echo "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT"
echo "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
echo "COMMIT"

declare -a svc_chains sep_chains rules
for ((s = 0; s < services; s++)); do
  svc="KUBE-SVC-$(chain_id "svc$s")"
  svc_chains+=("$svc")
  ip="10.96.$((s / 250)).$((s % 250 + 1))"
  rules+=("-A KUBE-SERVICES -d $ip/32 -p tcp -m comment --comment \"default/svc-$s:http cluster IP\" -m tcp --dport 80 -j $svc")
  rules+=("-A $svc ! -s 10.244.0.0/16 -d $ip/32 -p tcp -m comment --comment \"default/svc-$s:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ")
  for ((e = 0; e < endpoints; e++)); do
    sep="KUBE-SEP-$(chain_id "svc$s-ep$e")"
    sep_chains+=("$sep")
    pod="10.244.$(((s * endpoints + e) / 250)).$(((s * endpoints + e) % 250 + 1))"
    remaining=$((endpoints - e))
    if ((remaining > 1)); then
      probability=$(awk "BEGIN { printf \"%.11f\", 1 / $remaining }")
      rules+=("-A $svc -m comment --comment \"default/svc-$s:http -> $pod:8080\" -m statistic --mode random --probability $probability -j $sep")
    else
      rules+=("-A $svc -m comment --comment \"default/svc-$s:http -> $pod:8080\" -j $sep")
    fi
    rules+=("-A $sep -s $pod/32 -m comment --comment \"default/svc-$s:http\" -j KUBE-MARK-MASQ")
    rules+=("-A $sep -p tcp -m comment --comment \"default/svc-$s:http\" -m tcp -j DNAT --to-destination $pod:8080")
  done
done

echo "*nat"
echo ":PREROUTING ACCEPT [0:0]"
echo ":INPUT ACCEPT [0:0]"
echo ":OUTPUT ACCEPT [0:0]"
echo ":POSTROUTING ACCEPT [0:0]"
echo ":KUBE-SERVICES - [0:0]"
echo ":KUBE-POSTROUTING - [0:0]"
echo ":KUBE-MARK-MASQ - [0:0]"
echo ":KUBE-NODEPORTS - [0:0]"
for chain in "${svc_chains[@]}" "${sep_chains[@]}"; do echo ":$chain - [0:0]"; done
echo "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
echo "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
echo "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
echo "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"
echo "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
echo "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0"
echo "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
printf '%s\n' "${rules[@]}"
echo "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
echo "COMMIT"
