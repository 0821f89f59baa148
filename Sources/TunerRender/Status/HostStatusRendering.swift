import Foundation
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

extension HostStatusReport {
    /// The `status --all-namespaces` JSON object.
    public func json() -> [(String, JSONValue)] {
        [
            ("schema", .int(1)),
            ("command", .string("status")),
            ("scope", .string("namespaces")),
            ("verdict", .string(verdict.name)),
            ("exit_code", .int(Int(verdict.rawValue))),
            ("summary", .string(summary)),
            ("partial", .bool(isPartial)),
            ("partial_reasons", .array(partialReasons.map(JSONValue.string))),
            (
                "totals",
                .object([
                    ("namespaces", .int(members.count)),
                    ("unreadable_namespaces", .int(failures.count)),
                    ("entries", .int(totalEntries)),
                    ("max_per_namespace", members.first.map { .int($0.report.readings.current.max) } ?? .null),
                    (
                        "slab",
                        slab.map { slab in
                            .object([
                                ("scope", .string("host")), ("active_objects", .int(slab.activeObjects)),
                                ("object_bytes", .int(slab.objectBytes)), ("bytes", .int(slab.bytes)),
                            ])
                        } ?? .null
                    ),
                ])
            ),
            ("nearest_max", .array(members.prefix(Self.nearestShown).map { .string($0.identifier.description) })),
            (
                "namespaces",
                .array(
                    members.map { member in
                        let report = member.report
                        let fields: [(String, JSONValue)] = [
                            ("id", .string(member.identifier.description)),
                            ("memory_bytes", memoryBytes(member).map(JSONValue.int) ?? .null),
                        ]
                        // The single-namespace object, less what is host-wide or said above.
                        let skipped: Set<String> = ["schema", "command", "slab", "kernel_log"]
                        return .object(fields + report.json().filter { !skipped.contains($0.0) })
                    })
            ),
            (
                "unreadable",
                .array(
                    failures.map { .object([("id", .string($0.identifier.description)), ("reason", .string($0.reason))]) })
            ),
        ]
    }

    /// How many of the fullest namespaces the text and JSON name as nearest their max.
    static let nearestShown = 5

