import Foundation
import TestSupport
import Testing

/// Rulesets made by the real tools (iptables, nft, ufw, firewalld,
/// iptables-restore) in a fresh network namespace, read back by
/// `cttune rules` from inside it. Expected locations are computed from the
/// tools' own listings, not typed in.
@Suite(
    "cttune rules on rulesets made by real tools", .serialized, .enabled(if: TestHost.realKernel, "needs root, network namespaces and nft"))
struct RulesVerdictOnRealRulesetsTests {
    @Test(
        "iptables state and NAT rules need conntrack, each located by its iptables-save line",
        arguments: ["iptables-nft", "iptables-legacy"])
    func iptablesStateAndNAT(tool: String) throws {
        let namespace = try TestNamespace("rules-ipt")
        defer { namespace.delete() }
        for rule in [
            ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            ["-A", "INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
            ["-A", "INPUT", "-m", "state", "--state", "INVALID", "-j", "DROP"],
            ["-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
            ["-t", "nat", "-A", "POSTROUTING", "-s", "10.0.0.0/8", "-o", "eth0", "-j", "MASQUERADE"],
            ["-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.0.0.2:80"],
        ] { try Tool.check(in: namespace, [tool] + rule) }
        let saveTool = tool == "iptables-nft" ? "iptables-save" : "iptables-legacy-save"
        let saved = try Tool.check(in: namespace, [tool + "-save"])
        let report = try CttuneJSON.rules(in: namespace)

        #expect(report.verdict == "needed")
        let expected = iptablesLines(saved, tool: saveTool) { line in
            line.hasPrefix("-A")
                && (line.contains("conntrack") || line.contains("-m state") || line.contains("MASQUERADE") || line.contains("DNAT"))
        }
        #expect(expected.count == 4)
        #expect(report.locationKeys == expected)
        let nat = report.findings.filter { ($0["uses"] as? [String])?.contains("nat") == true }
        #expect(
            nat.map { $0["chain"] as? String } == ["PREROUTING", "POSTROUTING"]
                || nat.map { $0["chain"] as? String } == ["POSTROUTING", "PREROUTING"])
        #expect(nat.allSatisfy { $0["table"] as? String == "nat" && $0["replaceable"] as? Bool == false })
    }

    @Test("a pure stateless packet filter does not need conntrack")
    func statelessFilter() throws {
        let namespace = try TestNamespace("rules-stateless")
        defer { namespace.delete() }
        let commands = [
            "add table inet filter",
            "add chain inet filter input { type filter hook input priority filter; policy drop; }",
            "add rule inet filter input iif lo accept",
            "add rule inet filter input tcp dport { 22, 80, 443 } accept",
            "add rule inet filter input tcp flags & (syn | ack) == ack accept",
            "add rule inet filter input udp sport 53 accept",
            "add rule inet filter input icmp type echo-request limit rate 10/second accept",
            "add rule inet filter input counter drop",
        ]
        for command in commands { try Tool.check(in: namespace, ["nft"] + command.split(separator: " ").map(String.init)) }
        let report = try CttuneJSON.rules(in: namespace)
        #expect(report.verdict == "not-needed")
        #expect(report.findings.isEmpty)
        #expect(report["rules_examined"] as? Int == commands.filter { $0.hasPrefix("add rule") }.count)
    }

    @Test("a raw table that only says notrack exempts traffic and needs nothing")
    func notrackOnly() throws {
        let namespace = try TestNamespace("rules-notrack")
        defer { namespace.delete() }
        try Tool.check(
            in: namespace, ["nft", "-f", "-"],
            input: """
                table ip rawtrack {
                  chain pre { type filter hook prerouting priority raw; udp dport 53 notrack; }
                  chain out { type filter hook output priority raw; udp sport 53 notrack; }
                }
                """)
        try Tool.check(in: namespace, ["iptables", "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", "80", "-j", "CT", "--notrack"])
        let saved = try Tool.check(in: namespace, ["iptables-save"])
        let listed = try nftListing(namespace)
        let report = try CttuneJSON.rules(in: namespace)

        #expect(report.verdict == "not-needed")
        #expect(report.findings.isEmpty)
        let expected = iptablesLines(saved, tool: "iptables-save") { $0.contains("--notrack") }
            .union(listed.rules.filter { $0.text.contains("\"notrack\"") }.map { "ip rawtrack \($0.chain) handle \($0.handle)" })
        #expect(expected.count == 3)
        #expect(Set(report.exemptions.map(\.locationKey)) == expected)
    }

    @Test(
        "a Kubernetes-style NAT ruleset needs conntrack: every DNAT endpoint and the MASQUERADE are found",
        arguments: ["iptables-restore", "iptables-legacy-restore"])
    func kubernetesNAT(restore: String) throws {
        let namespace = try TestNamespace("rules-kube")
        defer { namespace.delete() }
        let services = 40, endpoints = 3
        let ruleset = try Tool.check([
            TestPaths.package.appendingPathComponent("scripts/kube-nat-ruleset.sh").path, "\(services)", "\(endpoints)",
        ])
        try Tool.check(in: namespace, [restore], input: ruleset)
        let saveTool = restore == "iptables-restore" ? "iptables-save" : "iptables-legacy-save"
        let saved = try Tool.check(in: namespace, [saveTool])
        let report = try CttuneJSON.rules(in: namespace)

        #expect(report.verdict == "needed")
        let dnat = report.findings.filter { ($0["rule"] as? String)?.contains("-j DNAT") == true }
        #expect(dnat.count == services * endpoints)
        #expect(dnat.allSatisfy { ($0["chain"] as? String)?.hasPrefix("KUBE-SEP-") == true && ($0["uses"] as? [String]) == ["nat"] })
        #expect(
            report.findings.contains {
                ($0["rule"] as? String)?.contains("MASQUERADE") == true && $0["chain"] as? String == "KUBE-POSTROUTING"
            })
        // Every rule of the nat table is located, and so is every conntrack match in the filter table.
        var table = ""
        let expected = iptablesLines(saved, tool: saveTool) { line in
            if line.hasPrefix("*") { table = String(line.dropFirst()) }
            return line.hasPrefix("-A") && (table == "nat" || line.contains("-m conntrack"))
        }
        #expect(report.locationKeys == expected)
    }

