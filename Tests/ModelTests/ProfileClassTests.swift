import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// `classes:` in a profile: read and checked like the rest of it, and
/// planned with the same model as the profile's own load.
@Suite("profile classes")
struct ProfileClassTests {
    /// Resolves `yaml` as a profile named `t`, the built-in profiles beside it.
    static func load(_ yaml: String) throws -> LoadProfile {
        try ProfileCatalog(searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["t": yaml]) { $1 }).load("t")
    }

    static func error(_ yaml: String) -> String {
        do {
            _ = try load(yaml)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test("a class's match and load are read, its burst defaults to the profile's, a child's list replaces its parent's")
    func reads() throws {
        let profile = try Self.load(
            """
            burst_factor: 4
            load: {udp: {new_per_second: 10}}
            classes:
              - name: dns
                match: {direction: inbound, family: ipv4, protocol: udp, ports: [53, "5300-5310"]}
                load: {udp: {new_per_second: 400, stream_ratio: 0.1}}
                burst_factor: 1.5
              - match: {direction: outbound, protocol: tcp, ports: 5432}
                load: {tcp: {new_per_second: 2, established_seconds: 3600}}
              - match: {protocol: icmpv6, types: [echo-request, 129]}
                load: {other_per_second: 1}
            """)
        #expect(profile.udp.newPerSecond == 10)
        #expect(profile.classes.map(\.name) == ["dns", "outbound tcp/5432", "icmpv6/echo-request,echo-reply"])
        let dns = profile.classes[0]
        #expect(dns.match == ClassMatch(direction: .inbound, isIPv6: false, protocolNumber: 17, ports: [53...53, 5300...5310]))
        #expect(dns.udp.newPerSecond == 400 && dns.udp.streamRatio == 0.1 && dns.burstFactor == 1.5)
        #expect(profile.classes[1].tcp.establishedSeconds == 3600 && profile.classes[1].burstFactor == 4)
        #expect(profile.classes[2].match.isIPv6 == true && profile.classes[2].match.icmpTypes == [128, 129])
        #expect(profile.classes[2].otherPerSecond == 1)

        let child = try ProfileCatalog(
            searchDirectories: [],
            builtins: BuiltinProfiles.yamlByName.merging([
                "parent": "classes:\n  - match: {protocol: udp}\n    load: {udp: {new_per_second: 5}}\n",
                "inherits": "extends: parent\n",
                "replaces": "extends: parent\nclasses:\n  - match: {protocol: tcp}\n",
            ]) { $1 })
        #expect(try child.load("inherits").classes.map(\.name) == ["udp"])
        #expect(try child.load("replaces").classes.map(\.name) == ["tcp"])
        #expect(try Self.load("extends: default\n").classes.isEmpty)
    }

    static let rejected: [(yaml: String, message: String)] = [
        (
            "classes:\n  - match: {direction: inbound, protocol: udp, ports: [53]}\n  - match: {protocol: udp, ports: \"50-60\"}\n",
            "built-in:t:3: classes[1]: \"udp/50-60\" overlaps classes[0] (\"inbound udp/53\")"
        ),
        (
            "classes:\n  - match: {protocol: tcp, direction: outbound}\n  - match: {protocol: tcp, direction: outbound, family: ipv6}\n",
            "classes[1]: \"outbound tcp ip6\" overlaps classes[0] (\"outbound tcp\")"
        ),
        (
            "classes:\n  - match: {protocol: icmp, types: [echo-request]}\n  - match: {protocol: icmp, types: [8]}\n",
            "classes[1]: \"icmp/echo-request\" overlaps classes[0]"
        ),
        ("classes:\n  - match: {direction: inbond, protocol: udp}\n", "classes[0].match.direction: unknown direction \"inbond\""),
        ("classes:\n  - match: {protocol: udp, ports: 70000}\n", "classes[0].match.ports: port \"70000\" is outside 1–65535"),
        ("classes:\n  - match: {protocol: udp, ports: 0}\n", "classes[0].match.ports: port \"0\" is outside 1–65535"),
        ("classes:\n  - match: {protocol: udp, ports: [\"90-80\"]}\n", "classes[0].match.ports[0]: range \"90-80\" is written backwards"),
        ("classes:\n  - match: {protocol: tcpx}\n", "classes[0].match.protocol: unknown protocol \"tcpx\""),
        ("classes:\n  - match: {direction: inbound}\n", "classes[0].match.protocol: missing"),
        ("classes:\n  - load: {}\n", "classes[0].match: missing"),
        ("classes:\n  - match: {protocol: udp}\n    load: {tcp: {new_per_second: 3}}\n", "classes[0].load.tcp: unknown key — a udp class"),
        ("classes:\n  - match: {protocol: icmp, ports: 5}\n", "classes[0].match.ports: icmp has no ports"),
        ("classes:\n  - match: {protocol: tcp, types: [8]}\n", "classes[0].match.types: only icmp and icmpv6 have types"),
        ("classes:\n  - match: {protocol: icmpv6, family: ipv4}\n", "classes[0].match.family: icmpv6 is IPv6 only"),
        ("classes:\n  - match: {protocol: udp, family: ip4}\n", "classes[0].match.family: unknown family \"ip4\""),
        ("classes:\n  - name: other\n    match: {protocol: udp}\n", "classes[0].name: \"other\" names what no class matches"),
        (
            "classes:\n  - name: a\n    match: {protocol: udp}\n  - name: a\n    match: {protocol: tcp}\n",
            "classes[1].name: \"a\" is also classes[0]'s name"
        ),
        ("classes: {a: 1}\n", "classes: must be a list of classes"),
        ("classes:\n  - match: {protocol: udp, ports: []}\n", "classes[0].match.ports: an empty list matches nothing"),
        (
            "classes:\n  - match: {protocol: udp}\n    load: {udp: {new_per_second: -1}}\n",
            "classes[0].load.udp.new_per_second: must be between 0 and 5000000, found -1"
        ),
        (
            "classes:\n  - match: {protocol: tcp}\n    load: {tcp: {orphan_ratio: 0.7, half_open_ratio: 0.5}}\n",
            "classes[0].load.tcp: orphan_ratio + half_open_ratio is 1.2"
        ),
        ("classes:\n  - match: {protocol: udp}\n    colour: red\n", "classes[0].colour: unknown key — allowed here: name, match, load"),
    ]

    @Test("a wrong class is one line naming the file, the line, the field and the fix", arguments: rejected)
    func rejects(yaml: String, message: String) {
        let error = Self.error(yaml)
        #expect(error.contains(message), "\(error)")
        #expect(!error.contains("\n"))
    }

    @Test("overlap: every part must intersect; matches agrees with it on classified flows")
    func overlap() throws {
        let dns = ClassMatch(direction: .inbound, protocolNumber: 17, ports: [53...53])
        #expect(dns.overlaps(ClassMatch(protocolNumber: 17)))
        #expect(!dns.overlaps(ClassMatch(direction: .outbound, protocolNumber: 17)))
        #expect(!dns.overlaps(ClassMatch(protocolNumber: 6, ports: [53...53])))
        #expect(!dns.overlaps(ClassMatch(protocolNumber: 17, ports: [54...100])))
        #expect(dns.overlaps(ClassMatch(protocolNumber: 17, ports: [1...53])))
        #expect(!ClassMatch(isIPv6: false, protocolNumber: 6).overlaps(ClassMatch(isIPv6: true, protocolNumber: 6)))

        // A flow two classes match proves they overlap: random matches, random flows.
        var random = SplitMix64(state: 23)
        func match() -> ClassMatch {
            let proto: UInt8 = random.next() % 2 == 0 ? 6 : 17
            let low = UInt16(1 + random.next() % 100)
            return ClassMatch(
                direction: random.next() % 3 == 0 ? nil : FlowClass.Direction.allCases[Int(random.next() % 4)],
                isIPv6: random.next() % 3 == 0 ? nil : random.next() % 2 == 0, protocolNumber: proto,
                ports: random.next() % 4 == 0 ? nil : [low...(low + UInt16(random.next() % 20))])
        }
        for _ in 0..<2000 {
            let (a, b) = (match(), match())
            let flow = FlowClass(
                direction: FlowClass.Direction.allCases[Int(random.next() % 4)], isIPv6: random.next() % 2 == 0,
                protocolNumber: random.next() % 2 == 0 ? 6 : 17, service: .port(UInt16(1 + random.next() % 130)))
            if a.matches(flow, ephemeralPorts: 32768...60999) && b.matches(flow, ephemeralPorts: 32768...60999) {
                #expect(a.overlaps(b), "\(a.description) and \(b.description) both match \(flow)")
            }
        }
        let ephemeral = ClassMatch(direction: .local, protocolNumber: 6, ports: [32768...60999])
        #expect(ephemeral.matches(FlowClass(direction: .local, protocolNumber: 6, service: .ephemeral), ephemeralPorts: 32768...60999))
        #expect(!dns.matches(FlowClass(direction: .inbound, protocolNumber: 17, service: .ephemeral), ephemeralPorts: 32768...60999))
    }

    /// A class's numbers left out are 0 (not the profile's): the class says all it holds.
    @Test("moving load into a class with the same burst leaves the plan's peak and max unchanged; each row's share adds up")
    func classesPlanLikeTheLoadTheyHold() throws {
        let whole = try Self.load(
            "extends: default\nload: {tcp: {new_per_second: 500, established_seconds: 2}, udp: {new_per_second: 3000, stream_ratio: 0}}\n")
        let split = try Self.load(
            """
            extends: default
            load: {tcp: {new_per_second: 500, established_seconds: 2}, udp: {new_per_second: 1000, stream_ratio: 0}}
            classes:
              - match: {direction: inbound, protocol: udp, ports: 53}
                load: {udp: {new_per_second: 2000}}
            """)
        let host = FixtureFacts.host(memory: 16 << 30)
        let (a, b) = (Planner.plan(for: host, profile: whole), Planner.plan(for: host, profile: split))
        #expect(a.estimate.peakEntries == b.estimate.peakEntries)
        #expect(a.settings == b.settings)
        #expect(a.estimate.classes.isEmpty)
        #expect(b.estimate.classes.map(\.name) == ["inbound udp/53", "other"])
        let dns = try #require(b.estimate.classes.first)
        // 2000/s x burst 3 x max(30 s udp + 60 s steady gap, 65.12 s worst gap) = 540000.
        #expect(dns.peakEntries == 540_000)
        #expect(abs(b.estimate.classes.map(\.share).reduce(0, +) - 1) < 1e-9)
        #expect(abs(b.estimate.classes.map(\.flowsPerSecond).reduce(0, +) - 3500 - whole.otherPerSecond) < 1e-9)

        // Its own burst: the class's peak scales with it, the rest stays.
        var calmer = split
        calmer.classes[0].burstFactor = 1.5
        let c = Planner.plan(for: host, profile: calmer)
        #expect(c.estimate.classes[0].peakEntries == 270_000)
        #expect(c.estimate.classes[1].peakEntries == b.estimate.classes[1].peakEntries)
    }
}
