import Testing

@testable import TunerCore
@testable import TunerModel

/// The two sides of a class's flows, and which rules' constraints rule them out.
@Suite("a class's packets, both ways, and what a rule's constraints exclude")
struct ClassTrafficTests {
    static let dns = ClassMatch(direction: .inbound, protocolNumber: 17, ports: [53...53])

    @Test("an inbound class's requests arrive for this host; its replies leave it, from the class's port")
    func inboundSides() {
        let slices = TrafficSlice.slices(of: Self.dns)
        #expect(slices.map(\.side) == [.request, .reply])
        #expect(slices[0].hooks == [.prerouting, .input] && slices[0].portField == .destination)
        #expect(slices[1].hooks == [.output, .postrouting] && slices[1].portField == .source)
        #expect(slices.allSatisfy { $0.ports == [53...53] })
    }

    @Test("each direction's packets pass the hooks the kernel sends them through")
    func hooksByDirection() {
        func hooks(_ direction: FlowClass.Direction?) -> [Set<NetfilterHook>] {
            TrafficSlice.slices(of: ClassMatch(direction: direction, protocolNumber: 6, ports: [80...80])).map(\.hooks)
        }
        #expect(hooks(.outbound) == [[.output, .postrouting], [.prerouting, .input]])
        #expect(hooks(.forwarded) == [[.prerouting, .forward, .postrouting], [.prerouting, .forward, .postrouting]])
        let loopback: Set<NetfilterHook> = [.output, .postrouting, .prerouting, .input]
        #expect(hooks(.local) == [loopback, loopback])
        #expect(hooks(nil) == [Set(NetfilterHook.allCases), Set(NetfilterHook.allCases)])
    }

    @Test("an echo request's replies are echo replies; an ICMP error class has no reply side")
    func icmpSides() {
        let ping = TrafficSlice.slices(of: ClassMatch(direction: .inbound, protocolNumber: 1, icmpTypes: [8]))
        #expect(ping.map(\.icmpTypes) == [[8], [0]])
        #expect(TrafficSlice.slices(of: ClassMatch(direction: .inbound, protocolNumber: 1, icmpTypes: [3])).count == 1)
        let ping6 = TrafficSlice.slices(of: ClassMatch(direction: .outbound, isIPv6: true, protocolNumber: 58, icmpTypes: [128]))
        #expect(ping6.map(\.icmpTypes) == [[128], [129]])
    }

    @Test("a constraint excludes a side only when it provably differs; unknown parts never exclude")
    func exclusion() {
        let (request, reply) = (TrafficSlice.slices(of: Self.dns)[0], TrafficSlice.slices(of: Self.dns)[1])
        func reaches(_ constraints: [RuleReach.Constraint], _ slice: TrafficSlice) -> Bool { RuleReach(constraints).reaches(slice) }
        #expect(reaches([], request) && reaches([], reply))
        #expect(!reaches([.protocols([6], negated: false)], request), "tcp only")
        #expect(reaches([.protocols([6], negated: true)], request), "!= tcp")
        #expect(!reaches([.protocols([17], negated: true)], reply), "!= udp")
        #expect(!reaches([.ports(.destination, [22...22], negated: false)], request))
        #expect(reaches([.ports(.destination, [22...22], negated: false)], reply), "a reply's destination port is the peer's: any")
        #expect(reaches([.ports(.source, [1024...65535], negated: false)], request), "a request's source port is the peer's: any")
        #expect(!reaches([.ports(.source, [1024...65535], negated: false)], reply))
        #expect(reaches([.ports(.destination, [1...100], negated: false)], request))
        #expect(!reaches([.ports(.destination, [1...100], negated: true)], request), "!= 1-100 holds 53")
        #expect(reaches([.ports(.destination, [54...60], negated: true)], request))
        #expect(!reaches([.hooks([.forward])], request) && !reaches([.hooks([.forward])], reply))
        #expect(reaches([.hooks([.input])], request) && !reaches([.hooks([.input])], reply))
        #expect(reaches([.ipv6(true)], request), "a class of both families has IPv6 packets")
        #expect(!reaches([.ipv6(true)], TrafficSlice.slices(of: ClassMatch(isIPv6: false, protocolNumber: 17))[0]))
        #expect(!reaches([.destinationLocal(true)], reply) && reaches([.destinationLocal(true)], request))
        #expect(!reaches([.noIPPackets], request))
    }
}
