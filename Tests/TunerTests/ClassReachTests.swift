import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerWorkflows

/// The notrack judgement on saved rulesets: for each (ruleset, class), the
/// first rule that refuses it (by a part of its location) or none.
/// `CureOracleTests` checks these judgements against what the kernel delivers.
@Suite("which rules a class's packets can reach, judged on saved rulesets")
struct ClassReachTests {
    static func declared(_ name: String, _ match: ClassMatch) -> ProfileClass {
        ProfileClass(name: name, match: match, burstFactor: 1)
    }
    static let dns = declared("dns", ClassMatch(direction: .inbound, protocolNumber: 17, ports: [53...53]))
    static let web = declared("web", ClassMatch(direction: .inbound, protocolNumber: 6, ports: [8080...8080]))
    static let db = declared("db", ClassMatch(direction: .outbound, protocolNumber: 6, ports: [5432...5432]))
    static let routed = declared("routed", ClassMatch(direction: .forwarded, protocolNumber: 6, ports: [443...443]))
    static let ping = declared("ping", ClassMatch(direction: .inbound, isIPv6: false, protocolNumber: 1, icmpTypes: [8]))
    static let classes = [dns, web, db, routed, ping]

    /// One ruleset and, by class, a part of the refusing rule's location (`nil`: safe).
    struct Case: CustomTestStringConvertible {
        var name: String
        var text: String
        var refusals: [String: String]
        var testDescription: String { name }
    }

    static let iptablesCases: [Case] = [
        Case(
            name: "a host firewall accepting replies by state in INPUT: every class's arriving side",
            text: """
                *filter
                :INPUT DROP [0:0]
                :FORWARD DROP [0:0]
                :OUTPUT ACCEPT [0:0]
                -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
                -A INPUT -p udp -m udp --dport 53 -j ACCEPT
                -A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT
                COMMIT
                """,
            refusals: ["dns": "INPUT", "web": "INPUT", "db": "INPUT", "ping": "INPUT"]),
        Case(
            name: "state rules scoped by protocol and port leave other classes alone",
            text: """
                *filter
                :INPUT ACCEPT [0:0]
                :FORWARD ACCEPT [0:0]
                :OUTPUT ACCEPT [0:0]
                -A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -j ACCEPT
                -A INPUT -p tcp -m multiport --dports 80,443,8000:8100 -m conntrack --ctstate ESTABLISHED -j ACCEPT
                -A OUTPUT ! -p udp -m conntrack --ctstate INVALID -j DROP
                COMMIT
                """,
            // db's replies arrive with the peer's port 5432 as source and any destination port (22 among them).
            refusals: ["web": "INPUT", "db": "INPUT", "ping": "OUTPUT"]),
        Case(
            name: "a nat table: every rule a class reaches refuses, each by its own chain",
            text: """
                *nat
                :PREROUTING ACCEPT [0:0]
                :INPUT ACCEPT [0:0]
                :OUTPUT ACCEPT [0:0]
                :POSTROUTING ACCEPT [0:0]
                -A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80
                -A POSTROUTING -o eth0 -j MASQUERADE
                COMMIT
                """,
            refusals: ["web": "PREROUTING", "db": "PREROUTING", "routed": "PREROUTING", "dns": "POSTROUTING", "ping": "POSTROUTING"]),
        Case(
            name: "a user chain is taken to be reached from every hook",
            text: """
                *filter
                :INPUT ACCEPT [0:0]
                :FORWARD ACCEPT [0:0]
                :OUTPUT ACCEPT [0:0]
                :LIMITS - [0:0]
                -A INPUT -j LIMITS
                -A LIMITS -p tcp -m tcp --dport 8080 -m connlimit --connlimit-above 10 -j REJECT
                COMMIT
                """,
            refusals: ["web": "LIMITS", "db": "LIMITS", "routed": "LIMITS"]),
    ]

    @Test("iptables-save rulesets", arguments: iptablesCases)
    func iptables(_ testCase: Case) throws {
        try check(testCase)
    }

