import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Broken rulesets — real tool output, truncated or edited — are errors
/// that name the line or element and the fix, never a silent "not needed".
@Suite(
    "malformed and truncated rulesets give clear errors", .serialized,
    .enabled(if: TestHost.realKernel, "needs root, a network namespace and nft to make the real rulesets"))
struct RulesetErrorMessageTests {
    /// Real listings of one stateful ruleset, made once.
    struct Listings: Sendable {
        var nftJSON: String
        var nftText: String
        var iptablesSave: String

        static let shared: Listings = {
            do {
                let namespace = try TestNamespace("rules-broken")
                defer { namespace.delete() }
                try Tool.check(
                    in: namespace, ["nft", "-f", "-"],
                    input: """
                        table inet host {
                          chain input { type filter hook input priority filter; policy accept; ct state established accept; tcp dport 22 accept; }
                          chain postrouting { type nat hook postrouting priority srcnat; masquerade; }
                        }
                        """)
                try Tool.check(
                    in: namespace,
                    [
                        "iptables", "-A", "INPUT", "-m", "comment", "--comment", "ssh from anywhere", "-p", "tcp", "--dport", "22", "-j",
                        "ACCEPT",
                    ])
                try Tool.check(in: namespace, ["iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE"])
                return Listings(
                    nftJSON: try Tool.check(in: namespace, ["nft", "-j", "list", "table", "inet", "host"]),
                    nftText: try Tool.check(in: namespace, ["nft", "list", "table", "inet", "host"]),
                    iptablesSave: try Tool.check(in: namespace, ["iptables-save"]))
            } catch {
                fatalError("cannot make the real rulesets: \(error)")
            }
        }()
    }