    @Test("ufw's default stateful rules use connection state only to accept or drop: partially avoidable")
    func ufwDefaults() throws {
        let namespace = try TestNamespace("rules-ufw")
        defer { namespace.delete() }
        try Tool.check([TestPaths.package.appendingPathComponent("scripts/ufw-in-netns.sh").path, namespace.name])
        let saved4 = try Tool.check(in: namespace, ["iptables-save"]), saved6 = try Tool.check(in: namespace, ["ip6tables-save"])
        let report = try CttuneJSON.rules(in: namespace)

        #expect(report.verdict == "partially-avoidable")
        let expected = iptablesLines(saved4, tool: "iptables-save") { $0.contains("--ctstate") }
            .union(iptablesLines(saved6, tool: "ip6tables-save") { $0.contains("--ctstate") })
        #expect(expected.count >= 10)
        #expect(report.locationKeys == expected)
        #expect(report.findings.allSatisfy { $0["replaceable"] as? Bool == true })
    }

    @Test(
        "firewalld's default zone needs conntrack for its ct status rules, found by handle; its nat chains only jump to empty zone chains: listed, not findings"
    )
    func firewalldDefaults() throws {
        let namespace = try TestNamespace("rules-firewalld")
        defer { namespace.delete() }
        try Tool.check([TestPaths.package.appendingPathComponent("scripts/firewalld-in-netns.sh").path, namespace.name])
        let listed = try nftListing(namespace)
        let report = try CttuneJSON.rules(in: namespace)

        #expect(report.verdict == "needed")
        let natChains = listed.chains.filter { $0.text.contains("\"type\": \"nat\"") }
        #expect(natChains.count >= 2)
        let ctRules = listed.rules.filter { $0.text.contains("{\"ct\": {") }
        #expect(!ctRules.isEmpty)
        // The default zone has no NAT rule: its nat base chains jump to zone
        // chains that hold none, and the kernel tracks nothing for them.
        #expect(report.locationKeys == Set(ctRules.map { "inet firewalld \($0.chain) handle \($0.handle)" }))
        let listedEmpty = Set(((report["empty_nat_chains"] as? [[String: Any]]) ?? []).map(\.locationKey))
        #expect(listedEmpty == Set(natChains.map { "inet firewalld \($0.chain) handle \($0.handle)" }))
        #expect(report.findings.contains { ($0["uses"] as? [String]) == ["ct-status"] && $0["replaceable"] as? Bool == false })
    }

