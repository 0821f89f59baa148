import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// Renders a `TuningPlan` as the contract's JSON or as a table for people.
public enum PlanReport {
    /// The `facts` object shared by plan, apply and status.
    public static func json(_ facts: HostFacts) -> JSONValue {
        .object([
            ("memory_bytes", .int(facts.memoryBytes)),
            ("cpus", .int(facts.cpus)),
            ("kernel", facts.kernelRelease.json),
            ("conntrack", .string(facts.conntrack.rawValue)),
            ("architecture", facts.architecture.json),
            ("entry_bytes", .int(facts.entryBytes)),
            ("entry_bytes_source", .string(facts.entryBytesSource.rawValue)),
            ("entry_bytes_detail", .string(facts.entryBytesDetail)),
            ("live_slab_entry_bytes", facts.liveSlabEntryBytes.json),
            ("count", facts.count.json),
            ("netns", facts.netns.map { JSONValue.string($0.rawValue) } ?? .null),
            ("page_size_bytes", .int(facts.pageSizeBytes)),
        ])
    }

    public static func json(_ setting: TuningPlan.Setting) -> [(String, JSONValue)] {
        [
            ("key", .string(setting.key)),
            ("current", setting.current.json),
            ("planned", .int(setting.planned)),
            ("applicable", .bool(setting.applicable)),
            ("reason", .string(setting.reason)),
            ("not_applicable_reason", setting.blocker.json),
        ]
    }

    /// The contract's plan object; `command` and `settingExtras` (members
    /// appended to each setting, such as apply's `result`) let apply reuse it.
    public static func json(
        _ plan: TuningPlan, command: String = "plan", explain: Bool = false,
        settingExtras: (TuningPlan.Setting) -> [(String, JSONValue)] = { _ in [] }
    ) -> [(String, JSONValue)] {
        let gc = plan.estimate.gc
        var estimate: [(String, JSONValue)] = [
            ("peak_entries", .int(plan.estimate.peakEntries)),
            ("memory_bytes", .int(plan.estimate.memoryBytes)),
            ("budget_bytes", .int(plan.estimate.budgetBytes)),
            ("mean_entries", .int(Planner.saturatingInt(plan.estimate.meanEntries.rounded()))),
            ("steady_peak_entries", .int(plan.estimate.steadyPeakEntries)),
            ("worst_peak_entries", .int(plan.estimate.peakEntries)),
            ("namespaces", .int(plan.estimate.namespaces)),
            ("expected_memory_bytes", .int(plan.estimate.expectedMemoryBytes)),
            ("gc_latency_seconds", .double(plan.estimate.gcLatencySeconds)),
            (
                "classes",
                .array(
                    plan.estimate.classes.map { row in
                        .object([
                            ("name", .string(row.name)),
                            ("match", row.match.map(JSONValue.string) ?? .null),
                            ("cure", .string(row.cure.rawValue)),
                            ("flows_per_second", .double(row.flowsPerSecond)),
                            ("steady_peak_entries", .int(row.steadyPeakEntries)),
                            ("peak_entries", .int(row.peakEntries)),
                            ("share", .double(row.share)),
                        ])
                    })
            ),
            (
                "gc",
                .object([
                    ("model", .string(gc.model)),
                    ("source", .string(gc.source)),
                    ("steady_gap_seconds", .double(gc.steadyGapSeconds)),
                    ("worst_gap_seconds", .double(gc.worstGapSeconds)),
                    ("expiries_per_second", .double(gc.expiriesPerSecond)),
                    ("reap_ceiling_per_second", gc.reapCeilingPerSecond.map(JSONValue.double) ?? .null),
                    ("reap_backlog_entries", .int(Planner.saturatingInt(gc.reapBacklogEntries.rounded(.up)))),
                ])
            ),
        ]
        if explain {
            estimate.append(
                (
                    "flow_classes",
                    .array(
                        plan.estimate.flowClasses.map { flow in
                            .object([
                                ("name", .string(flow.name)),
                                ("class", flow.profileClass.map(JSONValue.string) ?? .null),
                                ("flows_per_second", .double(flow.flowsPerSecond)),
                                ("burst_factor", .double(flow.burstFactor)),
                                ("dwell_seconds", .double(flow.dwellSeconds)),
                                ("dwell", .string(flow.dwellFormula)),
                                ("mean_entries", .int(Planner.saturatingInt(flow.meanEntries.rounded()))),
                                ("steady_peak_entries", .int(Planner.saturatingInt(flow.steadyPeakEntries.rounded(.up)))),
                                ("worst_peak_entries", .int(Planner.saturatingInt(flow.worstPeakEntries.rounded(.up)))),
                            ])
                        })
                ))
            estimate.append(
                (
                    "anchors",
                    .array(
                        plan.anchors.map { anchor in
                            .object([
                                ("name", .string(anchor.name)),
                                ("max", .int(anchor.max)),
                                ("buckets", .int(anchor.buckets)),
                                (
                                    "memory_bytes",
                                    .int(Planner.memoryBytes(max: anchor.max, buckets: anchor.buckets, entryBytes: plan.facts.entryBytes))
                                ),
                                ("tcp_timeout_established", anchor.establishedTimeoutSeconds.json),
                                ("source", .string(anchor.source)),
                            ])
                        })
                ))
        }
        return [
            ("command", .string(command)),
            ("profile", .string(plan.profile.name)),
            ("facts", json(plan.facts)),
            (
                "settings",
                .array(
                    plan.settings.map { setting in
                        .object(
                            json(setting) + settingExtras(setting)
                                + (explain ? [("arithmetic", .array(setting.arithmetic.map(JSONValue.string)))] : []))
                    })
            ),
            ("estimate", .object(estimate)),
            ("cures", .array(plan.cures.map(json))),
            ("fits_budget", .bool(plan.fitsBudget)),
            ("changed", .bool(plan.changed)),
            ("advice", .array(plan.advice.map(JSONValue.string))),
        ]
    }

