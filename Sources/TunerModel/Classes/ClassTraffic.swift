import TunerCore

/// The netfilter hooks of the IP families, in a packet's order.
public enum NetfilterHook: String, CaseIterable, Sendable, Comparable {
    case prerouting, input, forward, output, postrouting

    public static func < (lhs: NetfilterHook, rhs: NetfilterHook) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The packets of one side of a class's flows (its requests, or its
/// replies), described by what a firewall rule could tell apart: the hooks
/// they pass, the family, the protocol, the class's ports in the field that
/// carries them on that side, and whether they are addressed to this host.
///
/// The notrack judgement and the notrack rules both start from these
/// slices: a rule is judged for exactly the packets the cure exempts.
public struct TrafficSlice: Sendable, Equatable {
    public enum Side: String, Sendable { case request, reply }
    public enum PortField: String, Sendable { case destination = "dport", source = "sport" }

    public var side: Side
    /// `true`: the packets arrive (meet conntrack in prerouting); `false`:
    /// this host sends them (output); `nil`: both.
    public var arrives: Bool?
    /// Whether they are addressed to this host; `nil`: either.
    public var destinationLocal: Bool?
    /// `true` IPv6, `false` IPv4, `nil` both.
    public var isIPv6: Bool?
    public var protocolNumber: UInt8
    /// The class's ports, in `portField`: the destination port of requests,
    /// the source port of replies. The other port is the peer's (any).
    public var portField: PortField
    public var ports: [ClosedRange<UInt16>]?
    /// ICMP types of this side (echo-request's replies are echo-replies).
    public var icmpTypes: [UInt8]?

    public init(
        side: Side, arrives: Bool?, destinationLocal: Bool?, isIPv6: Bool?, protocolNumber: UInt8, portField: PortField,
        ports: [ClosedRange<UInt16>]?, icmpTypes: [UInt8]?
    ) {
        self.side = side
        self.arrives = arrives
        self.destinationLocal = destinationLocal
        self.isIPv6 = isIPv6
        self.protocolNumber = protocolNumber
        self.portField = portField
        self.ports = ports
        self.icmpTypes = icmpTypes
    }

    /// The hooks these packets pass. A packet this host sends to itself
    /// leaves through output and postrouting and comes back in through
    /// prerouting and input.
    public var hooks: Set<NetfilterHook> {
        var hooks: Set<NetfilterHook> = []
        for arriving in arrives.map({ [$0] }) ?? [true, false] {
            for local in destinationLocal.map({ [$0] }) ?? [true, false] {
                switch (arriving, local) {
                case (true, true): hooks.formUnion([.prerouting, .input])
                case (true, false): hooks.formUnion([.prerouting, .forward, .postrouting])
                case (false, false): hooks.formUnion([.output, .postrouting])
                case (false, true): hooks.formUnion([.output, .postrouting, .prerouting, .input])
                }
            }
        }
        return hooks
    }

    /// The request and reply sides of `match`'s flows. A class of ICMP
    /// types whose messages are not answered (errors) has no reply side.
    public static func slices(of match: ClassMatch) -> [TrafficSlice] {
        let (arrives, local) = path(match.direction)
        let request = TrafficSlice(
            side: .request, arrives: arrives, destinationLocal: local, isIPv6: match.isIPv6, protocolNumber: match.protocolNumber,
            portField: .destination, ports: match.ports, icmpTypes: match.icmpTypes)
        // A reply goes back the way the request came: an inbound request's
        // reply travels as an outbound request would, and the other way round.
        let replyDirection: FlowClass.Direction? =
            switch match.direction {
            case .inbound: .outbound
            case .outbound: .inbound
            default: match.direction
            }
        let (replyArrives, replyLocal) = path(replyDirection)
        var replyTypes: [UInt8]?
        if let types = match.icmpTypes {
            let answers = match.protocolNumber == FlowClass.icmpv6 ? icmpv6Replies : icmpReplies
            replyTypes = types.compactMap { answers[$0] }
            if replyTypes!.isEmpty { return [request] }
        }
        let reply = TrafficSlice(
            side: .reply, arrives: replyArrives, destinationLocal: replyLocal, isIPv6: match.isIPv6,
            protocolNumber: match.protocolNumber, portField: .source, ports: match.ports, icmpTypes: replyTypes)
        return [request, reply]
    }

    /// Where a direction's requests meet conntrack (`arrives`: prerouting,
    /// else output) and whether they are addressed to this host; `nil`: either.
    static func path(_ direction: FlowClass.Direction?) -> (arrives: Bool?, destinationLocal: Bool?) {
        switch direction {
        case .inbound: return (true, true)
        case .outbound: return (false, false)
        case .forwarded: return (true, false)
        case .local: return (false, true)
        case nil: return (nil, nil)
        }
    }

    /// The reply of each ICMP query type (RFC 792, RFC 4443); conntrack
    /// tracks exactly these as flows (nf_conntrack_proto_icmp.c, invmap).
    static let icmpReplies: [UInt8: UInt8] = [8: 0, 13: 14, 15: 16, 17: 18]
    static let icmpv6Replies: [UInt8: UInt8] = [128: 129, 139: 140]
}

/// What a firewall rule's own matches, table and chain say about which
/// packets it can see. Each constraint either provably excludes a slice or
/// says nothing about it: a match cttune does not read (addresses,
/// interfaces, marks, named sets) is not a constraint, so the rule is
/// assumed to reach the packets (the safe side).
public struct RuleReach: Sendable, Equatable {
    public enum Constraint: Sendable, Equatable {
        /// Seen only at these hooks (the chain's, or the chains that reach it).
        case hooks(Set<NetfilterHook>)
        /// IPv6 (`true`) or IPv4 (`false`) only: the table's family, `meta nfproto`, an `ip`/`ip6` header match.
        case ipv6(Bool)
        /// The layer-4 protocol is (or, negated, is not) one of these.
        case protocols(Set<UInt8>, negated: Bool)
        /// The port in `field` is (or, negated, is not) in these ranges.
        case ports(TrafficSlice.PortField, [ClosedRange<UInt16>], negated: Bool)
        /// The destination is (or is not) a local address (`fib daddr type local`, `-m addrtype --dst-type LOCAL`).
        case destinationLocal(Bool)
        /// Reaches no IP packet (an arp table).
        case noIPPackets
    }

    public var constraints: [Constraint]

    public init(_ constraints: [Constraint] = []) { self.constraints = constraints }

    /// No constraint known: the rule may see every packet.
    public static let everything = RuleReach()

    /// Whether the rule can see some packet of `slice`: no constraint rules it out.
    public func reaches(_ slice: TrafficSlice) -> Bool {
        !constraints.contains { Self.excludes($0, slice) }
    }

    static func excludes(_ constraint: Constraint, _ slice: TrafficSlice) -> Bool {
        switch constraint {
        case .hooks(let hooks): return hooks.isDisjoint(with: slice.hooks)
        case .ipv6(let isIPv6): return slice.isIPv6.map { $0 != isIPv6 } ?? false
        case .protocols(let protocols, let negated): return protocols.contains(slice.protocolNumber) == negated
        case .ports(let field, let ranges, let negated):
            guard field == slice.portField, let ports = slice.ports else { return false }
            let overlaps = ports.contains { port in ranges.contains { $0.overlaps(port) } }
            let inside = ports.allSatisfy { port in ranges.contains { $0.contains(port.lowerBound) && $0.contains(port.upperBound) } }
            return negated ? inside : !overlaps
        case .destinationLocal(let local): return slice.destinationLocal.map { $0 != local } ?? false
        case .noIPPackets: return true
        }
    }
}
