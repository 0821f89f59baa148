import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// Cures per class: which the planner applies, what each saves, and the
/// table that carries them.
@Suite("cures per class")
struct CureTests {
    static let resolver = """
        extends: default
        classes:
          - name: dns
            match: {direction: inbound, protocol: udp, ports: 53}
            load: {udp: {new_per_second: 2000, stream_ratio: 0}}
            cures: [timeouts, notrack]
          - match: {direction: outbound, protocol: tcp, ports: 5432}
            load: {tcp: {new_per_second: 1, established_seconds: 3600, orphan_ratio: 0.05}}
            cure: timeouts
          - match: {direction: inbound, protocol: tcp, ports: [80, "8000-8080"]}
            load: {tcp: {new_per_second: 300, established_seconds: 4}}
          - match: {protocol: icmp}
            load: {other_per_second: 5}
            cures: [notrack]
        """
    static let host = FixtureFacts.host(memory: 16 << 30)

    static func profile(_ yaml: String = resolver) throws -> LoadProfile {
        try ProfileCatalog(searchDirectories: [], builtins: BuiltinProfiles.yamlByName.merging(["t": yaml]) { $1 }).load("t")
    }

    @Test("timeouts: each shortened to its floor, established to twice the class's time there, never lengthened")
    func policy() throws {
        let profile = try Self.profile()
        let global = Planner.startingTimeouts(profile: profile)
        let dns = try #require(CurePolicy.policy(for: profile.classes[0], floors: { Planner.floor($0, profile) }, global: global))
        #expect(dns.protocolName == "udp")
        #expect(dns.timeouts == [.udpTimeout: 10, .udpTimeoutStream: 60])
        let database = try #require(CurePolicy.policy(for: profile.classes[1], floors: { Planner.floor($0, profile) }, global: global))
        #expect(database.timeouts[.tcpTimeoutEstablished] == 7200)  // 2 x 3600 s, above the 600 s floor
        #expect(database.timeouts[.tcpTimeoutTimeWait] == 60)
        #expect(database.timeouts[.tcpTimeoutClose] == nil)  // 10 s already: its floor
        #expect(CurePolicy.policy(for: profile.classes[3], floors: { Planner.floor($0, profile) }, global: global) == nil)
        // A host already at the floors leaves nothing to shorten.
        var low = global
        for setting in ConntrackSetting.timeouts { low[setting] = Planner.floor(setting, profile) }
        #expect(CurePolicy.policy(for: profile.classes[0], floors: { Planner.floor($0, profile) }, global: low) == nil)
    }

    @Test("the profile's cure or the cheapest safe allowed one is applied; notrack never without a judged ruleset")
    func decisions() throws {
        let profile = try Self.profile()
        let plan = Planner.plan(for: Self.host, profile: profile)
        #expect(plan.cures.map(\.applied) == [.timeouts, .timeouts, Cure.none, Cure.none])
        #expect(plan.cures[2].reason.contains("allows no cure"))
        #expect(plan.cures[3].reason.hasPrefix("refused: notrack: the ruleset was not judged"))
        #expect(plan.cures[3].options.first { $0.cure == .timeouts }?.safe == false)

        // Judged: notrack is applied where allowed and no rule needs state, refused naming the rule where one does.
        let rules = ClassRuleFacts(
            needsState: ["inbound tcp/80,8000-8080": "inet filter input handle 7 (ct state established,related accept)"],
            judged: Set(profile.classes.map(\.name)), source: "the live ruleset")
        let judged = Planner.plan(for: Self.host, profile: profile, rules: rules)
        #expect(judged.cures.map(\.applied) == [.timeouts, .timeouts, Cure.none, .notrack])
        #expect(judged.cures[2].options.first { $0.cure == .notrack }?.reason.contains("handle 7") == true)
        var notrackFirst = profile
        notrackFirst.classes[0].cures = [.notrack]
        notrackFirst.classes[0].curePinned = true
        let pinned = Planner.plan(for: Self.host, profile: notrackFirst, rules: rules)
        #expect(pinned.cures[0].applied == .notrack)
        #expect(pinned.estimate.classes[0].peakEntries == 0)
        #expect(pinned.planned(.max)! < judged.planned(.max)!)
    }

