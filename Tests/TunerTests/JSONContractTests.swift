import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// Every command's `--format json` output, on success and on an error, has
/// the shape docs/json.md documents: the same members with the same types,
/// `"schema": 1`, and one `error` object shape.
@Suite(
    "JSON contract: every command's output matches docs/json.md",
    .enabled(if: ModuleTrees.available, ModuleTrees.missingHint),
    .enabled(if: TestHost.canUseNetns, "needs root, nf_conntrack and ip: status reads the kernel, one case in a namespace of its own"))
struct JSONContractTests {
    /// One command line and the documented example its output must match.
    struct Case: CustomTestStringConvertible, Sendable {
        var shape: String
        var arguments: [String]
        var exitCode: Int32 = 0
        /// Runs an apply on the scratch root first (rollback's cases).
        var afterApply = false
        /// Runs as `nobody`: the live host's files and kernel interfaces refuse it.
        var unprivileged = false
        var testDescription: String { (unprivileged ? "as nobody: " : "") + "cttune " + arguments.joined(separator: " ") }
    }

    static let successes: [Case] = [
        Case(shape: "plan", arguments: ["plan", "--root", "{root}", "--memory", "4G", "--cpus", "2"]),
        Case(shape: "plan", arguments: ["plan", "--root", "{root}", "--memory", "4G", "--explain"]),
        Case(shape: "plan --profile stateless", arguments: ["plan", "--root", "{root}", "--memory", "4G", "--profile", "stateless"]),
        Case(shape: "apply", arguments: ["apply", "--root", "{root}", "--memory", "4G", "--cpus", "2", "--diff"]),
        Case(shape: "apply", arguments: ["apply", "--root", "{root}", "--memory", "4G", "--check"]),
        Case(shape: "rollback", arguments: ["rollback", "--root", "{root}"], afterApply: true),
        Case(shape: "rollback", arguments: ["rollback", "--root", "{root}", "--all", "--check"], afterApply: true),
        Case(shape: "rollback --list", arguments: ["rollback", "--list", "--root", "{root}"], afterApply: true),
        Case(shape: "rollback --list ID", arguments: ["rollback", "--list", "{last-id}", "--root", "{root}"], afterApply: true),
        Case(shape: "rollback --prune", arguments: ["rollback", "--prune", "--keep", "0", "--root", "{root}"], afterApply: true),
        Case(shape: "status", arguments: ["status", "--window", "0"]),
        Case(shape: "status", arguments: ["status", "--watch", "0.1", "--count", "1"]),
        Case(shape: "status --namespace", arguments: ["status", "--namespace", "{netns}", "--window", "0"]),
        Case(shape: "learn", arguments: ["learn", "--namespace", "{netns}", "--seconds", "1"]),
        Case(shape: "rules", arguments: ["rules", "--ruleset", "{fixtures}/rulesets/sample-ruleset.json"]),
        Case(shape: "modules", arguments: ["modules", "--root", "{root}"]),
        Case(shape: "unload", arguments: ["unload", "--dry-run", "--root", "{modules-only}"]),
        Case(shape: "blacklist", arguments: ["blacklist", "--dry-run", "--root", "{root}"]),
        Case(shape: "blacklist", arguments: ["blacklist", "--root", "{root}"]),
    ]

    /// Errors before any report exists print the documented error object;
    /// refusals after a complete report print the report with `error` set.
    static let errors: [Case] = [
        Case(shape: "error", arguments: ["plan", "--root", "{root}", "--profile", "{root}/missing.yaml"], exitCode: 1),
        Case(shape: "error", arguments: ["plan", "--cpus", "0"], exitCode: 64),
        Case(shape: "error", arguments: ["apply", "--root", "{root}", "--profile", "{root}/missing.yaml"], exitCode: 1),
        Case(shape: "error", arguments: ["rollback", "--root", "{root}"], exitCode: 1),
        Case(shape: "status: UNKNOWN", arguments: ["status", "--window", "0", "--textfile", "{root}/missing/conntrack.prom"], exitCode: 3),
        Case(shape: "error", arguments: ["learn", "--namespace", "{root}/missing", "--seconds", "1"], exitCode: 1),
        Case(shape: "error", arguments: ["rules", "--ruleset", "{root}/missing.nft"], exitCode: 1),
        Case(shape: "error", arguments: ["modules", "--root", "{root}/missing"], exitCode: 1),
        Case(shape: "error", arguments: ["unload", "--dry-run", "--root", "{root}/missing"], exitCode: 1),
        Case(shape: "unload", arguments: ["unload", "--dry-run", "--root", "{root}"], exitCode: 1),
        Case(shape: "error", arguments: ["blacklist", "--root", "{root}/missing"], exitCode: 1),
        // Every command run unprivileged on the live host: what the kernel or
        // a file refuses (ctnetlink's EPERM included) is the same error object.
        Case(shape: "error", arguments: ["plan", "--profile", "/nonexistent/cttune.yaml"], exitCode: 1, unprivileged: true),
        Case(shape: "error", arguments: ["apply"], exitCode: 1, unprivileged: true),
        Case(shape: "error", arguments: ["rollback"], exitCode: 1, unprivileged: true),
        Case(
            shape: "status: UNKNOWN", arguments: ["status", "--window", "0", "--textfile", "/root/cttune-json-test.prom"], exitCode: 3,
            unprivileged: true),
        Case(shape: "error", arguments: ["rules"], exitCode: 1, unprivileged: true),
        Case(shape: "error", arguments: ["modules", "--root", "/root"], exitCode: 1, unprivileged: true),
        Case(shape: "error", arguments: ["unload"], exitCode: 1, unprivileged: true),
        Case(shape: "error", arguments: ["blacklist"], exitCode: 1, unprivileged: true),
        Case(shape: "error", arguments: ["learn", "--seconds", "1"], exitCode: 1, unprivileged: true),
    ]

