import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// Renders a `RulesetReport` as JSON (`cttune rules --format json`, and the
/// `stateless` object of a plan) or as text for people.
public enum RulesReport {
    public static func json(_ report: RulesetReport) -> [(String, JSONValue)] {
        [
            ("verdict", .string(kebabCase(report.verdict.rawValue))),
            (
                "sources",
                .array(
                    report.sources.map { source in
                        .object([
                            ("name", .string(source.name)),
                            ("format", .string(source.format.rawValue)),
                            ("rules", .int(source.rules)),
                            ("note", source.note.json),
                        ])
                    })
            ),
            ("rules_examined", .int(report.rulesExamined)),
            ("findings", .array(report.findings.map(json))),
            ("exemptions", .array(report.exemptions.map(json))),
            ("empty_nat_chains", .array(report.emptyNatChains.map(json))),
            ("advice", .array(report.advice.map(JSONValue.string))),
        ]
    }

    /// Where a rule or chain is: the members findings (and exemptions) and nat chains share.
    static func members(_ location: RuleLocation) -> [(String, JSONValue)] {
        [
            ("source", .string(location.source)),
            ("format", .string(location.format.rawValue)),
            ("family", location.family.json),
            ("table", .string(location.table)),
            ("chain", location.chain.json),
            ("handle", location.handle.json),
            ("line", location.line.json),
        ]
    }

    /// A nat chain or table: where, how many rules (`null` in a file), and its removal.
    public static func json(_ chain: NatChain) -> JSONValue {
        .object(
            members(chain.location) + [
                ("rules", chain.rules.json),
                ("removal", .string(chain.removal)),
            ])
    }

    public static func json(_ finding: RulesetFinding) -> JSONValue {
        .object(
            members(finding.location) + [
                ("rule", .string(finding.rule)),
                ("uses", .array(finding.uses.map { .string(kebabCase($0.rawValue)) })),
                ("reason", .string(finding.reason)),
                ("replaceable", .bool(finding.replaceable)),
            ])
    }

    /// The verdict, what was read, one row per finding with its reason, the
    /// notrack exemptions, then the advice.
    public static func text(_ report: RulesetReport) -> String {
        var lines = ["verdict: \(report.verdict.words) — \(summary(report))"]
        lines.append(
            "read: "
                + report.sources.map { "\($0.name.escapingControlCharacters) (\($0.rules) rule\($0.rules == 1 ? "" : "s"))" }.joined(
                    separator: ", "))
        lines += report.sources.compactMap { $0.note.map { "  note: \($0.escapingControlCharacters)" } }
        if !report.findings.isEmpty {
            lines.append("")
            lines.append("needs conntrack:")
            lines += findingLines(report.findings)
        }
        if !report.emptyNatChains.isEmpty {
            lines.append("")
            lines.append(
                """
                empty NAT chains (no rule, or only jumps to chains without one: nothing is tracked for them; they still load \
                only with nf_nat and nf_conntrack):
                """)
            lines += report.emptyNatChains.map { "  \($0.location.summary)    remove: \($0.removal.escapingControlCharacters)" }
        }
        if !report.exemptions.isEmpty {
            lines.append("")
            lines.append("exempt from conntrack (notrack):")
            lines += Table.render(
                header: ["LOCATION", "RULE"], rows: report.exemptions.map { [$0.location.summary, $0.rule.escapingControlCharacters] }
            )
            .dropFirst().map { "  " + $0 }
        }
        lines.append("")
        lines += report.advice
        return lines.joined(separator: "\n")
    }

    /// A LOCATION / USES / RULE table, each row followed by its reason.
    public static func findingLines(_ findings: [RulesetFinding]) -> [String] {
        let rows = findings.map {
            [$0.location.summary, $0.uses.map(\.rawValue).joined(separator: ","), $0.rule.escapingControlCharacters]
        }
        let table = Table.render(header: ["LOCATION", "USES", "RULE"], rows: rows)
        var lines = ["  " + table[0]]
        for (row, finding) in zip(table.dropFirst(), findings) {
            lines.append("  " + row)
            lines.append("      why: \(finding.reason.escapingControlCharacters)\(finding.replaceable ? " (replaceable)" : "")")
        }
        return lines
    }

    /// The contract's enum style in JSON (`not-needed`, `ct-state`): the text keeps the words.
    static func kebabCase(_ name: String) -> String {
        String(name.map { $0 == " " || $0 == "_" ? "-" : $0 })
    }

    static func summary(_ report: RulesetReport) -> String {
        let replaceable = report.findings.filter(\.replaceable).count
        switch report.verdict {
        case .notNeeded:
            return "no rule of \(report.rulesExamined) depends on connection tracking"
        case .partiallyAvoidable:
            return "\(replaceable) of \(report.rulesExamined) rules use connection state, and only to accept or drop by state"
        case .needed:
            return "\(report.findings.count) rules, chains or objects need connection tracking (\(report.rulesExamined) rules read"
                + (replaceable > 0 ? "; \(replaceable) of them only by state)" : ")")
        }
    }
}
