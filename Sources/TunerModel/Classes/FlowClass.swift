import FoundationEssentials
import TunerCore

/// A class of tracked flows: direction, address family, protocol and
/// service, printed so a person can read it and write it back
/// (`inbound udp/53`, `outbound tcp/5432`, `forwarded tcp/443 ip6`,
/// `inbound icmp/echo-request`, `local tcp/ephemeral`).
public struct FlowClass: Hashable, Sendable, CustomStringConvertible {
    /// Seen from the namespace's own addresses (loopback blocks included).
    public enum Direction: String, CaseIterable, Sendable {
        /// The destination is a local address, the source is not.
        case inbound
        /// The source is a local address, the destination is not.
        case outbound
        /// Neither is local: routed through.
        case forwarded
        /// Both are local.
        case local
    }

    public enum Service: Hashable, Sendable {
        /// The original direction's destination port.
        case port(UInt16)
        /// A destination port inside the namespace's ephemeral range.
        case ephemeral
        /// ICMP or ICMPv6: the first packet's type.
        case icmpType(UInt8)
        /// Another protocol: the protocol alone.
        case any
    }

    public var direction: Direction
    public var isIPv6: Bool
    public var protocolNumber: UInt8
    public var service: Service

    public init(direction: Direction, isIPv6: Bool = false, protocolNumber: UInt8, service: Service) {
        self.direction = direction
        self.isIPv6 = isIPv6
        self.protocolNumber = protocolNumber
        self.service = service
    }

    /// Protocols whose flows are told apart by port.
    public static let portProtocols: Set<UInt8> = [6, 17, 33, 132, 136]
    static let icmp: UInt8 = 1
    static let icmpv6: UInt8 = 58

    /// Protocol names as nft and conntrack-tools write them.
    package static let protocolNames: [UInt8: String] = [
        1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 132: "sctp", 136: "udplite",
    ]

    /// ICMP and ICMPv6 type names as nft writes them.
    static let icmpTypeNames: [UInt8: String] = [
        0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect", 8: "echo-request",
        9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem",
        13: "timestamp-request", 14: "timestamp-reply", 15: "info-request", 16: "info-reply", 17: "address-mask-request",
        18: "address-mask-reply",
    ]
    static let icmpv6TypeNames: [UInt8: String] = [
        1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem", 128: "echo-request",
        129: "echo-reply", 130: "mld-listener-query", 131: "mld-listener-report", 133: "nd-router-solicit",
        134: "nd-router-advert", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert", 137: "nd-redirect",
    ]

    public var protocolName: String { Self.protocolNames[protocolNumber] ?? String(protocolNumber) }

    /// What follows the slash: the port, `ephemeral`, or the ICMP type's
    /// name (its number when it has none); `nil` for a protocol alone.
    public var serviceText: String? {
        switch service {
        case .port(let port): return String(port)
        case .ephemeral: return "ephemeral"
        case .icmpType(let type):
            let names = protocolNumber == Self.icmpv6 ? Self.icmpv6TypeNames : Self.icmpTypeNames
            return names[type] ?? String(type)
        case .any: return nil
        }
    }

    public var description: String {
        let family = isIPv6 && protocolNumber != Self.icmpv6 ? " ip6" : ""
        return "\(direction.rawValue) \(protocolName)" + (serviceText.map { "/" + $0 } ?? "") + family
    }