    /// The report for people: the verdict line, totals, then one row per
    /// namespace, fullest first.
    public func text() -> String {
        var lines = [summary]
        let max =
            members.first.map {
                " (nf_conntrack_max \($0.report.readings.current.max) applies to each one: every namespace can fill to it)"
            } ?? ""
        lines.append("namespaces: \(members.count) read, \(totalEntries) entries in total\(max)")
        if let slab {
            lines.append(
                """
                kernel memory (one slab shared by all namespaces): \(slab.activeObjects) entries x \(slab.objectBytes) B = \
                \(Formatting.size(slab.bytes))
                """
            )
        }
        if !members.isEmpty {
            lines.append(
                "nearest their max: "
                    + members.prefix(Self.nearestShown).map {
                        "\($0.identifier.shown) \(StatusReport.percent($0.report.readings.current.fillRatio))"
                    }.joined(separator: ", "))
        }
        let header = ["NAMESPACE", "ENTRIES", "FILL", "MEMORY", "DROP", "INSERT_FAILED", "EARLY_DROP", "VERDICT"]
        var rows = [header]
        for member in members {
            let sample = member.report.readings.current
            rows.append([
                member.identifier.shown, String(sample.count), StatusReport.percent(sample.fillRatio),
                memoryBytes(member).map(Formatting.size) ?? "-", String(sample.counter("drop")), String(sample.counter("insert_failed")),
                String(sample.counter("early_drop")), member.report.verdict.name + (member.report.partialReason == nil ? "" : " (partial)"),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append(
                "  "
                    + row.enumerated().map { $1.padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined()
                    .trimmingCharacters(in: .whitespaces))
        }
        for member in members where member.report.verdict != .ok {
            for finding in member.report.findings { lines.append("\(member.identifier.shown): \(finding.level.name): \(finding.message)") }
            if let fix = member.report.fix {
                lines.append("\(member.identifier.shown): fix: \(fix.commands.joined(separator: "; then ")) — \(fix.note)")
            }
        }
        for member in members {
            if let census = member.report.readings.census {
                let protocols = census.byProtocol.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                let states = census.tcpStates.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                lines.append(
                    "\(member.identifier.shown): entries (\(StatusReport.censusSource(census))): \(census.total)"
                        + (protocols.isEmpty ? "" : " — \(protocols)") + (states.isEmpty ? "" : "; TCP \(states)"))
            }
        }
        if isPartial { lines += partialReasons.map { "partial: \($0)" } }
        return lines.joined(separator: "\n")
    }
}

extension PrometheusTextfile {
    /// The namespaces as metrics: the `labelledNamespaces` fullest one by
    /// one (label `netns`: the namespace identifier), and totals over all of
    /// them, so the number of series stays bounded however many namespaces run.
    public static func render(_ host: HostStatusReport) -> String {
        let top = host.members.prefix(HostStatusReport.labelledNamespaces)
        func perNamespace(_ name: String, _ type: String, _ help: String, _ value: (StatusReport) -> Double) -> Family {
            Family(name: name, type: type, help: help, samples: top.map { ([("netns", $0.identifier.description)], value($0.report)) })
        }
        func total(_ name: String, _ type: String, _ help: String, _ value: Double) -> Family {
            Family(name: name, type: type, help: help, samples: [([], value)])
        }
        var families = [
            total(
                "cttune_status", "gauge", "Worst verdict of cttune status over all namespaces: 0 ok, 1 warning, 2 critical, 3 unknown.",
                Double(host.verdict.rawValue)),
            total(
                "cttune_status_partial", "gauge",
                "1 when a namespace could not be read or a census failed; the verdict stands on what was read.", host.isPartial ? 1 : 0),
            total("cttune_conntrack_namespaces", "gauge", "Network namespaces read.", Double(host.members.count)),
            total(
                "cttune_conntrack_namespaces_unreadable", "gauge",
                "Network namespaces that vanished or could not be entered during the scan.", Double(host.failures.count)),
            total(
                "cttune_conntrack_all_namespaces_entries", "gauge", "Live conntrack entries summed over all namespaces.",
                Double(host.totalEntries)),
            total(
                "cttune_conntrack_max", "gauge", "Global table limit each namespace's count is checked against (nf_conntrack_max).",
                Double(host.members.first?.report.readings.current.max ?? 0)),
            total(
                "cttune_conntrack_max_fill_ratio", "gauge", "The fullest namespace's entries divided by max.",
                host.members.first?.report.readings.current.fillRatio ?? 0),
        ]
        for counter in ConntrackSample.packetLossCounters + ["early_drop"] {
            families.append(
                total(
                    "cttune_conntrack_all_namespaces_\(counter)_total", "counter",
                    "Per-CPU \(counter) statistic summed over all namespaces read (falls when a namespace goes away).",
                    Double(host.members.map { $0.report.readings.current.counter(counter) }.reduce(0, +))))
        }
        families += [
            perNamespace(
                "cttune_namespace_status", "gauge", "Verdict per namespace, for the fullest \(HostStatusReport.labelledNamespaces)."
            ) {
                Double($0.verdict.rawValue)
            },
            perNamespace("cttune_conntrack_entries", "gauge", "Live conntrack entries (nf_conntrack_count) of the fullest namespaces.") {
                Double($0.readings.current.count)
            },
            perNamespace("cttune_conntrack_fill_ratio", "gauge", "Entries divided by max; warning from 0.75, critical from 0.9.") {
                $0.readings.current.fillRatio
            },
        ]
        for counter in ConntrackSample.reportedCounters {
            families.append(
                perNamespace(
                    "cttune_conntrack_\(counter)_total", "counter",
                    "Per-CPU \(counter) statistic of the namespace, summed, since it was created."
                ) { Double($0.readings.current.counter(counter)) })
        }
        if let slab = host.slab {
            families.append(
                total(
                    "cttune_conntrack_slab_bytes", "gauge",
                    "Slab memory of all conntrack entries on the host (active objects x object size).",
                    Double(slab.bytes)))
        }
        families.append(
            total(
                "cttune_status_timestamp_seconds", "gauge", "When cttune status wrote these metrics (Unix time).",
                (host.members.first?.report.readings.wallClock ?? Date()).timeIntervalSince1970.rounded()))
        return families.filter { !$0.samples.isEmpty }.map(text).joined()
    }
}