    @Test(
        "a saved ruleset gives the same verdict and rules as the live one, in each format",
        arguments: ["nft-json", "nft-text", "iptables-save", "stdin"])
    func savedMatchesLive(format: String) throws {
        let namespace = try TestNamespace("rules-saved")
        defer { namespace.delete() }
        try Tool.check(
            in: namespace, ["nft", "-f", "-"],
            input: """
                table inet gateway {
                  chain forward { type filter hook forward priority filter; policy drop; ct state established,related accept; tcp dport 443 accept; }
                  chain postrouting { type nat hook postrouting priority srcnat; oifname "eth0" masquerade; }
                }
                """)
        try Tool.check(in: namespace, ["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT"])
        let live = try CttuneJSON.rules(in: namespace)
        let directory = try TestPaths.temporaryDirectory("cttune-rules")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("ruleset").path
        let saved: [String: Any]
        switch format {
        case "nft-json":
            try Tool.check(in: namespace, ["nft", "-j", "list", "table", "inet", "gateway"]).write(
                toFile: file, atomically: true, encoding: .utf8)
            saved = try CttuneJSON.rules(ruleset: file)
        case "nft-text":
            try Tool.check(in: namespace, ["nft", "list", "table", "inet", "gateway"]).write(
                toFile: file, atomically: true, encoding: .utf8)
            saved = try CttuneJSON.rules(ruleset: file)
            #expect(try leftoverRulesNamespaces().isEmpty)
        case "iptables-save":
            try Tool.check(in: namespace, ["iptables-save"]).write(toFile: file, atomically: true, encoding: .utf8)
            saved = try CttuneJSON.rules(ruleset: file)
        default:
            saved = try CttuneJSON.rules(
                ruleset: "-", input: try Tool.check(in: namespace, ["nft", "-j", "list", "table", "inet", "gateway"]))
        }
        let fromNft = format != "iptables-save"
        let liveRules = live.findings.filter { ($0["source"] as? String == "nft -j list ruleset") == fromNft }.compactMap {
            $0["rule"] as? String
        }
        #expect(!liveRules.isEmpty)
        #expect(saved.findings.compactMap { $0["rule"] as? String } == liveRules)
        #expect((saved["sources"] as? [[String: Any]])?.first?["format"] as? String == (format == "stdin" ? "nft-json" : format))
        #expect(saved.verdict == (fromNft ? "needed" : "partially-avoidable"))
        #expect(live.verdict == "needed")
    }