    /// One class's cures: the one applied, its policy, and every option judged.
    static func json(_ decision: CureDecision) -> JSONValue {
        .object([
            ("class", .string(decision.className)),
            ("applied", .string(decision.applied.rawValue)),
            ("reason", .string(decision.reason)),
            (
                "policy",
                decision.policy.map { policy in
                    .object(
                        [("protocol", .string(policy.protocolName))]
                            + policy.ordered.map { (CurePolicy.nftState($0.setting)!, .int($0.seconds)) })
                } ?? .null
            ),
            (
                "options",
                .array(
                    decision.options.map { option in
                        .object([
                            ("cure", .string(option.cure.rawValue)), ("safe", .bool(option.safe)),
                            ("saves_entries", .int(option.savesEntries)), ("reason", .string(option.reason)),
                        ])
                    })
            ),
        ])
    }

    /// ` (unreplied 10 s, replied 60 s)`, or nothing without a policy.
    static func policyText(_ policy: CurePolicy?) -> String {
        guard let policy else { return "" }
        return " (" + policy.ordered.map { "\(CurePolicy.nftState($0.setting)!) \($0.seconds) s" }.joined(separator: ", ") + ")"
    }

    /// Each class's cure in one line, then the options not applied.
    static func cureLines(_ plan: TuningPlan) -> [String] {
        guard !plan.cures.isEmpty else { return [] }
        var lines = ["cures:"]
        for decision in plan.cures {
            let applied = decision.options.first { $0.cure == decision.applied }
            lines.append(
                "  \(Echo.escaped(decision.className)): "
                    + (applied.map { "\($0.cure.rawValue)\(policyText(decision.policy)), saves \($0.savesEntries) entries" } ?? "none")
                    + " — \(decision.reason)")
            for option in decision.options where option.cure != decision.applied {
                lines.append(
                    "    \(option.cure.rawValue): "
                        + (option.safe
                            ? "possible, would save \(option.savesEntries) entries — \(option.reason)" : "refused — \(option.reason)"))
            }
        }
        return lines
    }

