import TunerCore

/// cttune's own nft table: the cures a plan applies, as nft script text
/// (what libnftables loads and `nft list table inet cttune` prints back).
///
/// `ct timeout set` takes effect only on a flow's first packet, before
/// conntrack confirms the entry, and only after conntrack has made it: the
/// assignments sit in chains at priority filter (0), after conntrack's
/// -200 (at raw priority the kernel ignores them silently; shared/DESIGN.md).
/// A flow that arrives is tracked in prerouting; one this host sends, in
/// output (loopback included: its packets are confirmed before they come
/// back in through prerouting).
public enum CureTable {
    public static let family = "inet"
    public static let name = "cttune"
    /// `inet cttune`, as nft commands name it.
    public static var qualifiedName: String { "\(family) \(name)" }

    /// The table for the cures applied; `nil` when no class is cured (the
    /// table is then removed). Written as `nft list table inet cttune` prints
    /// it back (nft 1.0), so a table already in place compares equal and is
    /// left alone.
    public static func ruleset(for decisions: [CureDecision], classes: [ProfileClass]) -> String? {
        var objects: [String] = [], prerouting: [String] = [], output: [String] = []
        for (index, decision) in decisions.enumerated() where decision.applied == .timeouts {
            guard let policy = decision.policy, let declared = classes.first(where: { $0.name == decision.className }) else { continue }
            let object = "class_\(index)"
            // In the kernel's order of states (tcp_conntrack, udp_conntrack), as nft lists them.
            let states = policy.ordered.map { "\(CurePolicy.nftState($0.setting)!) : \($0.seconds)" }.joined(separator: ", ")
            objects.append(
                """
                \tct timeout \(object) {
                \t\tcomment \(quoted(decision.className))
                \t\tprotocol \(policy.protocolName)
                \t\tl3proto \(declared.match.isIPv6 == true ? "ip6" : "ip")
                \t\tpolicy = { \(states) }
                \t}
                """)
            let assign = "ct timeout set \"\(object)\" comment \(quoted(decision.className))"
            for (hook, destinationLocal) in hooks(declared.match.direction) {
                let rule = "\t\t" + (matchExpression(declared.match, destinationLocal: destinationLocal) + [assign]).joined(separator: " ")
                if hook == "prerouting" { prerouting.append(rule) } else { output.append(rule) }
            }
        }
        guard !objects.isEmpty else { return nil }
        func chain(_ hook: String, _ rules: [String]) -> String {
            (["\tchain \(hook) {", "\t\ttype filter hook \(hook) priority filter; policy accept;"] + rules + ["\t}"])
                .joined(separator: "\n")
        }
        return "table \(qualifiedName) {\n"
            + (objects + [chain("prerouting", prerouting), chain("output", output)]).joined(separator: "\n\n")
            + "\n}\n"
    }

    /// The one transaction that replaces the table whole with `content`, or
    /// removes it (`nil`): declaring the table first makes the delete valid
    /// when it does not exist yet, and nft applies the script all or nothing.
    public static func replacement(with content: String?) -> String {
        "table \(qualifiedName)\ndelete table \(qualifiedName)\n" + (content ?? "")
    }

    /// Where a class's first packets meet conntrack: arriving flows
    /// (inbound, forwarded) in prerouting, sent ones (outbound, local) in
    /// output; `destinationLocal` tells the pair apart (`nil`: both).
    static func hooks(_ direction: FlowClass.Direction?) -> [(hook: String, destinationLocal: Bool?)] {
        switch direction {
        case .inbound: return [("prerouting", true)]
        case .forwarded: return [("prerouting", false)]
        case .outbound: return [("output", false)]
        case .local: return [("output", true)]
        case nil: return [("prerouting", nil), ("output", nil)]
        }
    }

    /// The match as nft expressions, in the form nft lists them: family,
    /// destination type, then the protocol's own port match (which implies
    /// the protocol) or the protocol alone.
    static func matchExpression(_ match: ClassMatch, destinationLocal: Bool?) -> [String] {
        var parts: [String] = []
        if let isIPv6 = match.isIPv6 { parts.append("meta nfproto \(isIPv6 ? "ipv6" : "ipv4")") }
        if let destinationLocal { parts.append("fib daddr type \(destinationLocal ? "" : "!= ")local") }
        if let ports = match.ports {
            let items = ports.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            parts.append("\(match.protocolName) dport " + (items.count == 1 ? items[0] : "{ \(items.joined(separator: ", ")) }"))
        } else {
            parts.append("meta l4proto \(match.protocolName)")
        }
        return parts
    }

    /// A class name as an nft string: quotes and backslashes dropped (nft
    /// strings have no escapes), at most nft's 128-byte comment.
    static func quoted(_ text: String) -> String {
        "\"" + String(text.filter { $0 != "\"" && $0 != "\\" && !$0.isNewline }.prefix(120)) + "\""
    }
}
