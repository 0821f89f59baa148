import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The analyser on saved nft JSON, without root, a network namespace or nft:
/// fixture listings made by the real nft (see Fixtures/rulesets/README.md)
/// in, verdict and locations out. Expected locations are computed from the
/// fixture's own JSON, not typed in.
@Suite("the ruleset analyser reads every statement of saved nft JSON")
struct RulesetAnalysisTests {
    static let directory = TestPaths.fixtures.appendingPathComponent("rulesets")

    static func fixture(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    /// `(chain, handle, expr)` of every rule in a listing, read with Foundation.
    static func rules(_ text: String) -> [(chain: String, handle: Int, expr: [Any])] {
        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
        return (object?["nftables"] as? [[String: Any]] ?? []).compactMap { element in
            guard let rule = element["rule"] as? [String: Any] else { return nil }
            return (rule["chain"] as? String ?? "", rule["handle"] as? Int ?? -1, rule["expr"] as? [Any] ?? [])
        }
    }

    static func analyse(_ text: String, source: String = "fixture.json") throws -> RulesetReport {
        try RulesetAnalyzer().analyze(text: text, source: source)
    }

    @Test("nftables' own sample ruleset, as nft 1.0.6 lists it, gets a verdict: plain-text statements are unknown and needed")
    func sampleRuleset() throws {
        let text = try Self.fixture("sample-ruleset.json")
        let report = try Self.analyse(text)
        #expect(report.verdict == .needed)
        #expect(report.rulesExamined == Self.rules(text).count)

        let plainText = Self.rules(text).filter { $0.expr.contains { $0 is String } }
        #expect(plainText.count == 6)
        let unknown = report.findings.filter { $0.uses.contains(.unknown) }
        #expect(
            Set(unknown.map { "\($0.location.chain ?? "") \($0.location.handle ?? -1)" })
                == Set(plainText.map { "\($0.chain) \($0.handle)" }))
        #expect(unknown.allSatisfy { !$0.replaceable && $0.reason.contains("plain text \"jump {") && $0.reason.contains("expr[") })
        #expect(unknown.allSatisfy { !$0.rule.contains("\n") && !$0.rule.contains("\t") })
        #expect(report.findings.contains { $0.uses == [.nat] && $0.location.chain == "POSTROUTING_SRCNAT" })
        #expect(report.findings.contains { $0.uses == [.natChain] })
    }

    @Test("ct count inside a set statement, a meter and a set declaration, a map statement and ct mark are all needed")
    func nestedStatements() throws {
        let text = try Self.fixture("nested-statements.json")
        let report = try Self.analyse(text)
        #expect(report.verdict == .needed)
        let byRule = Dictionary(report.findings.map { ($0.rule, $0.uses) }) { first, _ in first }
        #expect(byRule.first { $0.key.contains("add @connlimited") || $0.key.contains("tcp dport 22") }?.value == [.connectionCount])
        #expect(byRule.first { $0.key.contains("meter") }?.value == [.connectionCount])
        #expect(byRule["set counted"] == [.connectionCount])
        #expect(byRule.first { $0.key.contains("meta mark set ct mark") }?.value == [.ctMark])
        // nft 1.0.6 writes the map statement as plain text: unknown, so needed.
        #expect(byRule.first { $0.key.contains("update @flows") }?.value == [.unknown])
        let handles = Self.rules(text)
        let port53 = try #require(handles.first { String(describing: $0.expr).contains("53") })
        #expect(!report.findings.contains { $0.location.handle == port53.handle })
        #expect(report.findings.count == 5)
    }

