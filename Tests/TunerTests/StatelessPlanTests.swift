import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// `cttune plan --profile stateless` checks the live firewall of the network
/// namespace it runs in, refuses when rules need conntrack, and on this
/// kernel (nf_conntrack built in) proposes notrack rules that really keep
/// traffic out of the table.
@Suite("plan --profile stateless", .serialized, .enabled(if: TestHost.realKernel, "needs root, network namespaces and nft"))
struct StatelessPlanTests {
    static let stateful = """
        table inet gateway {
          chain input { type filter hook input priority filter; policy accept; ct state established,related accept; tcp dport 22 accept; }
          chain postrouting { type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }
        }
        """

    func plan(in namespace: TestNamespace) throws -> CttuneJSON.Outcome {
        try CttuneJSON.run(["plan", "--profile", "stateless"], in: namespace)
    }

    func stateless(_ outcome: CttuneJSON.Outcome) -> [String: Any] {
        outcome.json["stateless"] as? [String: Any] ?? [:]
    }

    func setting(_ key: String, _ outcome: CttuneJSON.Outcome) -> [String: Any] {
        (outcome.json["settings"] as? [[String: Any]] ?? []).first { $0["key"] as? String == key } ?? [:]
    }

    @Test("refuses with exit 1 and lists the rules that need conntrack, with their handles")
    func refusesStatefulFirewall() throws {
        let namespace = try TestNamespace("stateless-refused")
        defer { namespace.delete() }
        try Tool.check(in: namespace, ["nft", "-f", "-"], input: Self.stateful)
        let outcome = try plan(in: namespace)
        let review = stateless(outcome)
        let rules = review["rules"] as? [String: Any] ?? [:]

        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("refusing the stateless profile: 3 rules"))
        #expect(review["refused"] as? Bool == true)
        #expect(review["verdict"] as? String == "needed")
        #expect(Set(rules.findings.compactMap { $0["chain"] as? String }) == ["input", "postrouting"])
        #expect(rules.findings.allSatisfy { $0["handle"] is Int })
        #expect((review["advice"] as? [String])?.first?.hasPrefix("Refused") == true)

        let text = try Tool.run([TestPaths.cttune, "plan", "--profile", "stateless"], in: namespace)
        #expect(text.status == 1)
        #expect(text.stdout.contains("rules that need connection tracking:"))
        #expect(text.stdout.contains("ct state established,related accept"))
        #expect(!text.stdout.contains("notrack rules (nft -f):"))
    }

    @Test("with a stateless firewall it shows the verdict, the notrack rules for a built-in conntrack, and a small table")
    func acceptsStatelessFirewall() throws {
        let namespace = try TestNamespace("stateless-ok")
        defer { namespace.delete() }
        try Tool.check(
            in: namespace, ["nft", "-f", "-"],
            input: """
                table inet filter { chain input { type filter hook input priority filter; policy drop; iif lo accept; tcp dport 22 accept; }; }
                """)
        let outcome = try plan(in: namespace)
        let review = stateless(outcome)
        let notrack = review["notrack"] as? [String: Any] ?? [:]

        #expect(outcome.status == 0)
        #expect(review["verdict"] as? String == "not-needed")
        #expect(review["refused"] as? Bool == false)
        #expect(review["conntrack"] as? String == "built-in")
        #expect(review.keys.contains("modules"))
        #expect((notrack["nft"] as? String)?.contains("notrack") == true)
        #expect((notrack["iptables"] as? [String])?.count == 4)
        let facts = outcome.json["facts"] as? [String: Any] ?? [:]
        #expect(facts["count"] as? Int == 0)
        let max = setting("net.netfilter.nf_conntrack_max", outcome)
        // Nothing is tracked, so the table is planned at the planner's floor
        // (the current global max may be anything another test set).
        #expect(max["planned"] as? Int == Planner.minimumConntrackMax)
        #expect((max["reason"] as? String)?.contains("tracked now") == false)
    }

    /// The suggestion from a plan, in nft or iptables syntax, as commands to run.
    func suggestion(_ syntax: String) throws -> [([String], String?)] {
        let namespace = try TestNamespace("stateless-suggest")
        defer { namespace.delete() }
        let notrack = stateless(try plan(in: namespace))["notrack"] as? [String: Any] ?? [:]
        if syntax == "nft" { return [(["nft", "-f", "-"], notrack["nft"] as? String)] }
        return (notrack["iptables"] as? [String] ?? []).map { ($0.split(separator: " ").map(String.init), nil) }
    }

    @Test("the suggested notrack rules keep loopback traffic out of conntrack under a stateful rule", arguments: ["nft", "iptables"])
    func notrackSuggestionWorks(syntax: String) throws {
        let commands = try suggestion(syntax)
        #expect(!commands.isEmpty)
        let bypassed = try TestNamespace("stateless-bypass"), tracked = try TestNamespace("stateless-tracked")
        defer {
            bypassed.delete()
            tracked.delete()
        }
        for namespace in [bypassed, tracked] { try namespace.trackLoopback() }
        for (command, input) in commands { try Tool.check(in: bypassed, command, input: input) }

        for namespace in [bypassed, tracked] {
            try Tool.check(in: namespace, [TestPaths.loadgen, "--rate", "40", "--seconds", "1", "--sample", "0.5"])
        }
        #expect(try tracked.sysctl("net.netfilter.nf_conntrack_count") >= 30)
        #expect(try bypassed.sysctl("net.netfilter.nf_conntrack_count") == 0)
        let report = try CttuneJSON.rules(in: bypassed)
        #expect(report.exemptions.count == (syntax == "nft" ? 2 : 4))
    }

    @Test("while entries are still tracked the table keeps its size, even when no rule needs conntrack any more")
    func keepsTableWhileTracked() throws {
        let namespace = try TestNamespace("stateless-draining")
        defer { namespace.delete() }
        try namespace.trackLoopback()
        try Tool.check(in: namespace, [TestPaths.loadgen, "--rate", "40", "--seconds", "1", "--sample", "0.5"])
        try Tool.check(in: namespace, ["nft", "flush", "ruleset"])
        let outcome = try plan(in: namespace)
        let facts = outcome.json["facts"] as? [String: Any] ?? [:]

        #expect(outcome.status == 0)
        #expect(stateless(outcome)["verdict"] as? String == "not-needed")
        #expect((facts["count"] as? Int ?? 0) > 0)
        for key in ["net.netfilter.nf_conntrack_max", "nf_conntrack.hashsize"] {
            let row = setting(key, outcome)
            #expect(row["planned"] as? Int == row["current"] as? Int)
            #expect((row["reason"] as? String)?.contains("tracked now") == true)
        }
    }
}
