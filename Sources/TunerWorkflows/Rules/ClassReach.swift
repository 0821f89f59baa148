import TunerCore
import TunerModel

/// Judges, for each declared class, whether a rule its packets can reach
/// needs connection state: the facts a `notrack` cure needs.
///
/// The judgement is conservative. Both sides of the class's flows count
/// (`TrafficSlice`: its requests, and the replies coming back), and a rule
/// is taken to reach them unless its table, its chain's hook or one of its
/// own matches rules them out (`RuleReach`). A rule needs state when it
/// uses conntrack at all (`cttune rules` lists it), and every rule of a
/// nat-type chain does: such a chain sees a flow's first packet only, and
/// an untracked packet never.
public enum ClassReach {
    /// The judgement of `classes` against an analysed ruleset.
    /// - Parameter source: what was read, for the reasons (`the live ruleset`).
    public static func judge(_ report: RulesetReport, classes: [ProfileClass], source: String) -> ClassRuleFacts {
        var facts = ClassRuleFacts(judged: Set(classes.map(\.name)), source: source)
        for declared in classes {
            let slices = TrafficSlice.slices(of: declared.match)
            guard let rule = rules(in: report, reaching: slices).first else { continue }
            let sides = slices.filter(rule.reach.reaches).map { $0.side == .request ? "requests" : "replies" }
            facts.needsState[declared.name] =
                "\(rule.location.summary) (\(rule.rule.escapingControlCharacters)) can see its \(sides.joined(separator: " and "))"
        }
        return facts
    }

    /// The rules of `report` that need state and can see a packet of
    /// `slices`, in the ruleset's order. cttune's own table is left out: an
    /// apply replaces it, and its `ct timeout set` rules only ever apply to
    /// tracked packets.
    public static func rules(in report: RulesetReport, reaching slices: [TrafficSlice]) -> [RulesetFinding] {
        // The per-chain nat findings stand for their rules, judged one by one.
        (report.findings.filter { $0.uses != [.natChain] } + report.natChainRules).filter { rule in
            !(rule.location.family == CureTable.family && rule.location.table == CureTable.name)
                && slices.contains(where: rule.reach.reaches)
        }
    }

    /// The judgement against a saved ruleset in any format `cttune rules --ruleset` reads.
    public static func judge(
        text: String, source: String, classes: [ProfileClass], analyzer: RulesetAnalyzer = RulesetAnalyzer()
    ) throws -> ClassRuleFacts {
        judge(try analyzer.analyze(text: text, source: source), classes: classes, source: source)
    }

    /// What `plan` and `apply` judge the profile's classes against: the
    /// saved `ruleset` when given (`--ruleset`), else this namespace's live
    /// ruleset; nothing for a profile without classes, and nothing under
    /// `--root` without `--ruleset` (the firewall running here is not the tree's).
    /// - Throws: `TunerError.invalidRuleset` when the saved ruleset cannot be read or parsed.
    public static func facts(
        for profile: LoadProfile, under root: SystemRoot, ruleset: String? = nil, analyzer: RulesetAnalyzer = RulesetAnalyzer()
    ) throws -> ClassRuleFacts {
        guard !profile.classes.isEmpty else { return .notJudged }
        if let ruleset {
            return judge(try analyzer.analyze(file: ruleset), classes: profile.classes, source: ruleset == "-" ? "standard input" : ruleset)
        }
        guard root.isLive else {
            return ClassRuleFacts(source: "--root \(root) is not the running system, whose firewall is not read; give it with --ruleset")
        }
        return judgeLive(classes: profile.classes, analyzer: analyzer)
    }

    /// The judgement against this network namespace's live ruleset; when it
    /// cannot be read, every class is left unjudged (notrack refused) with the reason.
    public static func judgeLive(classes: [ProfileClass], analyzer: RulesetAnalyzer = RulesetAnalyzer()) -> ClassRuleFacts {
        do {
            return judge(try analyzer.analyzeLive(), classes: classes, source: "the live ruleset")
        } catch {
            return ClassRuleFacts(source: "the live ruleset could not be read: \(error)")
        }
    }
}
