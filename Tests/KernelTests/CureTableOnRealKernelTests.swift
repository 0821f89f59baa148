import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// cttune's table of cures against the kernel: two namespaces joined by a
/// veth pair, a stateful firewall on the server, and the table the planner
/// writes for a profile's classes. The kernel's own listing (`conntrack -L`)
/// shows which entries got the class's policy, and removing the table gives
/// back the exact ruleset.
@Suite("cttune's table of cures, on the real kernel", .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
struct CureTableOnRealKernelTests {
    static let serverAddress = "10.79.0.1"
    static let clientAddress = "10.79.0.2"
    static let script = TestPaths.package.appendingPathComponent("scripts/class-traffic.py").path

    static let profile = """
        classes:
          - name: dns
            match: {direction: inbound, protocol: udp, ports: 53}
            load: {udp: {new_per_second: 100, stream_ratio: 0}}
            cure: timeouts
          - match: {direction: outbound, protocol: tcp, ports: 5432}
            load: {tcp: {new_per_second: 1, established_seconds: 3600}}
            cure: timeouts
        """

    /// conntrack -L's lines for `protocol` to `port` in the original direction, and their seconds left.
    static func timeouts(_ listing: String, protocol name: String, port: Int) -> [Int] {
        listing.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.first == Substring(name), fields.first(where: { $0.hasPrefix("dport=") }) == "dport=\(port)" else { return nil }
            return fields.count > 2 ? Int(fields[2]) : nil
        }
    }

    @Test(
        "each cured class's new entries live by its policy, the rest by the namespace's timeouts; removing the table restores the ruleset")
    func policiesTakeEffect() throws {
        let loaded = try ProfileCatalog(searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["cures": Self.profile]) { $1 })
            .load("cures")
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: loaded)
        let table = try #require(CureTable.ruleset(for: plan.cures, classes: loaded.classes))
        let udpPolicy = try #require(plan.cures[0].policy?.timeouts[.udpTimeout])
        let establishedPolicy = try #require(plan.cures[1].policy?.timeouts[.tcpTimeoutEstablished])

        let server = try TestNamespace("cure-srv"), client = try TestNamespace("cure-cli")
        defer {
            server.delete()
            client.delete()
        }
        let link = "cur\(getpid() % 100_000)"
        try Shell.check([
            "ip", "link", "add", link + "s", "netns", server.name, "type", "veth", "peer", "name", link + "c", "netns", client.name,
        ])
        try server.exec(["ip", "addr", "add", Self.serverAddress + "/24", "dev", link + "s"])
        try client.exec(["ip", "addr", "add", Self.clientAddress + "/24", "dev", link + "c"])
        try server.exec(["ip", "link", "set", link + "s", "up"])
        try client.exec(["ip", "link", "set", link + "c", "up"])
        try server.trackLoopback()
        let before = try server.exec(["nft", "list", "ruleset"])

        // Loaded twice: the replacement is whole and repeatable.
        try server.exec(["nft", "-f", "-"], input: CureTable.replacement(with: table))
        try server.exec(["nft", "-f", "-"], input: CureTable.replacement(with: table))
        // Written as nft lists it: a table in place compares equal to the plan's.
        let listed = try server.exec(["nft", "list", "table", "inet", "cttune"])
        #expect(listed == table, "listed:\n\(listed)\nplanned:\n\(table)")

        let listener = try BackgroundProcess(["ip", "netns", "exec", client.name, "python3", Self.script, "listen", "5432", "30"])
        defer { listener.interrupt() }
        #expect(listener.waitForOutput(containing: "ready", atMost: 30))
        try client.exec(["python3", Self.script, "udp", Self.serverAddress, "53", "20"])
        try client.exec(["python3", Self.script, "udp", Self.serverAddress, "54", "20"])
        let holder = try BackgroundProcess([
            "ip", "netns", "exec", server.name, "python3", Self.script, "connect", Self.clientAddress, "5432", "3", "30",
        ])
        defer { holder.interrupt() }
        #expect(holder.waitForOutput(containing: "ready", atMost: 30), "the cured TCP class still connects")

        let listing = try server.exec(["conntrack", "-L"])
        let cured = Self.timeouts(listing, protocol: "udp", port: 53), plain = Self.timeouts(listing, protocol: "udp", port: 54)
        let udpDefault = try server.sysctl("net.netfilter.nf_conntrack_udp_timeout")
        #expect(cured.count == 20 && plain.count == 20, "\(listing)")
        #expect(cured.allSatisfy { $0 <= udpPolicy }, "udp/53 entries: \(cured), policy \(udpPolicy) s")
        #expect(plain.allSatisfy { $0 > udpPolicy && $0 <= udpDefault }, "udp/54 entries: \(plain), namespace \(udpDefault) s")
        let established = Self.timeouts(listing, protocol: "tcp", port: 5432)
        #expect(established.count == 3)
        #expect(established.allSatisfy { $0 <= establishedPolicy && $0 > establishedPolicy - 60 }, "tcp/5432: \(established)")

        try server.exec(["nft", "-f", "-"], input: CureTable.replacement(with: nil))
        #expect(try server.exec(["nft", "list", "ruleset"]) == before)
    }
}
