import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerWorkflows

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

    /// The classes' traffic: from the client, one datagram from each of 20 sockets to the
    /// server's UDP port 53 and 20 to port 54; from the server, 3 TCP connections to the
    /// client's port 5432, held 30 s (interrupt `held` when done).
    static func classTraffic(server: TestNamespace, client: TestNamespace) throws
        -> (held: [BackgroundProcess], listening: Bool, connected: Bool)
    {
        let listener = try BackgroundProcess(["ip", "netns", "exec", client.name, "python3", script, "listen", "5432", "30"])
        let listening = listener.waitForOutput(containing: "ready", atMost: 30)
        try client.exec(["python3", script, "udp", serverAddress, "53", "20"])
        try client.exec(["python3", script, "udp", serverAddress, "54", "20"])
        let holder = try BackgroundProcess([
            "ip", "netns", "exec", server.name, "python3", script, "connect", clientAddress, "5432", "3", "30",
        ])
        return ([listener, holder], listening, holder.waitForOutput(containing: "ready", atMost: 30))
    }

    /// conntrack -L's lines for `protocol` to `port` in the original direction, and their seconds left.
    static func timeouts(_ listing: String, protocol name: String, port: Int) -> [Int] {
        listing.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.first == Substring(name), fields.first(where: { $0.hasPrefix("dport=") }) == "dport=\(port)" else { return nil }
            return fields.count > 2 ? Int(fields[2]) : nil
        }
    }

    @Test("after a reboot the boot apply loads the persisted table again without journaling it; the file is the record")
    func bootApplyReassertsTheTable() throws {
        let state = try PrivateState(privateEtc: true)
        defer { state.remove() }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("cures.yaml")
        try Self.profile.write(to: profile, atomically: true, encoding: .utf8)
        let pair = try NamespacePair("cureboot", serverAddress: Self.serverAddress, clientAddress: Self.clientAddress)
        defer { pair.delete() }
        let server = pair.server

        let provisioned = try PrintedJSON(
            try state.cttune(["apply", "--profile", profile.path, "--allow-partial", "--format", "json"], in: server))
        #expect(provisioned.object["journal_id"] is String)
        let file = try #require(state.etcFile("cttune/cures.nft"), "the table persisted under the private /etc")
        let table = try server.exec(["nft", "list", "table", "inet", "cttune"])
        #expect(file.hasSuffix(table), "the file holds the table that was loaded")

        // A reboot: the ruleset is gone, the files stay; the boot unit's apply brings the table back.
        try server.exec(["nft", "delete", "table", "inet", "cttune"])
        let boot = try PrintedJSON(
            try state.cttune(["apply", "--runtime-only", "--persisted", "--allow-partial", "--format", "json"], in: server))
        #expect((boot.object["cure_table"] as? [String: Any])?["action"] as? String == "created")
        #expect(boot.object["reasserted"] as? Bool == true && boot.object["journal_id"] is NSNull, "\(boot.object)")
        #expect(try server.exec(["nft", "list", "table", "inet", "cttune"]) == table)
        #expect(state.journalIDs().count == 1, "only the provisioning apply is journaled")
    }

    @Test("every shape of class match loads, twice, and lists back exactly as planned (so a table in place is left alone)")
    func everyShapeLoadsAsPlanned() throws {
        let profile = """
            classes:
              - match: {direction: inbound, family: ipv4, protocol: tcp, ports: [80, "8000-8080"]}
                load: {tcp: {new_per_second: 10}}
                cure: timeouts
              - match: {direction: outbound, protocol: udp}
                load: {udp: {new_per_second: 10}}
                cure: timeouts
              - match: {direction: local, family: ipv6, protocol: tcp, ports: 443}
                load: {tcp: {new_per_second: 10, established_seconds: 30}}
                cure: timeouts
              - match: {direction: forwarded, protocol: udp, ports: 53}
                load: {udp: {new_per_second: 10}}
                cure: timeouts
              - match: {protocol: tcp, ports: 22}
                load: {tcp: {new_per_second: 1}}
                cure: timeouts
              - match: {direction: inbound, protocol: udplite}
                load: {udp: {new_per_second: 1}}
                cures: [notrack]
            """
        let loaded = try ProfileCatalog(searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["shapes": profile]) { $1 })
            .load("shapes")
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: loaded)
        #expect(plan.cures.map(\.applied) == [.timeouts, .timeouts, .timeouts, .timeouts, .timeouts, Cure.none])
        let table = try #require(CureTable.ruleset(for: plan.cures, classes: loaded.classes))
        let namespace = try TestNamespace("cure-shapes")
        defer { namespace.delete() }
        try namespace.exec(["nft", "-f", "-"], input: CureTable.replacement(with: table))
        try namespace.exec(["nft", "-f", "-"], input: CureTable.replacement(with: table))
        let listed = try namespace.exec(["nft", "list", "table", "inet", "cttune"])
        #expect(listed == table, "listed:\n\(listed)\nplanned:\n\(table)")
    }

    @Test("apply loads the table through libnftables in one journaled step; again is unchanged; rollback gives the ruleset back")
    func applyAndRollBack() throws {
        let state = try PrivateState()
        defer { state.remove() }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("cures.yaml")
        try Self.profile.write(to: profile, atomically: true, encoding: .utf8)
        let pair = try NamespacePair("cureb", serverAddress: Self.serverAddress, clientAddress: Self.clientAddress)
        defer { pair.delete() }
        let (server, client) = (pair.server, pair.client)
        let before = try server.exec(["nft", "list", "ruleset"])
        func apply(_ extra: [String] = []) throws -> PrintedJSON {
            try PrintedJSON(
                try state.cttune(
                    ["apply", "--profile", profile.path, "--runtime-only", "--allow-partial", "--format", "json"] + extra, in: server))
        }

        let check = try apply(["--check", "--diff"])
        let planned = try #require(check.object["cure_table"] as? [String: Any])
        #expect(planned["action"] as? String == "created", "\(planned)")
        #expect((planned["diff"] as? String)?.contains("+\tct timeout class_0 {") == true)
        #expect(try server.exec(["nft", "list", "ruleset"]) == before, "--check changes nothing")

        let untreated = try PrintedJSON(try state.cttune(["status", "--census", "--window", "0", "--format", "json"], in: server))
        #expect(untreated.object["cures"] is NSNull, "no table, no cures")
        let first = try apply()
        let table = try #require(first.object["cure_table"] as? [String: Any])
        #expect(table["action"] as? String == "created" && table["result"] as? String == "applied", "\(table)")
        let journal = try #require(first.object["journal_id"] as? String)
        #expect(try server.exec(["nft", "list", "table", "inet", "cttune"]).contains("ct timeout set \"class_0\""))
        try client.exec(["python3", Self.script, "udp", Self.serverAddress, "53", "5"])
        let cured = Self.timeouts(try server.exec(["conntrack", "-L"]), protocol: "udp", port: 53)
        #expect(cured.count == 5 && cured.allSatisfy { $0 <= 10 }, "\(cured)")

        // status, with its census, names the cures in force and their policies.
        let status = try PrintedJSON(try state.cttune(["status", "--census", "--window", "0", "--format", "json"], in: server))
        let cures = try #require(status.object["cures"] as? [[String: Any]], "\(status.object.keys)")
        #expect(cures.map { $0["class"] as? String } == ["dns", "outbound tcp/5432"])
        #expect((cures.first?["policy"] as? [String: Any])?["unreplied"] as? Int == 10)

        let again = try apply()
        #expect((again.object["cure_table"] as? [String: Any])?["action"] as? String == "unchanged")
        #expect(again.object["journal_id"] is NSNull, "nothing changed, nothing journaled")

        let rollback = try state.cttune(["rollback", journal, "--format", "json"], in: server)
        #expect(rollback.status == 0, "\(rollback.stdout) \(rollback.stderr)")
        #expect(try server.exec(["nft", "list", "ruleset"]) == before)
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

        let pair = try NamespacePair("curea", serverAddress: Self.serverAddress, clientAddress: Self.clientAddress)
        defer { pair.delete() }
        let (server, client) = (pair.server, pair.client)
        let before = try server.exec(["nft", "list", "ruleset"])

        // Loaded twice: the replacement is whole and repeatable.
        try server.exec(["nft", "-f", "-"], input: CureTable.replacement(with: table))
        try server.exec(["nft", "-f", "-"], input: CureTable.replacement(with: table))
        // Written as nft lists it: a table in place compares equal to the plan's.
        let listed = try server.exec(["nft", "list", "table", "inet", "cttune"])
        #expect(listed == table, "listed:\n\(listed)\nplanned:\n\(table)")

        let traffic = try Self.classTraffic(server: server, client: client)
        defer { traffic.held.forEach { $0.interrupt() } }
        #expect(traffic.listening)
        #expect(traffic.connected, "the cured TCP class still connects")

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

    @Test("a notracked class adds no entry and still connects, both ways; a rule that needs its state refuses the cure")
    func notrackTakesEffect() throws {
        let profile = """
            classes:
              - name: dns
                match: {direction: inbound, protocol: udp, ports: 53}
                load: {udp: {new_per_second: 100}}
                cures: [timeouts, notrack]
              - name: db
                match: {direction: outbound, protocol: tcp, ports: 5432}
                load: {tcp: {new_per_second: 1, established_seconds: 60}}
                cure: notrack
            """
        let loaded = try ProfileCatalog(searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["nt": profile]) { $1 })
            .load("nt")
        let pair = try NamespacePair("curen", serverAddress: Self.serverAddress, clientAddress: Self.clientAddress)
        defer { pair.delete() }
        let (server, client) = (pair.server, pair.client)
        // Only a stateful rule the classes' packets never reach (another
        // port): it turns tracking on for the namespace. NamespacePair's own
        // `ct state` rule would see every class, and refuse notrack.
        try server.exec(
            ["nft", "-f", "-"],
            input: """
                delete table inet cttune_test
                table inet fw {
                    chain input { type filter hook input priority filter; policy accept; udp dport 5000 ct state established accept; }
                }
                """)
        let facts = try ClassReach.judge(
            text: try server.exec(["nft", "-j", "list", "ruleset"]), source: "server", classes: loaded.classes)
        #expect(facts.judged == ["dns", "db"] && facts.needsState.isEmpty, "\(facts)")
        // The timeouts cure is cheaper, but notrack is the only one db allows and dns gets timeouts.
        let plan = Planner.plan(for: FixtureFacts.host(memory: 4 << 30), profile: loaded, rules: facts)
        #expect(plan.cures.map(\.applied) == [.timeouts, .notrack], "\(plan.cures.map(\.reason))")
        // Both notracked, through apply: it judges the namespace's live ruleset itself.
        let state = try PrivateState()
        defer { state.remove() }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("notrack.yaml")
        try profile.replacing("cures: [timeouts, notrack]", with: "cure: notrack").write(to: file, atomically: true, encoding: .utf8)
        let before = try server.exec(["nft", "list", "ruleset"])
        let applied = try PrintedJSON(
            try state.cttune(["apply", "--profile", file.path, "--runtime-only", "--allow-partial", "--format", "json"], in: server))
        #expect((applied.object["cure_table"] as? [String: Any])?["result"] as? String == "applied", "\(applied.object)")
        let table = try server.exec(["nft", "list", "table", "inet", "cttune"])
        #expect(table.contains("udp dport 53 notrack") && table.contains("tcp sport 5432 notrack"), "\(table)")

        let traffic = try Self.classTraffic(server: server, client: client)
        defer { traffic.held.forEach { $0.interrupt() } }
        #expect(traffic.listening)
        #expect(traffic.connected, "the notracked TCP class still connects")
        let listing = try server.exec(["conntrack", "-L"])
        #expect(Self.timeouts(listing, protocol: "udp", port: 53).isEmpty, "udp/53 is not tracked:\n\(listing)")
        #expect(Self.timeouts(listing, protocol: "tcp", port: 5432).isEmpty, "tcp/5432 is not tracked:\n\(listing)")
        #expect(Self.timeouts(listing, protocol: "udp", port: 54).count == 20, "the rest is tracked:\n\(listing)")

        func status() throws -> (status: Int32, cures: [[String: Any]], findings: [String]) {
            let run = try state.cttune(["status", "--census", "--window", "0", "--format", "json"], in: server)
            let object = try PrintedJSON(run).object
            let findings = (object["findings"] as? [[String: Any]] ?? []).compactMap { $0["message"] as? String }
            return (run.status, object["cures"] as? [[String: Any]] ?? [], findings)
        }
        let calm = try status()
        #expect(calm.cures.map { $0["cure"] as? String } == ["notrack", "notrack"], "\(calm.cures)")
        #expect(calm.cures.allSatisfy { ($0["conflicts"] as? [String])?.isEmpty == true } && calm.status != 2, "\(calm)")

        // A rule that needs the replies' state: notrack is refused for dns, named by its chain.
        try server.exec(
            ["nft", "add", "chain", "inet", "fw", "output", "{ type filter hook output priority filter; policy accept; }"])
        try server.exec(["nft", "add", "rule", "inet", "fw", "output", "udp", "sport", "53", "ct", "state", "established", "accept"])
        let changed = try ClassReach.judge(
            text: try server.exec(["nft", "-j", "list", "ruleset"]), source: "server", classes: loaded.classes)
        #expect(changed.needsState["dns"]?.contains("inet fw output") == true, "\(changed)")
        #expect(changed.needsState["db"] == nil, "db's replies arrive: output's rule on sport 53 never sees them")
        // status finds the rule that now needs the notracked class's state: critical, naming it.
        let alarmed = try status()
        #expect(alarmed.status == 2, "\(alarmed)")
        let dns = alarmed.cures.first { $0["class"] as? String == "dns" }
        #expect((dns?["conflicts"] as? [String])?.first?.contains("inet fw output") == true, "\(alarmed.cures)")
        #expect(alarmed.findings.contains { $0.contains("class dns is exempt from conntrack") && $0.contains("inet fw output") })

        // apply now refuses dns's notrack (its table loses dns's rules); rollback gives back the first ruleset.
        let again = try PrintedJSON(
            try state.cttune(["apply", "--profile", file.path, "--runtime-only", "--allow-partial", "--format", "json"], in: server))
        let cures = again.object["cures"] as? [[String: Any]] ?? []
        #expect(cures.first { $0["class"] as? String == "dns" }?["applied"] as? String == "none", "\(cures)")
        #expect(!(try server.exec(["nft", "list", "table", "inet", "cttune"])).contains("dport 53"))
        try server.exec(["nft", "flush", "chain", "inet", "fw", "output"])
        try server.exec(["nft", "delete", "chain", "inet", "fw", "output"])
        let rollback = try state.cttune(["rollback", "--all", "--format", "json"], in: server)
        #expect(rollback.status == 0, "\(rollback.stdout) \(rollback.stderr)")
        #expect(try server.exec(["nft", "list", "ruleset"]) == before, "rollback gives back the ruleset before the first apply")
    }
}
