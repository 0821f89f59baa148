import TunerCore
import TunerModel

/// Reads `RuleReach` constraints from what a rule says about the packets
/// it sees: its table's family, its chain's hook, and its own top-level
/// matches on protocol, port, family and destination type. Anything else
/// (addresses, interfaces, marks, named sets, other operators) adds no
/// constraint, so the rule is taken to reach those packets.
enum RuleReachReading {
    /// Protocol numbers by the names nft and iptables print.
    static let protocolNumbers: [String: UInt8] = [
        "icmp": 1, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132,
        "udplite": 136,
    ]
    /// Protocols with ports: what `th dport` implies.
    static let portProtocols: Set<UInt8> = [6, 17, 33, 132, 136]
    /// Service names nft may print for a port.
    static let serviceNames: [String: UInt16] = [
        "ssh": 22, "smtp": 25, "domain": 53, "http": 80, "ntp": 123, "https": 443, "mdns": 5353,
    ]

    /// An nft table family: `ip` and `ip6` see one IP family, `arp` none.
    static func constraints(nftFamily family: String?) -> [RuleReach.Constraint] {
        switch family {
        case "ip": return [.ipv6(false)]
        case "ip6": return [.ipv6(true)]
        case "arp": return [.noIPPackets]
        default: return []
        }
    }

    /// The hooks a chain is seen at in an IP family table; `nil` for bridge
    /// and netdev tables and the ingress and egress hooks (every packet).
    static func hooks(nftFamily family: String?, hook: String?) -> Set<NetfilterHook>? {
        guard ["ip", "ip6", "inet"].contains(family ?? ""), let hook, let known = NetfilterHook(rawValue: hook) else { return nil }
        return [known]
    }

    // MARK: nft JSON

    /// The constraints of a rule's top-level `match` statements.
    static func constraints(nftStatements statements: [JSONValue]) -> [RuleReach.Constraint] {
        var constraints: [RuleReach.Constraint] = []
        for statement in statements {
            guard let (kind, body) = statement.single, kind == "match", let left = body["left"], let right = body["right"] else {
                continue
            }
            let op = body["op"]?.string ?? "=="
            if let payload = left["payload"], let proto = payload["protocol"]?.string {
                constraints += implied(byHeader: proto)
                let field = payload["field"]?.string
                if ["tcp", "udp", "udplite", "sctp", "dccp", "th"].contains(proto), let field,
                    let portField = TrafficSlice.PortField(rawValue: field), let ranges = portRanges(right, op: op)
                {
                    constraints.append(.ports(portField, ranges.ranges, negated: ranges.negated))
                }
                if (proto == "ip" && field == "protocol") || (proto == "ip6" && field == "nexthdr"), let set = protocols(right, op: op) {
                    constraints.append(set)
                }
            } else if let key = left["meta"]?["key"]?.string {
                if key == "l4proto", let set = protocols(right, op: op) { constraints.append(set) }
                if key == "nfproto", op == "==" || op == "in", let names = strings(right), Set(names).count == 1 {
                    if names[0] == "ipv4" { constraints.append(.ipv6(false)) }
                    if names[0] == "ipv6" { constraints.append(.ipv6(true)) }
                }
            } else if let fib = left["fib"], fib["result"]?.string == "type",
                (fib["flags"]?.array?.compactMap(\.string) ?? fib["flags"]?.string.map { [$0] }) == ["daddr"],
                let names = strings(right), names == ["local"], op == "==" || op == "!=" || op == "in"
            {
                constraints.append(.destinationLocal(op != "!="))
            }
        }
        return constraints
    }

    /// What matching a header's fields implies: its protocol, or its family.
    static func implied(byHeader proto: String) -> [RuleReach.Constraint] {
        switch proto {
        case "ip": return [.ipv6(false)]
        case "ip6": return [.ipv6(true)]
        case "th": return [.protocols(portProtocols, negated: false)]
        default: return protocolNumbers[proto].map { [.protocols([$0], negated: false)] } ?? []
        }
    }

    /// `meta l4proto tcp`, `ip protocol { tcp, udp }`, `!= icmp`; `nil`
    /// when a value is not a protocol cttune knows.
    static func protocols(_ right: JSONValue, op: String) -> RuleReach.Constraint? {
        guard ["==", "!=", "in"].contains(op) else { return nil }
        var numbers: Set<UInt8> = []
        for value in flattened(right) {
            if let number = value.int, (0...255).contains(number) {
                numbers.insert(UInt8(number))
            } else if let name = value.string, let number = protocolNumbers[name] {
                numbers.insert(number)
            } else {
                return nil
            }
        }
        return numbers.isEmpty ? nil : .protocols(numbers, negated: op == "!=")
    }

    /// A port match's ranges, comparisons (`> 1023`) included; `nil` for a
    /// value cttune cannot read (a named set, a concatenation).
    static func portRanges(_ right: JSONValue, op: String) -> (ranges: [ClosedRange<UInt16>], negated: Bool)? {
        switch op {
        case "==", "in", "!=":
            var ranges: [ClosedRange<UInt16>] = []
            for value in flattened(right) {
                if let pair = value["range"]?.array, pair.count == 2, let low = port(pair[0]), let high = port(pair[1]), low <= high {
                    ranges.append(low...high)
                } else if let single = port(value) {
                    ranges.append(single...single)
                } else {
                    return nil
                }
            }
            return ranges.isEmpty ? nil : (ranges, op == "!=")
        case "<", "<=", ">", ">=":
            guard let bound = port(right) else { return nil }
            switch op {
            case "<": return bound == 0 ? ([], false) : ([0...(bound - 1)], false)
            case "<=": return ([0...bound], false)
            case ">": return bound == UInt16.max ? ([], false) : ([(bound + 1)...UInt16.max], false)
            default: return ([bound...UInt16.max], false)
            }
        default:
            return nil
        }
    }