    @Test("a successful command prints one object of its documented shape", arguments: successes)
    func success(_ testCase: Case) throws {
        try check(testCase)
    }

    @Test("a failing command prints one object with the error, the stderr line's text and the exit code", arguments: errors)
    func failure(_ testCase: Case) throws {
        try check(testCase)
    }

    @Test("every documented example has its command's shape and the contract's conventions")
    func documentedExamples() throws {
        let examples = try Self.examples()
        #expect(Set(examples.keys).isSuperset(of: (Self.successes + Self.errors).map(\.shape)))
        for (name, example) in examples {
            #expect(example["schema"] == .int(1), "\(name): no \"schema\": 1")
            #expect(Self.violations(of: example, path: name).isEmpty, "\(name): \(Self.violations(of: example, path: name))")
        }
    }

    func check(_ testCase: Case) throws {
        let root = try TestPaths.temporaryDirectory("cttune-json")
        defer { try? FileManager.default.removeItem(at: root) }
        try Shell.check(["cp", "-R", TestPaths.fixtures.appendingPathComponent("hosts/small-vm").path + "/.", root.path])
        try FileManager.default.createDirectory(at: root.appendingPathComponent("lib"), withIntermediateDirectories: true)
        try ModuleTrees.copyModules(into: root.appendingPathComponent("lib/modules"))
        let modulesOnly = root.appendingPathComponent("modules-only")
        try FileManager.default.createDirectory(at: modulesOnly.appendingPathComponent("lib"), withIntermediateDirectories: true)
        try ModuleTrees.copyModules(into: modulesOnly.appendingPathComponent("lib/modules"))
        var lastID = ""
        if testCase.afterApply {
            _ = try Shell.check([TestPaths.cttune, "apply", "--root", root.path, "--memory", "4G"])
            let list = try JSONReader.parse(
                try Shell.check([TestPaths.cttune, "rollback", "--list", "--root", root.path, "--format", "json"]))
            if case .array(let entries)? = list["journal"], case .string(let id)? = entries.last?["id"] { lastID = id }
        }
        let namespace = testCase.arguments.contains("{netns}") ? try TestNamespace("json") : nil
        defer { namespace?.delete() }
        let arguments = testCase.arguments.map {
            $0.replacingOccurrences(of: "{modules-only}", with: modulesOnly.path).replacingOccurrences(of: "{root}", with: root.path)
                .replacingOccurrences(of: "{fixtures}", with: TestPaths.fixtures.path).replacingOccurrences(of: "{last-id}", with: lastID)
                .replacingOccurrences(of: "{netns}", with: namespace?.name ?? "")
        }
        let asNobody = testCase.unprivileged ? ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] : []
        let result = try Shell.run(
            asNobody + [TestPaths.cttune] + arguments + ["--format", "json"], environment: ["CTTUNE_PROFILE_PATH": ""])
        // status's exit code is the live table's verdict (0 ok, 1 warning, 2 critical) on a shared kernel.
        let exitCodes = testCase.shape.hasPrefix("status") && testCase.exitCode == 0 ? 0...2 : testCase.exitCode...testCase.exitCode
        #expect(exitCodes.contains(result.status), "exit \(result.status), stderr: \(result.stderr)")
        let output = try JSONReader.parse(result.stdout)
        let example = try #require(try Self.examples()[testCase.shape], "docs/json.md has no example for \(testCase.shape)")
        #expect(output["schema"] == .int(1))
        #expect(output["command"] == .string(arguments[0]))
        let mismatches = Self.mismatches(output, against: example, path: testCase.shape)
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))\n\(result.stdout)")
        #expect(Self.violations(of: output, path: testCase.shape).isEmpty, "\(Self.violations(of: output, path: testCase.shape))")
        // The error object repeats the stderr line and the exit code.
        guard testCase.exitCode != 0 else {
            #expect(output["error"] == nil || output["error"] == .null)
            return
        }
        let error = try #require(output["error"])
        #expect(error["exit_code"] == .int(Int(testCase.exitCode)))
        let line = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        guard case .string(let message)? = error["message"] else {
            Issue.record("error.message is not a string: \(error)")
            return
        }
        #expect(line == "cttune: error: " + message || line == "Error: " + message, "stderr: \(result.stderr)")
    }

    /// Members a command prints only with some flags or cases (docs/json.md's table).
    static let optionalMembers: Set<String> = [
        "plan.stateless", "plan.estimate.flow_classes", "plan.estimate.anchors", "plan.settings[].arithmetic",
        "plan --profile stateless.estimate.flow_classes", "plan --profile stateless.estimate.anchors",
        "plan --profile stateless.settings[].arithmetic", "apply.files[].diff", "apply.modules", "apply.stateless", "status.overridden_by",
        "status.writers",
    ]

    /// Objects whose keys are data (protocols, TCP states), not member names.
    static let keyedByData: Set<String> = ["status.entries.by_protocol", "status.entries.tcp_states"]

    /// Where `output` differs from the documented `example`: a member missing or
    /// undocumented, or a value of another type. `null` on either side matches
    /// any value (a documented member may be absent on one host).
    static func mismatches(_ output: JSONValue, against example: JSONValue, path: String) -> [String] {
        switch (output, example) {
        case (.null, _), (_, .null): return []
        case (.object(let members), .object(let documented)):
            if keyedByData.contains(path) {
                guard let shape = documented.first?.1 else { return [] }
                return members.flatMap { mismatches($0.1, against: shape, path: path + "." + $0.0) }
            }
            let documentedKeys = Set(documented.map(\.0))
            let keys = Set(members.map(\.0))
            var found = keys.subtracting(documentedKeys).sorted().map { "\(path).\($0): not in docs/json.md" }
            found += documentedKeys.subtracting(keys).filter { !optionalMembers.contains(path + "." + $0) }.sorted()
                .map { "\(path).\($0): documented but not printed" }
            for (key, value) in members {
                guard let shape = documented.first(where: { $0.0 == key })?.1 else { continue }
                found += mismatches(value, against: shape, path: path + "." + key)
            }
            return found
        case (.array(let items), .array(let documented)):
            guard let shape = documented.first else { return [] }
            return items.flatMap { mismatches($0, against: shape, path: path + "[]") }
        case (.int, .int), (.double, .double), (.string, .string), (.bool, .bool): return []
        default: return ["\(path): \(kind(output)) where docs/json.md shows \(kind(example))"]
        }
    }

    /// The contract's conventions, checked on every value: snake_case keys and
    /// no placeholder strings for absent values or numbers.
    static func violations(of value: JSONValue, path: String) -> [String] {
        switch value {
        case .object(let members):
            return members.flatMap { key, member -> [String] in
                let keyIsData = keyedByData.contains(path)
                let snake = key.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }
                return (keyIsData || snake ? [] : ["\(path).\(key): key is not snake_case"])
                    + violations(of: member, path: path + "." + key)
            }
        case .array(let items): return items.flatMap { violations(of: $0, path: path + "[]") }
        case .string(let text):
            if ["absent", "-", "none"].contains(text) { return ["\(path): \"\(text)\" where null belongs"] }
            if Int(text) != nil || text.hasSuffix(" bytes") && Int(text.dropLast(6)) != nil {
                return ["\(path): the number \"\(text)\" printed as a string"]
            }
            return []
        default: return []
        }
    }

    static func kind(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a decimal number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// docs/json.md's examples by heading (`### plan` followed by a ```json block).
    static func examples() throws -> [String: JSONValue] {
        let text = try String(contentsOf: TestPaths.package.appendingPathComponent("docs/json.md"), encoding: .utf8)
        var examples: [String: JSONValue] = [:]
        var heading: String?
        var block: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("### ") {
                heading = String(line.dropFirst(4))
            } else if line == "```json", heading != nil {
                block = []
            } else if line == "```", let lines = block, let name = heading {
                examples[name] = try JSONReader.parse(lines.joined(separator: "\n"))
                (block, heading) = (nil, nil)
            } else {
                block?.append(line)
            }
        }
        return examples
    }
}
