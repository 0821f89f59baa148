/// Renders the stateless part of a plan (`cttune plan --profile stateless`).
public enum StatelessReport {
    /// The `stateless` member of the plan JSON.
    ///
    /// `modules` is the module plan (unload order, blacklist file content);
    /// `null` until the module workflow fills it in.
    public static func json(_ review: StatelessReview, modules: JSONValue = .null) -> JSONValue {
        .object([
            ("verdict", review.rules.map { .string($0.verdict.rawValue) } ?? .null),
            ("refused", .bool(review.refused)),
            ("rules", review.rules.map { .object(RulesReport.json($0)) } ?? .null),
            ("rules_not_read", review.rulesNotRead.json),
            ("conntrack", .string(review.conntrack.rawValue)),
            ("modules", modules),
            ("notrack", review.notrack.map { suggestion in
                .object([
                    ("nft", .string(suggestion.nft)),
                    ("iptables", .array(suggestion.iptables.map(JSONValue.string))),
                ])
            } ?? .null),
            ("advice", .array(review.advice.map(JSONValue.string))),
        ])
    }

    /// Text appended after the plan table.
    ///
    /// `modules` holds the module plan's lines (unload order, blacklist
    /// file); empty until the module workflow fills it in.
    public static func text(_ review: StatelessReview, modules: [String] = []) -> String {
        var lines = ["", "stateless: " + (review.rules.map { "firewall verdict \($0.verdict.rawValue) (\($0.rulesExamined) rules read)" } ?? "firewall not checked")]
        if let rules = review.rules, !rules.findings.isEmpty {
            lines.append("rules that need connection tracking:")
            lines += RulesReport.findingLines(rules.findings)
        }
        lines += modules
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
