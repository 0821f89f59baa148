import Foundation

/// Renders a `TuningPlan` as the contract's JSON or as a table for people.
public enum PlanReport {
    /// The `facts` object shared by plan, apply and status.
    public static func json(_ facts: HostFacts) -> JSONValue {
        .object([
            ("memory_bytes", .int(facts.memoryBytes)),
            ("cpus", .int(facts.cpus)),
            ("kernel", facts.kernelRelease.json),
            ("conntrack", .string(facts.conntrack.rawValue)),
            ("entry_bytes", .int(facts.entryBytes)),
            ("entry_bytes_source", .string(facts.entryBytesSource.rawValue)),
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
        var estimate: [(String, JSONValue)] = [
            ("peak_entries", .int(plan.estimate.peakEntries)),
            ("memory_bytes", .int(plan.estimate.memoryBytes)),
            ("budget_bytes", .int(plan.estimate.budgetBytes)),
            ("mean_entries", .int(Int(plan.estimate.meanEntries.rounded()))),
            ("gc_latency_seconds", .double(plan.estimate.gcLatencySeconds)),
        ]
        if explain {
            estimate.append(
                (
                    "flow_classes",
                    .array(
                        plan.estimate.flowClasses.map { flow in
                            .object([
                                ("name", .string(flow.name)),
                                ("flows_per_second", .double(flow.flowsPerSecond)),
                                ("dwell_seconds", .double(flow.dwellSeconds)),
                                ("dwell", .string(flow.dwellFormula)),
                                ("mean_entries", .int(Int(flow.meanEntries.rounded()))),
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
            ("fits_budget", .bool(plan.fitsBudget)),
            ("changed", .bool(plan.changed)),
            ("advice", .array(plan.advice.map(JSONValue.string))),
        ]
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
        lines.append(
            "estimate: peak \(plan.estimate.peakEntries) entries (mean \(Int(plan.estimate.meanEntries.rounded())) x burst \(format(plan.profile.burstFactor))); table at max needs \(mib(plan.estimate.memoryBytes)) of a \(mib(plan.estimate.budgetBytes)) budget — \(plan.fitsBudget ? "fits" : "DOES NOT FIT")"
        )
        if explain {
            lines.append("")
            lines.append(
                "model: entries = new flows/s x dwell (Little's law); GC latency \(format(plan.estimate.gcLatencySeconds)) s (\(plan.estimate.gcLatencySource))"
            )
            for flow in plan.estimate.flowClasses {
                lines.append(
                    "  \(flow.name): \(format(flow.flowsPerSecond))/s x (\(flow.dwellFormula)) = \(Int(flow.meanEntries.rounded())) entries"
                )
            }
            for setting in plan.settings where !setting.arithmetic.isEmpty {
                lines.append("  \(setting.setting.shortName): " + setting.arithmetic.joined(separator: "; "))
            }
            lines.append(
                "  memory = max x \(facts.entryBytes) B + buckets x \(Planner.hashPointerBytes) B = \(plan.estimate.memoryBytes) B; budget = RAM x \(format(plan.profile.memoryBudgetPercent)) % = \(plan.estimate.budgetBytes) B"
            )
            lines.append("load-blind anchors for this host:")
            for anchor in plan.anchors {
                let memory = Planner.memoryBytes(max: anchor.max, buckets: anchor.buckets, entryBytes: facts.entryBytes)
                lines.append("  \(anchor.name): max \(anchor.max), buckets \(anchor.buckets), \(mib(memory)) at max (\(anchor.source))")
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
            "profile \(plan.profile.name): \(plan.profile.summary)".trimmingCharacters(in: .whitespaces),
            "host: \(mib(facts.memoryBytes)) RAM, \(facts.cpus) CPUs, kernel \(facts.kernelRelease ?? "unknown"), conntrack \(facts.conntrack.rawValue), \(facts.entryBytes) B/entry (\(facts.entryBytesSource.rawValue)), \(facts.count.map(String.init) ?? "unknown") entries now, netns \(facts.netns?.rawValue ?? "unknown")",
        ]
    }

    static func mib(_ bytes: Int) -> String {
        bytes >= 1 << 30
            ? String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value)
    }
}

/// Left-aligned columns separated by two spaces.
public enum Table {
    public static func render(header: [String], rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                column == row.count - 1 ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