    static let nftCases: [Case] = [
        Case(
            name: "ct state accept scoped to tcp in input; invalid drop in output for everything",
            text: """
                table inet filter {
                    chain input { type filter hook input priority filter; policy drop; meta l4proto tcp ct state established accept; }
                    chain output { type filter hook output priority filter; policy accept; ct state invalid drop; }
                }
                """,
            refusals: ["dns": "output", "web": "input", "db": "input", "ping": "output"]),
        Case(
            name: "a family table sees its family; an arp table no IP packet",
            text: """
                table ip6 v6 { chain input { type filter hook input priority 0; ct state new accept; }; }
                table arp a { chain input { type filter hook input priority 0; meta mark 1 accept; }; }
                """,
            refusals: ["dns": "ip6 v6", "web": "ip6 v6", "db": "ip6 v6"]),
        Case(
            name: "a regular chain inherits the hooks of the chains that jump to it; fib daddr type excludes",
            text: """
                table inet f {
                    chain forwarding { type filter hook forward priority 0; jump stateful; }
                    chain stateful { ct state established accept; }
                    chain out { type filter hook output priority 0; fib daddr type local ct mark 1 accept; }
                }
                """,
            refusals: ["routed": "stateful"]),
        Case(
            name: "nat chains: a dnat'd port refuses its class only; masquerade on output refuses every leaving side",
            text: """
                table ip nat {
                    chain pre { type nat hook prerouting priority dstnat; tcp dport 8080 dnat to 10.0.0.2:80; }
                    chain post { type nat hook postrouting priority srcnat; oifname "eth9" masquerade; }
                }
                """,
            refusals: ["web": "ip nat pre", "db": "ip nat pre", "routed": "ip nat pre", "dns": "ip nat post", "ping": "ip nat post"]),
        Case(
            name: "a ct count limit on a port and a rule in a chain only a named verdict map reaches",
            text: """
                table inet f {
                    chain dnslimit { ct state new limit rate 10/second accept; }
                    map ports { type inet_service : verdict; elements = { 53 : jump dnslimit } }
                    chain input { type filter hook input priority 0; udp dport vmap @ports; tcp dport 8080 ct count over 5 drop; }
                }
                """,
            refusals: ["web": "dnslimit", "db": "dnslimit", "dns": "dnslimit", "routed": "dnslimit", "ping": "dnslimit"]),
        Case(
            name: "a ct count limit refuses its port's class, and the replies of classes on the same protocol",
            text: """
                table inet f {
                    chain input { type filter hook input priority 0; tcp dport 8080 ct count over 5 drop; }
                }
                """,
            refusals: ["web": "input", "db": "input"]),
        Case(
            name: "rules on interfaces absent here are judged as written (their interfaces are made to load them)",
            text: """
                table inet f {
                    chain input { type filter hook input priority 0; iif "virbr0" udp dport 53 ct state new accept; }
                    chain forward { type filter hook forward priority 0; iif "docker0" ct state established accept; }
                }
                """,
            refusals: ["dns": "input", "routed": "forward"]),
    ]

    @Test(
        "nft rulesets, loaded by nft in a private namespace",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason), arguments: nftCases)
    func nft(_ testCase: Case) throws {
        try check(testCase)
    }

    func check(_ testCase: Case) throws {
        let facts = try ClassReach.judge(text: testCase.text, source: "case", classes: Self.classes)
        #expect(facts.judged == Set(Self.classes.map(\.name)))
        for declared in Self.classes {
            let refusal = facts.needsState[declared.name]
            if let expected = testCase.refusals[declared.name] {
                #expect(refusal?.contains(expected) == true, "\(declared.name): \(refusal ?? "judged safe"), expected \(expected)")
            } else {
                #expect(refusal == nil, "\(declared.name) should be safe: \(refusal ?? "")")
            }
        }
    }

    @Test("the notrack rules exempt exactly the judged packets: requests where they arrive, replies where they are sent")
    func notrackRulesFollowTheSlices() {
        let rules = CureTable.notrackRules(Self.dns.match, comment: "dns")
        #expect(rules.map(\.arrives) == [true, false])
        #expect(rules[0].rule == "fib daddr type local udp dport 53 notrack comment \"dns\"")
        #expect(rules[1].rule == "fib daddr type != local udp sport 53 notrack comment \"dns\"")
        let anywhere = CureTable.notrackRules(ClassMatch(protocolNumber: 6, ports: [22...22, 8000...8100]), comment: "x")
        #expect(anywhere.map(\.arrives) == [true, false, true, false])
        #expect(anywhere.map(\.rule).allSatisfy { !$0.contains("fib") })
        #expect(anywhere[2].rule.hasPrefix("tcp sport { 22, 8000-8100 } notrack"))
        let ping = CureTable.notrackRules(Self.ping.match, comment: "ping")
        #expect(
            ping.map(\.rule) == [
                "fib daddr type local icmp type echo-request notrack comment \"ping\"",
                "fib daddr type != local icmp type echo-reply notrack comment \"ping\"",
            ])
    }

    @Test("plan --root judges notrack against the tree's saved ruleset given with --ruleset, and refuses it without one")
    func planWithSavedRuleset() throws {
        let fixture = try FixtureCopy("small-vm")
        defer { fixture.remove() }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("p.yaml"), ruleset = directory.appendingPathComponent("rules.v4")
        try """
        classes:
          - name: dns
            match: {direction: inbound, protocol: udp, ports: 53}
            load: {udp: {new_per_second: 100}}
            cure: notrack
          - name: web
            match: {direction: inbound, protocol: tcp, ports: 8080}
            load: {tcp: {new_per_second: 10}}
            cure: notrack
        """.write(to: profile, atomically: true, encoding: .utf8)
        try Self.iptablesCases[1].text.write(to: ruleset, atomically: true, encoding: .utf8)
        func cures(_ extra: [String]) throws -> [String: String] {
            let result = try PlanCommandTests().plan(["--root", fixture.url.path, "--profile", profile.path, "--format", "json"] + extra)
            let object = try PlanCommandTests().json(result)
            let cures = object["cures"] as? [[String: Any]] ?? []
            return Dictionary(uniqueKeysWithValues: cures.map { ($0["class"] as? String ?? "?", $0["applied"] as? String ?? "?") })
        }
        #expect(try cures([]) == ["dns": "none", "web": "none"], "--root alone: the running firewall is not the tree's")
        #expect(try cures(["--ruleset", ruleset.path]) == ["dns": "notrack", "web": "none"])
        let missing = try PlanCommandTests().plan(["--root", fixture.url.path, "--profile", profile.path, "--ruleset", "/nonexistent"])
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent") && missing.stdout.isEmpty, "\(missing.stderr)")
    }
}