    /// nft 1.1 writes a map statement as JSON (src/json.c, map_stmt_json);
    /// nft 1.0.6 here cannot, so the document is written by hand in that shape.
    @Test(
        "statements nested in a map statement, a verdict map and a concatenation are read",
        arguments: [
            (
                #"{"map": {"op": "update", "elem": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": 1, "map": "@m", "stmt": [{"ct count": {"val": 5, "inv": true}}]}}"#,
                ConntrackUse.connectionCount
            ),
            (
                #"{"map": {"op": "add", "elem": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": {"ct": {"key": "mark"}}, "map": "@m"}}"#,
                .ctMark
            ),
            (
                #"{"vmap": {"key": {"concat": [{"meta": {"key": "iifname"}}, {"ct": {"key": "zone"}}]}, "data": {"set": [[["eth0", 1], {"accept": null}]]}}}"#,
                .ctZone
            ),
            (
                #"{"meter": {"name": "m", "key": {"payload": {"protocol": "ip", "field": "saddr"}}, "stmt": {"ct count": {"val": 3}}, "size": 10}}"#,
                .connectionCount
            ),
            (
                #"{"match": {"op": "in", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"set": [{"elem": {"val": "10.0.0.1", "ct count": {"val": 2}}}]}}}"#,
                .connectionCount
            ),
            (
                #"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"&": [{"ct": {"direction": "reply", "key": "mark"}}, 255]}}}"#,
                .ctMark
            ),
            (#"{"match": {"op": "==", "left": {"inner": {"type": "vxlan"}}, "right": 1}}"#, .unknown),
            (#"{"future statement": {"x": 1}}"#, .unknown),
            (#"{"accept": null, "drop": null}"#, .unknown),
            ("42", .unknown),
        ])
    func nested(statement: String, use: ConntrackUse) throws {
        let report = try Self.analyse(Self.listing(rules: [statement]))
        #expect(report.verdict == .needed)
        #expect(report.findings.first?.uses == [use])
        #expect(report.findings.first?.location.handle == 7)
        if use == .unknown { #expect(report.findings.first?.reason.contains("expr[0]") == true) }
    }

    @Test("stateless statements of every kind, nested ones included, need nothing")
    func statelessStatements() throws {
        let statements = [
            #"{"map": {"op": "update", "elem": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": 1, "map": "@m", "stmt": [{"counter": null}, {"limit": {"rate": 5, "per": "second"}}]}}"#,
            #"{"set": {"op": "add", "elem": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"meta": {"key": "l4proto"}}]}, "set": "@s", "stmt": [{"quota": {"val": 10, "val_unit": "mbytes"}}]}}"#,
            #"{"vmap": {"key": {"fib": {"result": "type", "flags": ["daddr"]}}, "data": {"set": [["local", {"jump": {"target": "x"}}]]}}}"#,
            #"{"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "ack"]]}, "right": "ack"}}"#,
            #"{"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": {"rt": {"key": "mtu"}}}}"#,
            #"{"log": {"prefix": "x ", "flags": ["ip options", "ether"]}}"#, #"{"reject": {"type": "icmpx", "expr": "port-unreachable"}}"#,
            #"{"counter": "named"}"#, #"{"queue": {"num": {"range": [0, 3]}, "flags": ["bypass"]}}"#, #"{"last": null}"#,
        ]
        let report = try Self.analyse(Self.listing(rules: statements))
        #expect(report.findings.isEmpty)
        #expect(report.verdict == .notNeeded)
    }

    @Test(
        "input that is not nft JSON at all is a one-line error",
        arguments: [#"{"rules": []}"#, "[1]", #"{"nftables": 5}"#, #"{"nftables": [42]}"#, #"{"nftables": [{"firewall": {"name": "x"}}]}"#])
    func notNftJSON(text: String) throws {
        let error = #expect(throws: TunerError.self) { try Self.analyse(text) }
        #expect(error.map { "\($0)" }?.contains("\n") == false)
    }

    @Test("an element kind a newer nft may list inside a table is unknown and needed, with its index")
    func unknownElementInTable() throws {
        let text =
            String(Self.listing(rules: []).dropLast(2))
            + #", {"future object": {"family": "inet", "table": "t", "name": "x", "handle": 9}}]}"#
        let report = try Self.analyse(text)
        #expect(report.verdict == .needed)
        #expect(report.findings.map(\.uses) == [[.unknown]])
        #expect(report.findings.first?.reason.contains("nftables[4]") == true)
    }

    @Test("iptables SYNPROXY, -m cluster and CLUSTERIP need conntrack")
    func iptablesExtensions() throws {
        let text = [
            "*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -p tcp -m tcp --dport 80 -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460",
            "-A INPUT -m cluster --cluster-total-nodes 2 --cluster-local-node 1 --cluster-hash-seed 0xdeadbeef -j ACCEPT",
            "-A INPUT -d 10.0.0.1/32 -j CLUSTERIP --new --hashmode sourceip --clustermac 01:00:5E:00:00:20 --total-nodes 2 --local-node 1",
            "COMMIT", "",
        ].joined(separator: "\n")
        let report = try Self.analyse(text, source: "rules.v4")
        #expect(report.findings.map(\.uses) == [[.synproxy], [.ctOther], [.ctOther]])
    }

    @Test("a CRLF iptables-save is parsed line by line, not dumped whole as an unknown table")
    func crlfIptablesSave() throws {
        let lines = [
            "# Generated by iptables-save v1.8.9 (nf_tables) on Mon Nov 30 22:00:00 2026", "*filter", ":INPUT ACCEPT [0:0]",
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "COMMIT", "*nat", ":POSTROUTING ACCEPT [0:0]",
            "-A POSTROUTING -o eth0 -j MASQUERADE", "COMMIT", "",
        ]
        let unix = try Self.analyse(lines.joined(separator: "\n"), source: "rules.v4")
        let windows = try Self.analyse(lines.joined(separator: "\r\n"), source: "rules.v4")
        #expect(windows == unix)
        #expect(windows.verdict == .needed)
        #expect(windows.findings.map(\.location.line) == [4, 8])
        #expect(windows.findings.allSatisfy { !$0.rule.contains("\r") })
    }

    @Test("names with newlines and control characters are escaped in every printed line")
    func controlCharactersInNames() throws {
        let table = "evil\\n\\u001b[2Jtable", chain = "in\\tput\\r"
        let text = """
            {"nftables": [{"table": {"family": "inet", "name": "\(table)", "handle": 1}},
             {"chain": {"family": "inet", "table": "\(table)", "name": "\(chain)", "handle": 2, "type": "nat", "hook": "postrouting", "prio": 100}},
             {"rule": {"family": "inet", "table": "\(table)", "chain": "\(chain)", "handle": 3, "expr": [
               {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth\\n0"}}, {"masquerade": null}]}}]}
            """
        let report = try Self.analyse(text, source: "name\nwith newline.json")
        #expect(report.findings.first?.location.table == "evil\n\u{1b}[2Jtable")
        let printed = RulesReport.text(report)
        for line in printed.split(separator: "\n") {
            #expect(!line.unicodeScalars.contains { $0.properties.generalCategory == .control })
        }
        #expect(printed.contains("inet evil\\n\\u{1b}[2Jtable in\\tput\\r handle 3"))
        #expect(printed.contains("read: name\\nwith newline.json"))
        #expect(report.blockingRules.allSatisfy { !$0.contains("\n") })

        let undeclared = text.replacingOccurrences(of: #"{"table": {"family": "inet", "name": "\#(table)", "handle": 1}},"#, with: "")
        let error = #expect(throws: TunerError.self) { try Self.analyse(undeclared, source: "x\n.json") }
        let message = error.map { "\($0)" } ?? ""
        #expect(!message.contains("\n") && !message.contains("\u{1b}") && message.contains("evil\\n"))
    }

    @Test(
        "the command answers hostile nft JSON with one stderr line and exit 1, never a trap",
        arguments: [#"{"nftables": [{"table": {"family": "ip", "name": "\ud800\u0041"}}]}"#, "[" + String(repeating: "[", count: 100_000)])
    func hostileJSONThroughTheCommand(input: String) throws {
        let result = try Shell.run([TestPaths.cttune, "rules", "--ruleset", "-"], input: input)
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("cttune: error: -:1:") && result.stderr.split(separator: "\n").count == 1)
    }

    /// Seeded structural mutations of the real sample listing (values
    /// replaced by values of other shapes, statement kinds swapped, members
    /// dropped): each analysis gives a report or one invalid-ruleset line;
    /// a trap would end the test process.
    @Test("no mutation of a real listing traps the analyser")
    func mutatedListings() throws {
        let original = try JSONReader.parse(Self.fixture("sample-ruleset.json"))
        let seed: UInt64 = 0x7275_6c65_7321
        var generator = SplitMix64(state: seed)
        let kinds =
            Array(NftConntrackScan.plainStatements.union(NftConntrackScan.plainExpressions)) + [
                "ct", "elem", "ct count", "masquerade", "notrack", "xt", "rule", "chain", "table", "nftables", "expr", "", "\u{0}\n",
            ]
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<7, using: &generator) {
            case 0: return .null
            case 1: return .int(Int.random(in: Int.min...Int.max, using: &generator))
            case 2: return .string(kinds.randomElement(using: &generator)!)
            case 3: return .double(.random(in: -1e300...1e300, using: &generator))
            case 4:
                return depth > 3 ? .bool(true) : .array((0..<Int.random(in: 0...3, using: &generator)).map { _ in randomValue(depth + 1) })
            default:
                return depth > 3
                    ? .object([])
                    : .object([(kinds.randomElement(using: &generator)!, randomValue(depth + 1))])
            }
        }
        func mutate(_ value: JSONValue) -> JSONValue {
            if Int.random(in: 0..<2000, using: &generator) == 0 { return randomValue(0) }
            switch value {
            case .array(let items):
                var items = items.map(mutate)
                if !items.isEmpty, Int.random(in: 0..<1000, using: &generator) == 0 {
                    items.remove(at: Int.random(in: 0..<items.count, using: &generator))
                }
                return .array(items)
            case .object(let members):
                return .object(
                    members.map { key, member in
                        (Int.random(in: 0..<3000, using: &generator) == 0 ? kinds.randomElement(using: &generator)! : key, mutate(member))
                    })
            default:
                return value
            }
        }
        var reports = 0, errors = 0
        for _ in 0..<150 {
            let text = mutate(original).rendered()
            do {
                _ = try Self.analyse(text)
                reports += 1
            } catch let error as TunerError {
                guard case .invalidRuleset = error else {
                    Issue.record("seed \(seed): unexpected \(error)")
                    continue
                }
                #expect(!"\(error)".contains("\n"), "seed \(seed)")
                errors += 1
            }
        }
        #expect(reports > 10 && errors > 10, "seed \(seed): \(reports) reports, \(errors) errors")
    }

    /// A listing with one table, one chain and one rule (handle 7) made of `rules`.
    static func listing(rules statements: [String]) -> String {
        """
        {"nftables": [{"metainfo": {"version": "1.1.6", "release_name": "x", "json_schema_version": 1}},
         {"table": {"family": "inet", "name": "t", "handle": 1}},
         {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
         {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 7, "expr": [\(statements.joined(separator: ", "))]}}]}
        """
    }
}