    enum Base: String, Sendable { case nftJSON, nftText, iptablesSave, none }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var base: Base
        var edit: @Sendable (String) -> String
        /// Expected in the error's location (after the source name).
        var location: String
        /// Expected in the message.
        var problem: String
        var testDescription: String { name }
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    static func text(_ object: Any) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
    }

    /// Edits the `nftables` array of a real listing.
    static func elements(_ change: @escaping @Sendable (inout [[String: Any]]) -> Void) -> @Sendable (String) -> String {
        { original in
            var elements = json(original)["nftables"] as? [[String: Any]] ?? []
            change(&elements)
            return text(["nftables": elements])
        }
    }

    static func firstIndex(_ kind: String, in elements: [[String: Any]]) -> Int {
        elements.firstIndex { $0[kind] != nil } ?? 0
    }

    /// Edits the first element of `kind` in a real listing.
    static func editFirst(_ kind: String, _ change: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (String) -> String {
        elements { elements in
            let index = firstIndex(kind, in: elements)
            var body = elements[index][kind] as? [String: Any] ?? [:]
            change(&body)
            elements[index] = [kind: body]
        }
    }

    /// Replaces the first line containing `marker`.
    static func replaceLine(containing marker: String, with replacement: String) -> @Sendable (String) -> String {
        { original in
            var lines = original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let index = lines.firstIndex(where: { $0.contains(marker) }) { lines[index] = replacement }
            return lines.joined(separator: "\n")
        }
    }

    static let cases: [Case] = [
        Case(
            name: "nft JSON cut in half", base: .nftJSON, edit: { String($0.prefix($0.count / 2)) }, location: ":1", problem: "ends early"),
        Case(
            name: "nft JSON cut after the first member", base: .nftJSON, edit: { String($0.prefix(14)) }, location: ":1",
            problem: "ends early"),
        Case(
            name: "nft JSON with a stray comma", base: .nftJSON, edit: { $0.replacingOccurrences(of: "[{", with: "[,{") }, location: ":1:",
            problem: "invalid JSON"),
        Case(
            name: "nft JSON spread over lines with a bad value on line 3", base: .nftJSON,
            edit: { "{\n\"nftables\":\n [ nope ] }" + String($0.prefix(0)) }, location: ":3:", problem: "invalid JSON"),
        Case(
            name: "a JSON array instead of the listing object", base: .nftJSON, edit: { "[" + $0 + "]" }, location: "",
            problem: "not an object with an \"nftables\" member"),
        Case(
            name: "nftables is not an array", base: .nftJSON, edit: { _ in text(["nftables": ["table": 1]]) }, location: "nftables",
            problem: "is not an array"),
        Case(
            name: "a rule without its expr array", base: .nftJSON, edit: editFirst("rule") { $0["expr"] = nil },
            location: "nftables[", problem: "has no \"expr\" array"),
        Case(
            name: "a rule without a family", base: .nftJSON, edit: editFirst("rule") { $0["family"] = nil },
            location: "nftables[", problem: "missing \"family\""),
        Case(
            name: "a chain without a name", base: .nftJSON, edit: editFirst("chain") { $0["name"] = nil },
            location: "nftables[", problem: "missing \"name\""),
        Case(
            name: "an element with two members", base: .nftJSON,
            edit: elements { $0[firstIndex("rule", in: $0)]["extra"] = ["x": 1] }, location: "nftables[", problem: "exactly one member"),
        Case(
            name: "an unknown element kind", base: .nftJSON, edit: elements { $0.append(["firewall": ["name": "x"]]) },
            location: "nftables[", problem: "unknown element \"firewall\""),
        Case(
            name: "an nft command document instead of a listing", base: .nftJSON,
            edit: elements { $0.append(["add": ["table": ["family": "inet", "name": "x"]]]) }, location: "nftables[",
            problem: "is an nft command"),
        Case(
            name: "a rule whose table was cut from the listing", base: .nftJSON,
            edit: elements { $0.remove(at: firstIndex("table", in: $0)) }, location: "nftables[", problem: "not listed before it"),
        Case(
            name: "an unsupported JSON schema version", base: .nftJSON,
            edit: editFirst("metainfo") { $0["json_schema_version"] = 2 }, location: "nftables[0]", problem: "schema version 2"),
        Case(
            name: "iptables-save without its last COMMIT", base: .iptablesSave,
            edit: { text in String(text[..<text.range(of: "COMMIT", options: .backwards)!.lowerBound]) }, location: ":",
            problem: "has no COMMIT"),
        Case(
            name: "iptables-save without its first table line", base: .iptablesSave,
            edit: replaceLine(containing: "*", with: ""), location: ":", problem: "outside any table"),
        Case(
            name: "a misspelt table", base: .iptablesSave, edit: replaceLine(containing: "*filter", with: "*filtre"),
            location: ":", problem: "unknown table \"filtre\""),
        Case(
            name: "a rule in a chain never declared", base: .iptablesSave,
            edit: replaceLine(containing: "--dport 22", with: "-A SSH-IN -p tcp --dport 22 -j ACCEPT"), location: ":",
            problem: "chain SSH-IN is not declared"),
        Case(
            name: "an unclosed quote in a comment", base: .iptablesSave,
            edit: { $0.replacingOccurrences(of: "\"ssh from anywhere\"", with: "\"ssh from anywhere") }, location: ":",
            problem: "double quote is not closed"),
        Case(
            name: "a chain with an unknown policy", base: .iptablesSave,
            edit: replaceLine(containing: ":INPUT", with: ":INPUT MAYBE [0:0]"),
            location: ":", problem: "policy \"MAYBE\""),
        Case(
            name: "a chain with garbled counters", base: .iptablesSave,
            edit: replaceLine(containing: ":INPUT", with: ":INPUT ACCEPT [x:y]"),
            location: ":", problem: "expected [packets:bytes]"),
        Case(
            name: "a jump without a target", base: .iptablesSave,
            edit: replaceLine(containing: "MASQUERADE", with: "-A POSTROUTING -o eth0 -j"), location: ":", problem: "-j needs a name"),
        Case(
            name: "a rule without a chain", base: .iptablesSave, edit: replaceLine(containing: "MASQUERADE", with: "-A"),
            location: ":", problem: "-A needs a chain name"),
        Case(
            name: "a stray line inside a table", base: .iptablesSave,
            edit: replaceLine(containing: "MASQUERADE", with: "masquerade everything"),
            location: ":", problem: "is not a rule"),
        Case(
            name: "a second table before COMMIT", base: .iptablesSave,
            edit: { $0.replacingOccurrences(of: "COMMIT", with: "") + "\nCOMMIT\n" }, location: ":", problem: "starts before table"),
        Case(
            name: "nft text with a missing closing brace", base: .nftText, edit: { String($0.dropLast(3)) }, location: ":",
            problem: "unexpected end of file"),
        Case(
            name: "nft text with a misspelt statement", base: .nftText,
            edit: { $0.replacingOccurrences(of: "masquerade", with: "masqerade") }, location: ":", problem: "syntax error"),
        Case(name: "an empty file", base: .none, edit: { _ in "" }, location: "", problem: "empty input"),
        Case(name: "only comments", base: .none, edit: { _ in "# nothing here\n# at all\n" }, location: "", problem: "no rules or tables"),
        Case(
            name: "text in no ruleset format", base: .none, edit: { _ in "\n\nallow ssh from 10.0.0.0/8\n" }, location: ":3",
            problem: "cannot tell the format"),
    ]

    @Test("each broken input is an invalid-ruleset error naming where and what", arguments: cases)
    func brokenInput(_ testCase: Case) throws {
        let listings = Listings.shared
        let original: String
        switch testCase.base {
        case .nftJSON: original = listings.nftJSON
        case .nftText: original = listings.nftText
        case .iptablesSave: original = listings.iptablesSave
        case .none: original = ""
        }
        let broken = testCase.edit(original)
        #expect(testCase.base == .none || broken != original)
        let directory = try TestPaths.temporaryDirectory("cttune-broken")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("ruleset").path
        try broken.write(toFile: file, atomically: true, encoding: .utf8)

        let error = #expect(throws: TunerError.self) { try RulesetAnalyzer().analyze(file: file) }
        guard case let .invalidRuleset(location, problem, fix)? = error else {
            Issue.record("expected invalidRuleset, got \(String(describing: error))")
            return
        }
        #expect(location.hasPrefix(file))
        #expect(location.dropFirst(file.count).contains(testCase.location) || testCase.location.isEmpty)
        #expect(problem.contains(testCase.problem))
        #expect(!fix.isEmpty)
        #expect(try leftoverRulesNamespaces().isEmpty)
    }

    @Test("the command prints the error on stderr, the JSON error object on stdout, and exits 1")
    func commandExitCode() throws {
        let saved = Listings.shared.iptablesSave
        let result = try Tool.run(
            [TestPaths.cttune, "rules", "--ruleset", "-", "--format", "json"],
            input: String(saved[..<saved.range(of: "COMMIT", options: .backwards)!.lowerBound]))
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        #expect(object["schema"] as? Int == 1 && object["command"] as? String == "rules")
        #expect((error["message"] as? String)?.contains("has no COMMIT") == true && error["exit_code"] as? Int == 1)
        #expect(result.stderr.hasPrefix("cttune: error: -:"))
        #expect(result.stderr.contains("has no COMMIT"))
    }

    @Test("a missing file is named with the fix")
    func missingFile() throws {
        let result = try Tool.run([TestPaths.cttune, "rules", "--ruleset", "/nonexistent/ruleset.json"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/ruleset.json: no such file"))
    }

    /// The built binary must be reachable by an unprivileged user (it is not
    /// when the checkout lives under a 0700 home directory).
    static let nobodyCanRunCttune =
        TestHost.isRoot
        && ((try? Tool.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "test", "-x", TestPaths.cttune]).status)
            == 0)

    @Test(
        "without root, nft text and the live ruleset are refused with the reason",
        .enabled(if: nobodyCanRunCttune, "user nobody cannot run the built cttune here"), arguments: ["text", "live"])
    func withoutRoot(what: String) throws {
        let directory = try TestPaths.temporaryDirectory("cttune-nonroot")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("ruleset.nft").path
        try Listings.shared.nftText.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(directory.path, 0o755)
        chmod(file, 0o644)
        let asNobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", TestPaths.cttune, "rules"]
        let result = try Tool.run(asNobody + (what == "text" ? ["--ruleset", file] : []))
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains(what == "text" ? "is nft text" : "failed"))
        #expect(result.stderr.contains("run as root"))
    }

    @Test(
        "saved nft text that names interfaces this host lacks is judged, not refused: libvirt's iif/oif, a device-bound chain",
        arguments: [("libvirt-nat-network", "needed"), ("device-bound-stateless", "not-needed")])
    func interfacesAbsentHere(name: String, verdict: String) throws {
        let file = TestPaths.fixtures.appendingPathComponent("oracle/handwritten/\(name).nft").path
        #expect(try CttuneJSON.rules(ruleset: file).verdict == verdict)
        // Read from stdin the same way.
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(try CttuneJSON.rules(ruleset: "-", input: text).verdict == verdict)
    }

    @Test("the interfaces nft reports missing are read from the text at the error's columns, quoted or not, and only valid names")
    func missingInterfaceNames() {
        let text = "table inet t {\n chain c { iif { \"a0\", lo } accept\n oif br-1234 accept; meta iif \"x9\" drop; }\n}\n"
        let stderr = """
            /dev/stdin:2:18-21: Error: Interface does not exist
             chain c { iif { "a0", lo } accept
                             ^^^^
            /dev/stdin:3:6-12: Error: Interface does not exist
            /dev/stdin:3:31-34: Error: Interface does not exist
            /dev/stdin:3:1-3: Error: syntax error, unexpected junk
            """
        #expect(RulesetAnalyzer.missingInterfaces(stderr, text: text) == ["a0", "br-1234", "x9"])
        // A location past the text or a token no interface can be named is left out.
        #expect(RulesetAnalyzer.missingInterfaces("/dev/stdin:9:1-4: Error: Interface does not exist", text: text).isEmpty)
        #expect(RulesetAnalyzer.missingInterfaces("/dev/stdin:1:1-14: Error: Interface does not exist", text: text).isEmpty)
    }
}