    /// Parses what `description` prints.
    /// - Throws: `TunerError.malformed` naming the part that is wrong.
    public static func parse(_ text: String) throws -> FlowClass {
        func refuse(_ detail: String) -> TunerError {
            .malformed(
                path: "flow class \(Echo.quoted(text))",
                detail: detail + " — write it as DIRECTION PROTOCOL/SERVICE, e.g. inbound udp/53")
        }
        var words = text.split(separator: " ").map(String.init)
        var isIPv6 = false
        if words.last == "ip6" {
            isIPv6 = true
            words.removeLast()
        }
        guard words.count == 2 else { throw refuse("expected a direction and a protocol") }
        guard let direction = Direction(rawValue: words[0]) else {
            throw refuse("unknown direction \(Echo.quoted(words[0])) (inbound, outbound, forwarded, local)")
        }
        let parts = words[1].split(separator: "/", maxSplits: 1).map(String.init)
        let protocolNumber: UInt8
        if let named = protocolNames.first(where: { $0.value == parts[0] })?.key {
            protocolNumber = named
        } else if let number = UInt8(parts[0]) {
            protocolNumber = number
        } else {
            throw refuse("unknown protocol \(Echo.quoted(parts[0]))")
        }
        if protocolNumber == icmpv6 { isIPv6 = true }
        guard parts.count == 2 else {
            guard !portProtocols.contains(protocolNumber), protocolNumber != icmp, protocolNumber != icmpv6 else {
                throw refuse("\(parts[0]) needs a service after /")
            }
            return FlowClass(direction: direction, isIPv6: isIPv6, protocolNumber: protocolNumber, service: .any)
        }
        let service = parts[1]
        if portProtocols.contains(protocolNumber) {
            if service == "ephemeral" {
                return FlowClass(direction: direction, isIPv6: isIPv6, protocolNumber: protocolNumber, service: .ephemeral)
            }
            guard let port = UInt16(service), port >= 1 else { throw refuse("port \(Echo.quoted(service)) is not 1-65535") }
            return FlowClass(direction: direction, isIPv6: isIPv6, protocolNumber: protocolNumber, service: .port(port))
        }
        if protocolNumber == icmp || protocolNumber == icmpv6 {
            let names = protocolNumber == icmpv6 ? icmpv6TypeNames : icmpTypeNames
            guard let type = names.first(where: { $0.value == service })?.key ?? UInt8(service) else {
                throw refuse("unknown \(parts[0]) type \(Echo.quoted(service))")
            }
            return FlowClass(direction: direction, isIPv6: isIPv6, protocolNumber: protocolNumber, service: .icmpType(type))
        }
        throw refuse("\(parts[0]) has no service: write the protocol alone")
    }
}

/// Sorts tracked flows into classes for one network namespace.
public struct FlowClassifier: Sendable {
    public var localAddresses: Set<IPAddress>
    /// `net.ipv4.ip_local_port_range`: ports the kernel picks for outgoing
    /// connections, which fold into one `ephemeral` service.
    public var ephemeralPorts: ClosedRange<UInt16>

    public init(localAddresses: Set<IPAddress>, ephemeralPorts: ClosedRange<UInt16>) {
        self.localAddresses = localAddresses
        self.ephemeralPorts = ephemeralPorts
    }

    /// The kernel's default ephemeral range (net/ipv4/af_inet.c, inet_init_net).
    public static let defaultEphemeralPorts: ClosedRange<UInt16> = 32768...60999

    func isLocal(_ address: IPAddress) -> Bool { address.isLoopback || localAddresses.contains(address) }

    public func classify(_ tuple: FlowTuple) -> FlowClass {
        let direction: FlowClass.Direction
        switch (isLocal(tuple.source), isLocal(tuple.destination)) {
        case (true, true): direction = .local
        case (false, true): direction = .inbound
        case (true, false): direction = .outbound
        case (false, false): direction = .forwarded
        }
        let service: FlowClass.Service
        if FlowClass.portProtocols.contains(tuple.protocolNumber), let port = tuple.destinationPort {
            service = ephemeralPorts.contains(port) ? .ephemeral : .port(port)
        } else if let type = tuple.icmpType, tuple.protocolNumber == FlowClass.icmp || tuple.protocolNumber == FlowClass.icmpv6 {
            service = .icmpType(type)
        } else {
            service = .any
        }
        return FlowClass(
            direction: direction, isIPv6: tuple.destination.isIPv6, protocolNumber: tuple.protocolNumber, service: service)
    }
}