    static func port(_ value: JSONValue) -> UInt16? {
        if let number = value.int { return UInt16(exactly: number) }
        return value.string.flatMap { serviceNames[$0] }
    }

    /// The items of an anonymous set, or the value itself.
    static func flattened(_ value: JSONValue) -> [JSONValue] {
        if let set = value["set"] { return set.array ?? [set] }
        if let items = value.array { return items }
        return [value]
    }

    static func strings(_ value: JSONValue) -> [String]? {
        let items = flattened(value).map(\.string)
        return items.contains(nil) ? nil : items.compactMap { $0 }
    }

    /// Every chain a rule (or a map declaration) jumps or goes to, verdict maps included.
    static func jumpTargets(in value: JSONValue) -> [String] {
        switch value {
        case .object(let members):
            return members.flatMap { name, member -> [String] in
                if name == "jump" || name == "goto", let target = member["target"]?.string { return [target] }
                return jumpTargets(in: member)
            }
        case .array(let items): return items.flatMap(jumpTargets)
        default: return []
        }
    }

    /// The hooks each chain of a table is seen at: a base chain's own, a
    /// regular chain's the union of the chains that jump to it. `nil` (every
    /// hook) for a chain nothing in the listing jumps to, one a named map
    /// reaches, or one a non-IP hook reaches.
    static func chainHooks(base: [String: Set<NetfilterHook>?], jumps: [String: [String]], everywhere: Set<String>)
        -> [String: Set<NetfilterHook>?]
    {
        var hooks: [String: Set<NetfilterHook>?] = base
        var callers: [String: [String]] = [:]
        for (caller, targets) in jumps { for target in targets { callers[target, default: []].append(caller) } }
        func resolve(_ chain: String, _ visiting: Set<String>) -> Set<NetfilterHook>? {
            if let known = hooks[chain] { return known }
            guard !everywhere.contains(chain), let from = callers[chain], !from.isEmpty, !visiting.contains(chain) else { return nil }
            var union: Set<NetfilterHook> = []
            for caller in from {
                guard let seen = resolve(caller, visiting.union([chain])) else { return nil }
                union.formUnion(seen)
            }
            return union
        }
        for chain in Set(jumps.keys).union(callers.keys) where hooks[chain] == nil {
            hooks.updateValue(resolve(chain, []), forKey: chain)
        }
        return hooks
    }

    // MARK: iptables-save

    /// The constraints of an iptables rule's words (after `-A CHAIN`):
    /// `-p`, `--dport`/`--sport`, multiport's `--dports`/`--sports`,
    /// `-m addrtype --dst-type LOCAL`, each possibly negated with `!`.
    static func constraints(iptablesWords words: [String]) -> [RuleReach.Constraint] {
        var constraints: [RuleReach.Constraint] = []
        var negated = false
        var index = 0
        while index < words.count {
            let option = words[index]
            if option == "!" {
                negated = true
                index += 1
                continue
            }
            defer { negated = false }
            guard Self.iptablesOptions.contains(option), index + 1 < words.count else {
                index += 1
                continue
            }
            let value = words[index + 1]
            index += 2
            switch option {
            case "-p", "--protocol":
                if let number = protocolNumbers[value.lowercased()] ?? UInt8(value) {
                    constraints.append(.protocols([number], negated: negated))
                }
            case "--dst-type":
                if value == "LOCAL" { constraints.append(.destinationLocal(!negated)) }
            default:
                let field: TrafficSlice.PortField = option.contains("dport") || option.contains("destination") ? .destination : .source
                if let ranges = iptablesPorts(value) { constraints.append(.ports(field, ranges, negated: negated)) }
            }
        }
        return constraints
    }

    static let iptablesOptions: Set<String> = [
        "-p", "--protocol", "--dst-type", "--dport", "--destination-port", "--dports", "--destination-ports", "--sport",
        "--source-port", "--sports", "--source-ports",
    ]

    /// `22`, `1024:65535`, `1024:`, `80,443,8000:8100`; `nil` for anything else (a service name).
    static func iptablesPorts(_ value: String) -> [ClosedRange<UInt16>]? {
        var ranges: [ClosedRange<UInt16>] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count) else { return nil }
            let low = bounds[0].isEmpty ? 0 : UInt16(bounds[0])
            let high = bounds.count == 1 ? low : bounds[1].isEmpty ? UInt16.max : UInt16(bounds[1])
            guard let low, let high, low <= high else { return nil }
            ranges.append(low...high)
        }
        return ranges.isEmpty ? nil : ranges
    }

    /// iptables' built-in chains, by the hook they hang on.
    static func hooks(iptablesChain chain: String) -> Set<NetfilterHook>? {
        NetfilterHook(rawValue: chain.lowercased()).map { [$0] }
    }
}