    /// A table of key, current, planned and reason, then the estimate.
    public static func text(_ plan: TuningPlan, explain: Bool = false) -> String {
        var lines = header(plan)
        let facts = plan.facts
        lines.append("")
        let rows = plan.settings.map { setting -> [String] in
            let mark = setting.changes ? (setting.applicable ? "*" : "!") : " "
            let reason = setting.applicable ? setting.reason : "\(setting.reason); not applicable here: \(setting.blocker!)"
            return [mark, setting.key, setting.current.map(String.init) ?? "-", String(setting.planned), reason]
        }
        lines += Table.render(header: [" ", "KEY", "CURRENT", "PLANNED", "REASON"], rows: rows)
        lines.append("")
        let estimate = plan.estimate, gc = plan.estimate.gc
        lines.append(
            "estimate: peak \(estimate.peakEntries) entries at the worst GC phase (\(estimate.steadyPeakEntries) in steady state); "
                + (estimate.namespaces > 1 ? "\(estimate.namespaces) namespaces at max need " : "table at max needs ")
                    + """
                    \(Formatting.size(estimate.memoryBytes)) of a \(Formatting.size(estimate.budgetBytes)) budget — \
                    \(plan.fitsBudget ? "fits" : "DOES NOT FIT")
                    """
        )
        if !estimate.classes.isEmpty {
            lines.append("by class (worst-phase peak, share):")
            lines += Table.render(
                header: ["  CLASS", "MATCH", "FLOWS/S", "PEAK", "SHARE", "CURE"],
                rows: estimate.classes.map { row in
                    [
                        "  " + Echo.escaped(row.name), row.match ?? "what no class matches", Formatting.number(row.flowsPerSecond),
                        String(row.peakEntries), Formatting.percent(row.share), row.cure.rawValue,
                    ]
                })
            lines += cureLines(plan)
        }
        if explain {
            lines.append("")
            lines.append("model: entries = new flows/s x burst x (lifetime + the wait for the GC pass that reaps them) (Little's law)")
            lines.append("  GC: \(gc.source)")
            if gc.model == GCModel.Generation.autotuned.rawValue {
                lines.append(
                    """
                      steady gap = clamp((100 x 60 s + sum of clamped remaining lifetimes) / (100 + \
                    \(Planner.saturatingInt(gc.liveEntriesAtPeak.rounded())) live entries), 1 s, 60 s) = \
                    \(Formatting.number(gc.steadyGapSeconds)) s
                    """
                )
            } else {
                lines.append("  steady gap = \(Formatting.number(gc.steadyGapSeconds)) s")
            }
            lines.append(
                """
                  worst gap = \(Formatting.number(gc.worstGapSeconds)) s (a burst that starts right after a pass on a quiet \
                host, timer slack included)
                """
            )
            if let ceiling = gc.reapCeilingPerSecond {
                lines.append(
                    """
                      reap rate: \(Formatting.number(gc.expiriesPerSecond)) expiries/s against a ceiling of \
                    \(Formatting.number(ceiling))/s
                    """
                        + (gc.reapBacklogEntries > 0
                            ? ": backlog \(Planner.saturatingInt(gc.reapBacklogEntries.rounded(.up))) entries" : "")
                )
            }
            for flow in estimate.flowClasses {
                lines.append(
                    """
                      \(flow.name): \(Formatting.number(flow.flowsPerSecond))/s x burst \
                    \(Formatting.number(flow.burstFactor)) x (\(flow.dwellFormula)): steady \
                    \(Planner.saturatingInt(flow.steadyPeakEntries.rounded(.up))) (+ \
                    \(Formatting.number(gc.steadyGapSeconds)) s gap), worst \
                    \(Planner.saturatingInt(flow.worstPeakEntries.rounded(.up))) (at least \
                    \(Formatting.number(gc.worstGapSeconds)) s)
                    """
                )
            }
            for setting in plan.settings where !setting.arithmetic.isEmpty {
                lines.append("  \(setting.setting.shortName): " + setting.arithmetic.joined(separator: "; "))
            }
            lines.append(
                """
                  memory = \(estimate.namespaces > 1 ? "\(estimate.namespaces) namespaces x " : "")max x \(facts.entryBytes) \
                B (\(facts.entryBytesDetail)) + buckets x \(Planner.hashPointerBytes) B = \(estimate.memoryBytes) B; at the \
                worst-phase peak \(estimate.expectedMemoryBytes) B; budget = RAM x \
                \(Formatting.number(plan.profile.memoryBudgetPercent)) % = \(estimate.budgetBytes) B
                """
            )
            lines.append("load-blind anchors for this host:")
            for anchor in plan.anchors {
                let memory = Planner.memoryBytes(max: anchor.max, buckets: anchor.buckets, entryBytes: facts.entryBytes)
                lines.append(
                    "  \(anchor.name): max \(anchor.max), buckets \(anchor.buckets), \(Formatting.size(memory)) at max (\(anchor.source))")
            }
        }
        if !plan.advice.isEmpty {
            lines.append("")
            lines += plan.advice
        }
        let marks = plan.settings.filter(\.changes)
        if !marks.isEmpty {
            lines.append("")
            lines.append(
                "* = would change" + (marks.contains { !$0.applicable } ? ", ! = would change but cannot be applied from here" : ""))
        }
        return lines.joined(separator: "\n")
    }

    /// The profile and host lines that open every text report.
    public static func header(_ plan: TuningPlan) -> [String] {
        let facts = plan.facts
        return [
            "profile \(plan.profile.name): \(plan.profile.summary)".trimming(.whitespaces),
            """
            host: \(Formatting.size(facts.memoryBytes)) RAM, \(facts.cpus) CPUs, kernel \(facts.kernelRelease ?? "unknown"), \
            conntrack \(facts.conntrack.rawValue), \(facts.entryBytes) B/entry \
            (\(facts.entryBytesSource.rawValue)\(facts.liveSlabEntryBytes.map { ", live slab \($0) B" } ?? "")), \
            \(facts.count.map(String.init) ?? "unknown") entries now, netns \(facts.netns?.rawValue ?? "unknown")
            """,
        ]
    }

}
