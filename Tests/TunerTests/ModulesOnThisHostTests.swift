import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The commands on a kernel with nf_conntrack built in and no loadable
/// module support (no /proc/modules), like this project's test machine.
@Suite(
    "module commands on a kernel without loadable modules",
    .enabled(
        if: !FileManager.default.fileExists(atPath: "/proc/modules") && FileManager.default.fileExists(atPath: "/sys/module/nf_conntrack"),
        "needs a kernel with nf_conntrack built in and no /proc/modules"))
struct ModulesOnThisHostTests {
    static let explanation = "this kernel has no loadable module support (no /proc/modules): nf_conntrack"

    @Test("cttune modules says so in its first line, reports nf_conntrack built in, and exits 0")
    func modulesExplains() throws {
        let result = try Shell.run([TestPaths.cttune, "modules"])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix(Self.explanation) == true)
        #expect(lines.first?.contains("notrack") == true)
        #expect(lines.contains { $0.hasPrefix("nf_conntrack ") && $0.contains("built-in-inferred") })

        let json = try Shell.run([TestPaths.cttune, "modules", "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["module_support"] as? String == "none")
        #expect(object["module_directory"] is NSNull)
    }

    @Test(
        "cttune unload --dry-run and cttune unload give the one-line explanation on stderr, exit 1 (refused) and touch nothing",
        arguments: [["unload", "--dry-run"], ["unload"]])
    func unloadExplains(arguments: [String]) throws {
        let result = try Shell.run([TestPaths.cttune] + arguments)
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("cttune: error: " + Self.explanation) == true)
        #expect(lines.first?.contains("notrack rule") == true)
    }

    @Test("cttune blacklist refuses with the reason: no loadable module to keep off")
    func blacklistRefuses() throws {
        let result = try Shell.run([TestPaths.cttune, "blacklist", "--dry-run"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("no loadable conntrack/NAT module under /lib/modules"))
        #expect(result.stderr.contains("use a notrack rule"))
    }
}

/// The ruleset analyser refusing an unload, run inside namespaces
/// with real nft and iptables rulesets.
@Suite("rules that block an unload", .serialized, .enabled(if: TestHost.realKernel, "needs root, network namespaces and nft"))
struct UnloadBlockingRulesTests {
    func blockingRules(in namespace: TestNamespace) throws -> [String] {
        let result = try namespace.run([TestPaths.cttune, "unload", "--dry-run", "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        return try #require(object["blocking_rules"] as? [String])
    }

    @Test("an empty ruleset blocks nothing; an nft ct state rule and an nft masquerade rule each block, as does a connection limit")
    func nftRules() throws {
        let namespace = try TestNamespace("unload")
        defer { namespace.delete() }
        #expect(try blockingRules(in: namespace).isEmpty)
        try namespace.trackLoopback()
        let stateful = try blockingRules(in: namespace)
        #expect(stateful.count == 1)
        #expect(stateful.first?.hasPrefix("inet cttune_test input handle") == true)
        try namespace.exec(
            ["nft", "-f", "-"],
            input: """
                table ip nat_test {
                  chain post { type nat hook postrouting priority 100; oifname "lo" masquerade; }
                }
                """)
        // The nat-type chain and its masquerade rule each need conntrack.
        let nat = try blockingRules(in: namespace)
        #expect(nat.count == 3)
        #expect(nat.contains { $0.hasPrefix("ip nat_test post") && $0.hasSuffix("masquerade") })
        try namespace.exec(["nft", "add rule inet cttune_test input tcp dport 80 ct count over 10 drop"])
        #expect(try blockingRules(in: namespace).count == 4)
    }

    @Test("a stateless nft rule (counter, notrack) blocks nothing", .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
    func statelessNftRule() throws {
        let namespace = try TestNamespace("unload")
        defer { namespace.delete() }
        try namespace.exec(
            ["nft", "-f", "-"],
            input: """
                table inet plain {
                  chain pre { type filter hook prerouting priority -300; notrack; }
                  chain input { type filter hook input priority 0; tcp dport 22 counter accept; }
                }
                """)
        #expect(try blockingRules(in: namespace).isEmpty)
    }

    @Test("an iptables conntrack match blocks", .enabled(if: (try? Shell.run(["which", "iptables"]).status) == 0))
    func iptablesRule() throws {
        let namespace = try TestNamespace("unload")
        defer { namespace.delete() }
        try namespace.exec(["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT"])
        let rules = try blockingRules(in: namespace)
        #expect(rules.contains { $0.hasPrefix("ip filter INPUT line") && $0.contains("--ctstate ESTABLISHED") })
    }
}
