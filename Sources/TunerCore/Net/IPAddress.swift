import FoundationEssentials

/// An IPv4 or IPv6 address as the kernel gives it (network byte order), in
/// two words so hashing millions of them stays cheap.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The first 8 bytes (an IPv4 address: its 4 bytes, then zeros), big-endian.
    public let high: UInt64
    /// The last 8 bytes (zero for IPv4), big-endian.
    public let low: UInt64
    public let isIPv6: Bool

    /// From the kernel's bytes: 4 for IPv4, 16 for IPv6; `nil` for another count.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        // Two words, no allocation: a census builds two addresses per entry.
        var (first, second): (UInt64, UInt64) = (0, 0)
        for (index, byte) in bytes.enumerated() {
            let shifted = UInt64(byte) << (56 - 8 * UInt64(index % 8))
            if index < 8 { first |= shifted } else { second |= shifted }
        }
        (high, low, isIPv6) = (first, second, bytes.count == 16)
    }

    /// From the two words as the kernel's 16-byte field holds them (IPv4 in its
    /// first 4 bytes), read as big-endian integers; an IPv4 address keeps only
    /// the top 4 bytes of `high`. Not generic: a census builds two per entry.
    public init(high: UInt64, low: UInt64, isIPv6: Bool) {
        (self.high, self.low, self.isIPv6) = isIPv6 ? (high, low, true) : (high & 0xFFFF_FFFF_0000_0000, 0, false)
    }

    /// Parses `192.0.2.1` or `2001:db8::1`.
    public init?(_ text: String) {
        if !text.contains(":") {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for part in parts {
                guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part) else { return nil }
                bytes.append(byte)
            }
            self.init(bytes: bytes)
            return
        }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            part.isEmpty
                ? []
                : part.split(separator: ":", omittingEmptySubsequences: false).map { UInt16($0, radix: 16) }
                    .reduce([UInt16]?([])) { list, group in
                        guard let list, let group else { return nil }
                        return list + [group]
                    }
        }
        guard let head = groups(halves[0]), let tail = halves.count == 2 ? groups(halves[1]) : [] else { return nil }
        let missing = 8 - head.count - tail.count
        guard halves.count == 2 ? missing >= 1 : missing == 0 else { return nil }
        let all = head + [UInt16](repeating: 0, count: halves.count == 2 ? missing : 0) + tail
        self.init(bytes: all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] })
    }

    /// 127.0.0.0/8 or ::1: the kernel's local route covers the whole block.
    public var isLoopback: Bool { isIPv6 ? (high == 0 && low == 1) : (high >> 56) == 127 }

    public var description: String {
        if !isIPv6 { return (0..<4).map { String((high >> (56 - 8 * UInt64($0))) & 0xff) }.joined(separator: ".") }
        let groups = (0..<8).map { index -> UInt16 in
            let word = index < 4 ? high : low
            return UInt16((word >> (48 - 16 * UInt64(index % 4))) & 0xffff)
        }
        return groups.map { String($0, radix: 16) }.joined(separator: ":")
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.isIPv6 ? 1 : 0, lhs.high, lhs.low) < (rhs.isIPv6 ? 1 : 0, rhs.high, rhs.low)
    }
}

/// The original direction of a tracked flow: who sent its first packet to whom.
public struct FlowTuple: Hashable, Sendable {
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var destination: IPAddress
    /// TCP, UDP, UDP-Lite, SCTP, DCCP: the ports; `nil` for other protocols.
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// ICMP and ICMPv6: the type of the first packet.
    public var icmpType: UInt8?

    public init(
        protocolNumber: UInt8, source: IPAddress, destination: IPAddress, sourcePort: UInt16? = nil, destinationPort: UInt16? = nil,
        icmpType: UInt8? = nil
    ) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.icmpType = icmpType
    }
}
