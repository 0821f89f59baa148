import TunerCore

/// cttune's own nft table: the cures a plan applies, as nft script text
/// (what libnftables loads and `nft list table inet cttune` prints back).
///
/// `ct timeout set` takes effect only on a flow's first packet, before
/// conntrack confirms the entry, and only after conntrack has made it: the
/// assignments sit in chains at priority mangle (-150), after conntrack's
/// -200 (at raw priority the kernel ignores them silently; shared/DESIGN.md)
/// and before dstnat's -100: a port-forwarded flow still has the
/// destination its class matches (at filter, after DNAT, it no longer would).
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
        var rawPrerouting: [String] = [], rawOutput: [String] = []
        for (index, decision) in decisions.enumerated() {
            guard let declared = classes.first(where: { $0.name == decision.className }) else { continue }
            if decision.applied == .notrack {
                for (arrives, rule) in notrackRules(declared.match, comment: decision.className) {
                    if arrives { rawPrerouting.append("\t\t" + rule) } else { rawOutput.append("\t\t" + rule) }
                }
                continue
            }
            guard decision.applied == .timeouts, let policy = decision.policy else { continue }
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
            let request = TrafficSlice.slices(of: declared.match)[0]
            for (hook, destinationLocal) in hooks(declared.match.direction) {
                var slice = request
                slice.destinationLocal = destinationLocal
                let rule = "\t\t" + (matchExpression(slice) + [assign]).joined(separator: " ")
                if hook == "prerouting" { prerouting.append(rule) } else { output.append(rule) }
            }
        }
        guard !objects.isEmpty || !rawPrerouting.isEmpty || !rawOutput.isEmpty else { return nil }
        func chain(_ name: String, _ hook: String, _ priority: String, _ rules: [String]) -> String {
            (["\tchain \(name) {", "\t\ttype filter hook \(hook) priority \(priority); policy accept;"] + rules + ["\t}"])
                .joined(separator: "\n")
        }
        var chains: [String] = []
        if !objects.isEmpty {
            chains += [chain("prerouting", "prerouting", "mangle", prerouting), chain("output", "output", "mangle", output)]
        }
        if !rawPrerouting.isEmpty || !rawOutput.isEmpty {
            chains += [
                chain(notrackChains.prerouting, "prerouting", "raw", rawPrerouting),
                chain(notrackChains.output, "output", "raw", rawOutput),
            ]
        }
        return "table \(qualifiedName) {\n" + (objects + chains).joined(separator: "\n\n") + "\n}\n"
    }

    /// The chains that hold the notrack rules, at raw priority (-300):
    /// before conntrack (-200) sees the packet.
    public static let notrackChains = (prerouting: "notrack_prerouting", output: "notrack_output")

    /// The notrack rules of one class: for each side of its flows
    /// (`TrafficSlice`: requests and the replies), in the chain where those
    /// packets first meet conntrack: prerouting when they arrive, output
    /// when this host sends them. These are exactly the packets `ClassReach` judged.
    public static func notrackRules(_ match: ClassMatch, comment: String) -> [(arrives: Bool, rule: String)] {
        TrafficSlice.slices(of: match).flatMap { slice in
            (slice.arrives.map { [$0] } ?? [true, false]).map { arrives in
                (arrives, (matchExpression(slice) + ["notrack", "comment", quoted(comment)]).joined(separator: " "))
            }
        }
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

    /// A slice's packets as nft expressions, in the form nft lists them:
    /// family, destination type, then the protocol's own port match on the
    /// slice's port field (which implies the protocol), its ICMP types, or
    /// the protocol alone.
    static func matchExpression(_ slice: TrafficSlice) -> [String] {
        var parts: [String] = []
        let protocolName = FlowClass.protocolNames[slice.protocolNumber] ?? String(slice.protocolNumber)
        if let isIPv6 = slice.isIPv6, slice.protocolNumber != FlowClass.icmpv6 && slice.protocolNumber != FlowClass.icmp {
            parts.append("meta nfproto \(isIPv6 ? "ipv6" : "ipv4")")
        }
        if let destinationLocal = slice.destinationLocal { parts.append("fib daddr type \(destinationLocal ? "" : "!= ")local") }
        if let ports = slice.ports {
            let items = ports.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            parts.append(
                "\(protocolName) \(slice.portField.rawValue) " + (items.count == 1 ? items[0] : "{ \(items.joined(separator: ", ")) }"))
        } else if let types = slice.icmpTypes, !types.isEmpty {
            let names = slice.protocolNumber == FlowClass.icmpv6 ? FlowClass.icmpv6TypeNames : FlowClass.icmpTypeNames
            let items = types.map { names[$0] ?? String($0) }
            parts.append("\(protocolName) type " + (items.count == 1 ? items[0] : "{ \(items.joined(separator: ", ")) }"))
        } else {
            parts.append("meta l4proto \(protocolName)")
        }
        return parts
    }

    /// A class name as an nft string: quotes and backslashes dropped (nft
    /// strings have no escapes), at most nft's 128-byte comment.
    static func quoted(_ text: String) -> String {
        "\"" + String(text.filter { $0 != "\"" && $0 != "\\" && !$0.isNewline }.prefix(120)) + "\""
    }
}