    @Test("savings: the class's peak without its cure minus with it; the host's max is sized for what remains")
    func savings() throws {
        let profile = try Self.profile()
        var untreated = profile
        for index in untreated.classes.indices { untreated.classes[index].cures = [] }
        let (cured, plain) = (Planner.plan(for: Self.host, profile: profile), Planner.plan(for: Self.host, profile: untreated))
        for (index, decision) in cured.cures.enumerated() where decision.applied == .timeouts {
            let saved = try #require(decision.options.first { $0.cure == .timeouts }?.savesEntries)
            #expect(saved > 0)
            #expect(abs(plain.estimate.classes[index].peakEntries - cured.estimate.classes[index].peakEntries - saved) <= 1)
        }
        // dns: 2000/s x burst 3 x (udp 30 s -> 10 s + 60 s steady gap).
        #expect(plain.estimate.classes[0].peakEntries == 540_000)
        #expect(cured.estimate.classes[0].peakEntries == 420_000)
        #expect(cured.planned(.max)! < plain.planned(.max)!)
        // The host's own timeouts are not planned from a class's policy.
        #expect(ConntrackSetting.timeouts.allSatisfy { cured.planned($0) == plain.planned($0) })
    }

    @Test("a cure is read like the rest of a class: one name, cure or cures, none alone")
    func schema() {
        func error(_ cures: String) -> String {
            do {
                _ = try Self.profile("classes:\n  - match: {protocol: udp}\n" + cures)
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(error("    cure: fast\n").contains("classes[0].cure: unknown cure \"fast\" — use timeouts, notrack, none"))
        #expect(error("    cure: timeouts\n    cures: [notrack]\n").contains("write one of them, not both"))
        #expect(error("    cures: notrack\n").contains("classes[0].cures: must be a list"))
        #expect(error("    cures: [none, notrack]\n").contains("none allows nothing"))
        #expect(
            error("    cure: notrack\n").contains("accepted"))
        #expect(
            ((try? Self.profile("classes:\n  - match: {protocol: gre}\n    cure: timeouts\n")) == nil))
        #expect(error("    cure: notrack\n").contains("accepted"))
        #expect(
            ((try? Self.profile("classes:\n  - match: {protocol: udplite}\n    cures: [timeouts]\n")) == nil),
            "UDP-Lite shares UDP's timeouts but a ct timeout object is per protocol")
    }

    @Test("the table: one timeout object per cured class, assigned at priority mangle where its first packet is tracked, before DNAT")
    func table() throws {
        let profile = try Self.profile()
        let plan = Planner.plan(for: Self.host, profile: profile)
        let text = try #require(CureTable.ruleset(for: plan.cures, classes: profile.classes))
        #expect(text.hasPrefix("table inet cttune {\n"))
        #expect(
            text.contains(
                "\tct timeout class_0 {\n\t\tcomment \"dns\"\n\t\tprotocol udp\n\t\tl3proto ip\n"
                    + "\t\tpolicy = { unreplied : 10, replied : 60 }"))
        #expect(text.contains("\t\tfib daddr type local udp dport 53 ct timeout set \"class_0\" comment \"dns\""))
        #expect(text.contains("\t\tfib daddr type != local tcp dport 5432 ct timeout set \"class_1\""))
        #expect(text.contains("type filter hook prerouting priority mangle; policy accept;"))
        #expect(!text.contains("class_2") && !text.contains("class_3"))
        var none = profile
        for index in none.classes.indices { none.classes[index].cures = [] }
        #expect(CureTable.ruleset(for: Planner.plan(for: Self.host, profile: none).cures, classes: none.classes) == nil)
        #expect(CureTable.replacement(with: nil) == "table inet cttune\ndelete table inet cttune\n")
    }
}
