import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// Flow classes print as people write them, parse back, and sort a flow by
/// the namespace's own addresses and ephemeral range.
@Suite("flow classes")
struct FlowClassTests {
    @Test(
        "a class prints as it is written and parses back to itself",
        arguments: [
            "inbound udp/53", "outbound tcp/5432", "forwarded tcp/443", "local tcp/ephemeral", "inbound icmp/echo-request",
            "inbound tcp/443 ip6", "outbound icmpv6/echo-request", "forwarded gre", "inbound sctp/3868", "inbound icmp/42",
        ])
    func roundTrip(text: String) throws {
        #expect(try FlowClass.parse(text).description == text)
    }

    @Test(
        "a class written wrong is one line naming the part",
        arguments: [
            ("upward udp/53", "unknown direction"), ("inbound udp/0", "is not 1-65535"), ("inbound udp/65536", "is not 1-65535"),
            ("inbound foo/1", "unknown protocol"), ("inbound udp", "needs a service"), ("inbound gre/1", "has no service"),
            ("inbound", "expected a direction and a protocol"), ("inbound icmp/hello", "unknown icmp type"),
        ])
    func refused(text: String, problem: String) {
        #expect {
            _ = try FlowClass.parse(text)
        } throws: { error in
            "\(error)".contains(problem) && !"\(error)".contains("\n")
        }
    }

    static let server = IPAddress("10.77.0.1")!
    static let client = IPAddress("10.77.0.2")!
    static let classifier = FlowClassifier(localAddresses: [server, IPAddress("fd00::1")!], ephemeralPorts: 32768...60999)

    @Test("direction comes from the local addresses, loopback blocks included; ephemeral ports fold into one service")
    func classify() {
        func tuple(_ source: IPAddress, _ destination: IPAddress, _ proto: UInt8 = 17, sport: UInt16 = 40000, dport: UInt16?) -> FlowTuple {
            FlowTuple(protocolNumber: proto, source: source, destination: destination, sourcePort: sport, destinationPort: dport)
        }
        let other = IPAddress("192.0.2.9")!
        #expect(Self.classifier.classify(tuple(Self.client, Self.server, dport: 53)).description == "inbound udp/53")
        #expect(Self.classifier.classify(tuple(Self.server, Self.client, 6, dport: 5432)).description == "outbound tcp/5432")
        #expect(Self.classifier.classify(tuple(Self.client, other, 6, dport: 443)).description == "forwarded tcp/443")
        #expect(
            Self.classifier.classify(tuple(IPAddress("127.0.0.1")!, IPAddress("127.0.0.9")!, 6, dport: 80)).description == "local tcp/80")
        #expect(Self.classifier.classify(tuple(Self.client, Self.server, 6, dport: 45000)).description == "inbound tcp/ephemeral")
        #expect(Self.classifier.classify(tuple(Self.client, Self.server, 6, dport: 32767)).description == "inbound tcp/32767")
        let ping = FlowTuple(protocolNumber: 1, source: Self.client, destination: Self.server, icmpType: 8)
        #expect(Self.classifier.classify(ping).description == "inbound icmp/echo-request")
        let v6 = tuple(IPAddress("fd00::2")!, IPAddress("fd00::1")!, 6, dport: 443)
        #expect(Self.classifier.classify(v6).description == "inbound tcp/443 ip6")
        let gre = FlowTuple(protocolNumber: 47, source: Self.client, destination: Self.server)
        #expect(Self.classifier.classify(gre).description == "inbound gre")
    }

    @Test("addresses parse and print as the kernel's tools write them")
    func addresses() {
        #expect(IPAddress("10.77.0.1")?.description == "10.77.0.1")
        #expect(IPAddress("fd00::1")?.description == "fd00:0:0:0:0:0:0:1")
        #expect(IPAddress("fd00::1") == IPAddress(bytes: [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1]))
        #expect(IPAddress("127.1.2.3")?.isLoopback == true && IPAddress("::1")?.isLoopback == true)
        for bad in ["10.0.0", "10.0.0.256", "1::2::3", "fd00:::1", "x.y.z.w", ""] { #expect(IPAddress(bad) == nil, "\(bad)") }
        // The decoder's words: an IPv4 address keeps only its 4 bytes, whatever follows them in the field.
        #expect(IPAddress(high: 0x0A4D_0001_DEAD_BEEF, low: 7, isIPv6: false) == IPAddress("10.77.0.1"))
        #expect(IPAddress(high: 0xFD00 << 48, low: 1, isIPv6: true) == IPAddress("fd00::1"))
    }
}