    @Test("iptables-nft tables are read once live (from iptables-save); a saved nft JSON copy names the extension and stays cautious")
    func iptablesNftTablesInNftJSON() throws {
        let namespace = try TestNamespace("rules-xt")
        defer { namespace.delete() }
        try Tool.check(in: namespace, ["iptables-nft", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT"])
        let live = try CttuneJSON.rules(in: namespace)
        #expect(live.verdict == "partially-avoidable")
        #expect(live.findings.map { $0["source"] as? String } == ["iptables-save"])
        #expect((live["sources"] as? [[String: Any]])?.first?["note"] as? String != nil)

        let saved = try CttuneJSON.rules(ruleset: "-", input: try Tool.check(in: namespace, ["nft", "-j", "list", "ruleset"]))
        #expect(saved.verdict == "needed")
        #expect(saved.findings.count == 1)
        #expect(saved.findings.first?["replaceable"] as? Bool == false)
        #expect((saved.findings.first?["reason"] as? String)?.contains("iptables-save") == true)
    }

    @Test(
        "a hand-written table ip nat that iptables-save cannot show is analysed from nft, next to iptables-nft tables",
        arguments: ["nat", "filter"])
    func handWrittenIptablesNamedTable(name: String) throws {
        let namespace = try TestNamespace("rules-native-nat")
        defer { namespace.delete() }
        try Tool.check(
            in: namespace, ["nft", "-f", "-"],
            input: """
                table ip \(name) {
                  chain post { type nat hook postrouting priority 100; oifname "eth0" masquerade; }
                }
                """)
        // An iptables-nft table elsewhere is still read from iptables-save.
        try Tool.check(in: namespace, ["iptables-nft", "-t", "mangle", "-A", "PREROUTING", "-j", "CONNMARK", "--restore-mark"])
        let saved = try Tool.check(in: namespace, ["iptables-save"])
        let report = try CttuneJSON.rules(in: namespace)

        #expect(report.verdict == "needed")
        let native = report.findings.filter { $0["source"] as? String == "nft -j list ruleset" }
        #expect(Set(native.map { "\($0["table"] as? String ?? "") \($0["chain"] as? String ?? "")" }) == ["\(name) post"])
        #expect(native.contains { ($0["uses"] as? [String]) == ["nat"] && ($0["rule"] as? String)?.contains("masquerade") == true })
        #expect(report.findings.contains { $0["source"] as? String == "iptables-save" && ($0["uses"] as? [String]) == ["connmark"] })
        let note = (report["sources"] as? [[String: Any]])?.first?["note"] as? String
        #expect(note?.contains("ip mangle") == true && note?.contains("ip \(name)") == false)
        #expect(saved.contains("*mangle"))
    }

    @Test(
        "the fixture rulesets (nftables' sample ruleset, nested statements) loaded live give the verdict the saved JSON gives",
        arguments: ["sample-ruleset", "nested-statements"])
    func fixtureRulesetsLive(name: String) throws {
        let namespace = try TestNamespace("rules-fixture")
        defer { namespace.delete() }
        let directory = TestPaths.fixtures.appendingPathComponent("rulesets")
        try Tool.check(in: namespace, ["nft", "-f", directory.appendingPathComponent("\(name).nft").path])
        let live = try CttuneJSON.rules(in: namespace)
        let saved = try CttuneJSON.rules(ruleset: directory.appendingPathComponent("\(name).json").path)
        let text = try CttuneJSON.rules(ruleset: directory.appendingPathComponent("\(name).nft").path)
        #expect(live.verdict == "needed" && saved.verdict == "needed" && text.verdict == "needed")
        let keys = { (report: [String: Any]) in
            report.findings.map { "\($0.locationKey) \(($0["uses"] as? [String] ?? []).joined(separator: ","))" }.sorted()
        }
        #expect(keys(live) == keys(saved))
        #expect(keys(text) == keys(saved))
        #expect(live.findings.contains { ($0["uses"] as? [String]) == ["unknown"] })
    }

    @Test("nft zones, marks, helpers, synproxy, ct count and direction each need conntrack, by handle")
    func nftConntrackFeatures() throws {
        let namespace = try TestNamespace("rules-features")
        defer { namespace.delete() }
        try Tool.check(
            in: namespace, ["nft", "-f", "-"],
            input: """
                table inet features {
                  ct helper ftpstd { type "ftp" protocol tcp; }
                  chain c_pre { type filter hook prerouting priority raw; ct zone set 1; }
                  chain c_forward { type filter hook forward priority filter; ct mark set 42; }
                  chain c_helper { type filter hook prerouting priority filter; tcp dport 21 ct helper set "ftpstd"; }
                  chain c_input { type filter hook input priority filter; tcp dport 80 ct state invalid,untracked synproxy mss 1460 wscale 7; ct count over 10 drop; ct direction original accept; }
                }
                """)
        let listed = try nftListing(namespace)
        let report = try CttuneJSON.rules(in: namespace)
        #expect(report.verdict == "needed")
        let uses = Dictionary(
            report.findings.map { (($0["chain"] as? String) ?? "object", ($0["uses"] as? [String] ?? []).joined(separator: ",")) }
        ) { $0 + ";" + $1 }
        #expect(
            uses == [
                "object": "ct-helper", "c_pre": "ct-zone", "c_forward": "ct-mark", "c_helper": "ct-helper",
                "c_input": "ct-state,synproxy;connection-count;ct-direction",
            ])
        #expect(Set(report.findings.compactMap { $0["handle"] as? Int }).isSuperset(of: listed.rules.map(\.handle)))
        #expect(report.findings.allSatisfy { $0["replaceable"] as? Bool == false })
        #expect(report.findings.contains { $0["rule"] as? String == "ct count over 10 drop" })
    }

    /// Chains and rules of `nft -j list ruleset`, each with its JSON text.
    func nftListing(_ namespace: TestNamespace) throws -> (chains: [NftElement], rules: [NftElement]) {
        let object =
            try JSONSerialization.jsonObject(with: Data(try Tool.check(in: namespace, ["nft", "-j", "list", "ruleset"]).utf8))
            as? [String: Any]
        let elements = object?["nftables"] as? [[String: Any]] ?? []
        func pick(_ kind: String, chainKey: String) -> [NftElement] {
            elements.compactMap { element in
                guard let body = element[kind] as? [String: Any] else { return nil }
                let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
                let text = String(decoding: data ?? Data(), as: UTF8.self).replacingOccurrences(of: "\":", with: "\": ")
                return NftElement(chain: body[chainKey] as? String ?? "", handle: body["handle"] as? Int ?? -1, text: text)
            }
        }
        return (pick("chain", chainKey: "name"), pick("rule", chainKey: "chain"))
    }

    struct NftElement {
        var chain: String
        var handle: Int
        var text: String
    }
}
