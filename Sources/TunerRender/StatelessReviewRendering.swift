import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// Renders the stateless part of a plan (`cttune plan --profile stateless`).
public enum StatelessReport {
    /// The `stateless` member of the plan JSON.
    ///
    /// `modules` is the module plan: unload order and blacklist file content.
    public static func json(_ review: StatelessReview, modules: StatelessModulePlan?) -> JSONValue {
        .object([
            ("verdict", review.rules.map { .string(RulesReport.kebabCase($0.verdict.rawValue)) } ?? .null),
            ("refused", .bool(review.refused)),
            ("bridge_note", review.bridgeNote.json),
            ("rules", review.rules.map { .object(RulesReport.json($0)) } ?? .null),
            ("rules_not_read", review.rulesNotRead.json),
            ("nat_chains", .array(review.natChains.map(RulesReport.json))),
            ("conntrack", .string(review.conntrack.rawValue)),
            (
                "modules",
                modules.map { plan in
                    .object([
                        ("unload_order", .array(plan.unloadOrder.map(JSONValue.string))),
                        ("refused", plan.refusal.json),
                        ("blacklist_file", plan.blacklistPath.json),
                        ("blacklist_contents", plan.blacklistContents.json),
                        ("outside_family_unloadable", .array((plan.impact?.unloadable ?? []).map(JSONValue.string))),
                        ("outside_family_in_use", .array((plan.impact?.conflicts ?? []).map(JSONValue.string))),
                        ("unavailable", plan.unavailable.json),
                    ])
                } ?? .null
            ),
            (
                "notrack",
                review.notrack.map { suggestion in
                    .object([
                        ("nft", .string(suggestion.nft)),
                        ("iptables", .array(suggestion.iptables.map(JSONValue.string))),
                    ])
                } ?? .null
            ),
            ("advice", .array(review.advice.map(JSONValue.string))),
        ])
    }

    /// Text appended after the plan table.
    ///
    /// `modules` is the module plan: unload order and blacklist file content.
    public static func text(_ review: StatelessReview, modules: StatelessModulePlan?) -> String {
        let verdict = review.rules.map { "firewall verdict \($0.verdict.words) (\($0.rulesExamined) rules read)" }
        var lines = [
            "",
            "stateless: " + (verdict ?? "firewall not checked"),
        ]
        if let note = review.bridgeNote { lines.append("note: \(note)") }
        if let rules = review.rules, !rules.findings.isEmpty {
            lines.append("rules that need connection tracking:")
            lines += RulesReport.findingLines(rules.findings)
        }
        if !review.natChains.isEmpty {
            lines.append("nat chains and tables (each fails to load once nf_nat and nf_conntrack are kept off):")
            lines += review.natChains.map { "  \($0.summary)    remove: \($0.removal.escapingControlCharacters)" }
        }
        if let modules {
            lines.append("")
            if let unavailable = modules.unavailable {
                lines.append("modules: \(unavailable)")
            } else {
                lines.append(
                    "modules: unload order " + (modules.unloadOrder.isEmpty ? "(none loaded)" : modules.unloadOrder.joined(separator: ", "))
                        + (modules.refusal.map { " — refused now: \($0)" } ?? ""))
                if let path = modules.blacklistPath, let contents = modules.blacklistContents {
                    lines.append("blacklist file \(path) (`cttune blacklist`):")
                    lines += contents.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
                }
                lines += ModuleReports.impactLines(modules.impact)
            }
        }
        if let notrack = review.notrack, !review.refused {
            lines.append("")
            lines.append("notrack rules (nft -f):")
            lines += notrack.nft.split(separator: "\n").map { "  " + $0 }
            lines.append("or with iptables:")
            lines += notrack.iptables.map { "  " + $0 }
        }
        lines.append("")
        lines += review.advice
        return lines.joined(separator: "\n")
    }
}
