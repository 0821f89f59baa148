import TunerCore
import TunerModel

/// One class's cure as the kernel holds it in cttune's table: its timeout
/// policy (`ct timeout` object), or its notrack rules, named by the class it
/// was planned for.
public struct CureInForce: Sendable, Equatable {
    public struct Timeout: Sendable, Equatable {
        /// nft's name of the state (`unreplied`, `established`, …).
        public var state: String
        public var seconds: Int
    }

    /// The class's name (the object's comment).
    public var className: String
    /// `tcp` or `udp`.
    public var protocolName: String
    /// In the order nft lists them; empty for notrack.
    public var policy: [Timeout]
    /// `.timeouts` or `.notrack`.
    public var cure: Cure = .timeouts
    /// A notracked class's packets, read back from its notrack rules (the
    /// slices the plan judged): what a rule of the firewall must not need state for.
    public var notracked: [TrafficSlice] = []
    /// Rules of the firewall that now need state for a notracked class's
    /// packets (one line each: location and rule): a firewall changed
    /// after the plan. Empty when none, or when `cure` is `.timeouts`.
    public var conflicts: [String] = []

    /// The cures in cttune's table in the calling thread's namespace; `nil`
    /// when there is no such table. Notracked classes are judged against the
    /// namespace's live ruleset (cttune's own table left out).
    /// - Throws: `TunerError.nftRejected` when the ruleset cannot be read,
    ///   or the analyser's error when the firewall cannot be read to check
    ///   the notracked classes.
    public static func read(analyzer: RulesetAnalyzer = RulesetAnalyzer()) throws -> [CureInForce]? {
        guard var cures = try CureTableLive.listing(json: true).map(parse) else { return nil }
        if cures.contains(where: { $0.cure == .notrack }) {
            let report = try analyzer.analyzeLive()
            for index in cures.indices where cures[index].cure == .notrack {
                cures[index].conflicts = ClassReach.rules(in: report, reaching: cures[index].notracked).map { rule in
                    "\(rule.location.summary): \(rule.rule.escapingControlCharacters)"
                }
            }
        }
        return cures
    }

    /// The `ct timeout` objects of `nft -j list table` output.
    static func parse(_ json: String) throws -> [CureInForce] {
        let document: JSONValue
        do {
            document = try JSONReader.parse(json)
        } catch {
            throw TunerError.malformed(path: "nft -j list table \(CureTable.qualifiedName)", detail: "\(error)")
        }
        let items = document["nftables"]?.array ?? []
        var cures: [CureInForce] = items.compactMap { item in
            guard let object = item["ct timeout"] else { return nil }
            let policy = (object["policy"]?.members ?? []).compactMap { state, value in
                value.int.map { Timeout(state: state, seconds: $0) }
            }
            return CureInForce(
                className: object["comment"]?.string ?? object["name"]?.string ?? "?", protocolName: object["protocol"]?.string ?? "?",
                policy: policy)
        }
        // The notrack rules, grouped by class (their comment), in order.
        for item in items {
            guard let rule = item["rule"], let chain = rule["chain"]?.string,
                chain == CureTable.notrackChains.prerouting || chain == CureTable.notrackChains.output
            else { continue }
            let name = rule["comment"]?.string ?? "?"
            let slice = notrackedSlice(rule["expr"]?.array ?? [], arrives: chain == CureTable.notrackChains.prerouting)
            if let index = cures.firstIndex(where: { $0.className == name && $0.cure == .notrack }) {
                cures[index].notracked.append(slice)
            } else {
                let protocolName = FlowClass.protocolNames[slice.protocolNumber] ?? String(slice.protocolNumber)
                cures.append(CureInForce(className: name, protocolName: protocolName, policy: [], cure: .notrack, notracked: [slice]))
            }
        }
        return cures
    }

    /// The packets one notrack rule exempts, read with the same reader as
    /// the firewall's rules: its family, destination type, protocol and
    /// ports. What it cannot read stays open (every type, every port): the
    /// judgement then covers more packets than the rule, never fewer.
    static func notrackedSlice(_ statements: [JSONValue], arrives: Bool) -> TrafficSlice {
        var slice = TrafficSlice(
            side: .request, arrives: arrives, destinationLocal: nil, isIPv6: nil, protocolNumber: 0, portField: .destination,
            ports: nil, icmpTypes: nil)
        var protocols: Set<UInt8> = []
        for constraint in RuleReachReading.constraints(nftStatements: statements) {
            switch constraint {
            case .protocols(let set, negated: false) where set.count == 1: protocols.formUnion(set)
            case .ports(let field, let ranges, negated: false):
                slice.portField = field
                slice.ports = ranges
                slice.side = field == .source ? .reply : .request
            case .ipv6(let isIPv6): slice.isIPv6 = isIPv6
            case .destinationLocal(let local): slice.destinationLocal = local
            default: break
            }
        }
        slice.protocolNumber = protocols.count == 1 ? protocols.first! : 0
        return slice
    }
}
