import TunerCore

/// Which flows a profile's class holds: a direction, an address family, a
/// protocol and its services, each absent meaning "every". Matches the
/// original direction of a flow, as `FlowClass` classifies it.
public struct ClassMatch: Sendable, Equatable {
    public var direction: FlowClass.Direction?
    /// `true` IPv6, `false` IPv4, `nil` both.
    public var isIPv6: Bool?
    public var protocolNumber: UInt8
    /// Destination ports of the original direction (port protocols only); `nil`: every port.
    public var ports: [ClosedRange<UInt16>]?
    /// ICMP or ICMPv6 types (those protocols only); `nil`: every type.
    public var icmpTypes: [UInt8]?

    public init(
        direction: FlowClass.Direction? = nil, isIPv6: Bool? = nil, protocolNumber: UInt8,
        ports: [ClosedRange<UInt16>]? = nil, icmpTypes: [UInt8]? = nil
    ) {
        self.direction = direction
        self.isIPv6 = isIPv6
        self.protocolNumber = protocolNumber
        self.ports = ports
        self.icmpTypes = icmpTypes
    }

    /// The part of the load a class of this protocol declares: the planner
    /// models TCP and UDP (UDP-Lite shares UDP's timeouts) by their states,
    /// every other protocol by the generic timeout.
    public enum LoadKind: String, Sendable {
        case tcp, udp, other
    }

    public var loadKind: LoadKind {
        switch protocolNumber {
        case 6: return .tcp
        case 17, 136: return .udp
        default: return .other
        }
    }

    public var protocolName: String { FlowClass.protocolNames[protocolNumber] ?? String(protocolNumber) }

    /// Whether one packet can be matched by both: every part overlaps (an
    /// absent part overlaps everything).
    public func overlaps(_ other: ClassMatch) -> Bool {
        guard protocolNumber == other.protocolNumber else { return false }
        if let mine = direction, let theirs = other.direction, mine != theirs { return false }
        if let mine = isIPv6, let theirs = other.isIPv6, mine != theirs { return false }
        if let mine = ports, let theirs = other.ports, !mine.contains(where: { range in theirs.contains { $0.overlaps(range) } }) {
            return false
        }
        if let mine = icmpTypes, let theirs = other.icmpTypes, Set(mine).isDisjoint(with: theirs) { return false }
        return true
    }

    /// Whether a classified flow falls in this class. An `ephemeral` service
    /// stands for every port of `ephemeralPorts`: it matches only when the
    /// class's ports hold that whole range.
    public func matches(_ flow: FlowClass, ephemeralPorts: ClosedRange<UInt16>) -> Bool {
        guard flow.protocolNumber == protocolNumber else { return false }
        if let direction, direction != flow.direction { return false }
        if let isIPv6, isIPv6 != flow.isIPv6 { return false }
        switch flow.service {
        case .port(let port):
            return ports.map { $0.contains { $0.contains(port) } } ?? true
        case .ephemeral:
            return ports.map { $0.contains { $0.contains(ephemeralPorts.lowerBound) && $0.contains(ephemeralPorts.upperBound) } } ?? true
        case .icmpType(let type):
            return icmpTypes.map { $0.contains(type) } ?? true
        case .any:
            return ports == nil && icmpTypes == nil
        }
    }

    /// How the class reads when it has no name: `inbound udp/53`,
    /// `inbound tcp/80,443`, `outbound tcp/8000-8100 ip6`, `udp/53` (any direction).
    public var description: String {
        var text = direction.map { $0.rawValue + " " } ?? ""
        text += protocolName
        if let ports {
            text +=
                "/"
                + ports.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
                .joined(separator: ",")
        } else if let icmpTypes {
            let names = protocolNumber == FlowClass.icmpv6 ? FlowClass.icmpv6TypeNames : FlowClass.icmpTypeNames
            text += "/" + icmpTypes.map { names[$0] ?? String($0) }.joined(separator: ",")
        }
        if isIPv6 == true && protocolNumber != FlowClass.icmpv6 { text += " ip6" }
        return text
    }
}

/// A class of traffic a profile declares with its own load: the planner
/// sizes it with the same model as the rest (`Planner`), and later cures
/// (shorter timeouts, notrack) apply to it alone.
public struct ProfileClass: Sendable, Equatable {
    /// The `name:` given, else the match as `ClassMatch.description` prints it.
    public var name: String
    public var match: ClassMatch
    /// Only the part of `match.loadKind` is read: a TCP class's `tcp`, a UDP class's `udp`, else `otherPerSecond`.
    public var tcp = LoadProfile.TCPLoad()
    public var udp = LoadProfile.UDPLoad()
    public var otherPerSecond: Double = 0
    /// The class's own peak/mean; the profile's `burst_factor` when it names none.
    public var burstFactor: Double
    /// The cures the profile allows (`cures:`), or the one it pins (`cure:`);
    /// empty: none is applied, the plan only shows what would be possible.
    public var cures: [Cure] = []
    /// `cure:` pins `cures[0]`: applied when safe, else the plan says why not.
    public var curePinned = false

    public init(name: String, match: ClassMatch, burstFactor: Double) {
        self.name = name
        self.match = match
        self.burstFactor = burstFactor
    }

    /// The profile fields a class of this load kind may set (under `classes[i]`).
    public static func fields(for kind: ClassMatch.LoadKind) -> [ProfileField] {
        switch kind {
        case .tcp: return ProfileField.fields(in: "load.tcp") + [.burstFactor]
        case .udp: return ProfileField.fields(in: "load.udp") + [.burstFactor]
        case .other: return [.otherPerSecond, .burstFactor]
        }
    }

    /// The class's load numbers as a profile of their own, for the planner's
    /// model (`ProfileField.value(in:)` reads them back).
    public var asLoad: LoadProfile {
        var load = LoadProfile(name: name)
        switch match.loadKind {
        case .tcp: load.tcp = tcp
        case .udp: load.udp = udp
        case .other: load.otherPerSecond = otherPerSecond
        }
        load.burstFactor = burstFactor
        return load
    }

    /// Sets one of `fields(for:)` (a value the reader checked against its limits).
    public mutating func set(_ field: ProfileField, _ value: Double) {
        var load = asLoad
        field.set(value, in: &load)
        (tcp, udp, otherPerSecond, burstFactor) = (load.tcp, load.udp, load.otherPerSecond, load.burstFactor)
    }
}
