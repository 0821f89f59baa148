import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerRender
@testable import TunerWorkflows

/// promtool from Debian's prometheus package (scripts/install-deps.sh test).
enum Promtool {
    static let path = "/usr/bin/promtool"
    static let isAvailable = FileManager.default.isExecutableFile(atPath: path)
    static let rules = TestPaths.package.appendingPathComponent("contrib/prometheus/cttune.rules.yml").path
    static let ruleTests = TestPaths.package.appendingPathComponent("contrib/prometheus/tests/cttune.rules.test.yml").path
}

@Suite(
    "the shipped Prometheus rules, checked and unit-tested with promtool", .enabled(if: Promtool.isAvailable, "needs promtool (prometheus)")
)
struct AlertingRulesTests {
    @Test("promtool check rules accepts contrib/prometheus/cttune.rules.yml")
    func rulesCheck() throws {
        let output = try Shell.check([Promtool.path, "check", "rules", Promtool.rules])
        #expect(output.contains("SUCCESS"))
    }

    @Test("promtool test rules: every alert fires and stays quiet where its unit tests say, for: durations included")
    func ruleUnitTests() throws {
        let result = try Shell.run([Promtool.path, "test", "rules", Promtool.ruleTests])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let rules = try String(contentsOfFile: Promtool.rules, encoding: .utf8)
        let tests = try String(contentsOfFile: Promtool.ruleTests, encoding: .utf8)
        let alerts = rules.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("- alert: ") ? String(trimmed.dropFirst("- alert: ".count)) : nil
        }
        #expect(alerts.count >= 9)
        for alert in alerts {
            // Each alert is tested both ways: an empty exp_alerts and a firing one.
            let blocks = tests.components(separatedBy: "alertname: \(alert)\n").dropFirst()
            #expect(blocks.contains { $0.hasPrefix("        exp_alerts: []") }, "\(alert) has no not-firing case")
            #expect(blocks.contains { $0.hasPrefix("        exp_alerts:\n") }, "\(alert) has no firing case")
        }
    }

    @Test("the rules' fill thresholds are status's, and every metric they read is in the catalogue")
    func rulesMatchStatus() throws {
        let rules = try String(contentsOfFile: Promtool.rules, encoding: .utf8)
        #expect(
            rules.contains(
                "cttune_conntrack_fill_ratio >= \(StatusReport.warningFill) and cttune_conntrack_fill_ratio < \(StatusReport.criticalFill)")
        )
        #expect(rules.contains("expr: cttune_conntrack_fill_ratio >= \(StatusReport.criticalFill)\n"))
        let catalogue = Set(MetricCatalogue.all.map(\.name))
        let expressions = rules.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("expr:") }
        let pattern = try NSRegularExpression(pattern: "(?<![:a-z_])cttune_[a-z_]+")
        for expression in expressions.map(String.init) {
            for match in pattern.matches(in: expression, range: NSRange(expression.startIndex..., in: expression)) {
                let name = String(expression[Range(match.range, in: expression)!])
                #expect(catalogue.contains(name), "\(name) in `\(expression)` is not a catalogue family")
            }
        }
    }

    @Test(
        "promtool check metrics accepts what status --all-namespaces --textfile wrote on the real kernel, census families included",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
    func realTextfileLints() throws {
        let namespace = try TestNamespace("promlint")
        defer { namespace.delete() }
        try namespace.trackLoopback()
        // A few tracked UDP flows, so the census has entries to count.
        for port in 9000..<9005 { _ = try? namespace.run(["bash", "-c", "printf x > /dev/udp/127.0.0.1/\(port)"]) }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cttune.prom").path
        let status = try Shell.run([
            TestPaths.cttune, "status", "--all-namespaces", "--census", "--window", "0", "--quiet", "--textfile", path,
        ])
        #expect([0, 1, 2].contains(status.status), "\(status.stderr)")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("cttune_conntrack_entries{netns="))
        #expect(text.contains("cttune_conntrack_protocol_entries{netns="))
        let lint = try Shell.run([Promtool.path, "check", "metrics"], input: text)
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint.stdout)\(lint.stderr)")
        // promtool finds problems when there are some: a counter without _total.
        let bad = try Shell.run([Promtool.path, "check", "metrics"], input: "# HELP x_count c.\n# TYPE x_count counter\nx_count 1\n")
        #expect(bad.status != 0 || !(bad.stdout + bad.stderr).isEmpty)
    }
}
