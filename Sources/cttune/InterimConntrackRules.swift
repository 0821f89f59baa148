import Foundation
import Tuner

/// Firewall rules that need connection tracking, found the quick way: any
/// nftables `ct` expression or NAT statement (`nft -j list ruleset`), any
/// iptables `state`/`conntrack` match or NAT rule (`iptables-save`,
/// `ip6tables-save`). Stands in until the ruleset analyser (`cttune rules`)
/// supplies this list. Only the running system has live rules: with --root
/// it returns none.
func interimRulesNeedingConntrack(root: SystemRoot) throws -> [String] {
    guard root.isLive else { return [] }
    var rules: [String] = []
    if let json = ExternalTool.output(["nft", "-j", "list", "ruleset"]),
       let document = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
       let items = document["nftables"] as? [[String: Any]] {
        for case let rule as [String: Any] in items.compactMap({ $0["rule"] }) where mentions(rule["expr"] ?? [], keys: nftConntrackKeys) {
            rules.append("nft \(rule["family"] ?? "") \(rule["table"] ?? "") \(rule["chain"] ?? "") handle \(rule["handle"] ?? "")")
        }
    }
    let iptablesMarkers = ["-m state", "-m conntrack", "--ctstate", "-m connlimit", "-m connmark", "-m connbytes", "-m connlabel", "-m helper",
                           "-j CONNMARK", "-j MASQUERADE", "-j SNAT", "-j DNAT", "-j REDIRECT", "-j NETMAP"]
    for tool in ["iptables-save", "ip6tables-save"] {
        for line in (ExternalTool.output([tool]) ?? "").split(separator: "\n") where line.hasPrefix("-A ") && iptablesMarkers.contains(where: line.contains) {
            rules.append("\(tool.dropLast(5)) \(line)")
        }
    }
    return rules
}

/// nft JSON keys of expressions and statements that use conntrack: `ct`
/// matches and sets, connection limits, helpers, timeouts, flow offload, NAT.
private let nftConntrackKeys: Set<String> = ["ct", "ct count", "ct helper", "ct timeout", "ct expectation", "flow",
                                             "snat", "dnat", "masquerade", "redirect"]

/// Whether a decoded nft JSON value holds an object with one of `keys`.
private func mentions(_ value: Any, keys: Set<String>) -> Bool {
    if let object = value as? [String: Any] {
        return object.keys.contains(where: keys.contains) || object.values.contains { mentions($0, keys: keys) }
    }
    if let array = value as? [Any] { return array.contains { mentions($0, keys: keys) } }
    return false
}
