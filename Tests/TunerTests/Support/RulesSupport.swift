import Foundation
import TestSupport

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Runs `cttune rules` (or another cttune command) and reads its JSON.
enum CttuneJSON {
    struct Outcome {
        var status: Int32
        var json: [String: Any]
        var stderr: String
    }

    /// `cttune ARGS --format json` inside `namespace` (so it reads that
    /// namespace's live ruleset), or in the test's own namespace when nil.
    static func run(_ arguments: [String], in namespace: TestNamespace? = nil, input: String? = nil) throws -> Outcome {
        let command = [TestPaths.cttune] + arguments + ["--format", "json"]
        let result = try Tool.run(command, in: namespace, input: input)
        let object = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any]
        guard let object else {
            throw Shell.Failure(command: command.joined(separator: " "), result: result)
        }
        return Outcome(status: result.status, json: object, stderr: result.stderr)
    }

    static func rules(in namespace: TestNamespace? = nil, ruleset: String? = nil, input: String? = nil) throws -> [String: Any] {
        let outcome = try run(["rules"] + (ruleset.map { ["--ruleset", $0] } ?? []), in: namespace, input: input)
        guard outcome.status == 0 else {
            throw Shell.Failure(command: "cttune rules", result: .init(status: outcome.status, stdout: "", stderr: outcome.stderr))
        }
        return outcome.json
    }
}

/// Reading the `findings` and `exemptions` arrays of a rules report.
extension Dictionary where Key == String, Value == Any {
    var verdict: String? { self["verdict"] as? String }
    var findings: [[String: Any]] { self["findings"] as? [[String: Any]] ?? [] }
    var exemptions: [[String: Any]] { self["exemptions"] as? [[String: Any]] ?? [] }

    /// "source line N" for iptables findings, "family table chain handle N" for nft ones.
    var locationKeys: Set<String> {
        Set(findings.map(\.locationKey))
    }

    var locationKey: String {
        if let line = self["line"] as? Int { return "\(self["source"] as? String ?? "") line \(line)" }
        return
            "\(self["family"] as? String ?? "") \(self["table"] as? String ?? "") \(self["chain"] as? String ?? "") handle \(self["handle"] as? Int ?? -1)"
    }
}

/// Lines of iptables-save output matching `predicate`, as "TOOL line N".
func iptablesLines(_ text: String, tool: String, where predicate: (String) -> Bool) -> Set<String> {
    var keys: Set<String> = []
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where predicate(String(line)) {
        keys.insert("\(tool) line \(index + 1)")
    }
    return keys
}

/// The namespaces `cttune` creates to load nft text: none may be left behind.
func leftoverRulesNamespaces() throws -> [String] {
    try Tool.check(["ip", "netns", "list"]).split(separator: "\n")
        .map { String($0.split(separator: " ").first ?? "") }
        .filter { $0.hasPrefix("cttune-nft-text-") }
}
