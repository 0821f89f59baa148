import FoundationEssentials
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
                    + row.enumerated().map { $1.padded(toLength: widths[$0] + 2) }.joined()
                    .trimming(.whitespaces))
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
    public static func render(_ host: HostStatusReport, drift: PlanDrift? = nil) -> String {
        let top = host.members.prefix(HostStatusReport.labelledNamespaces)
        func perNamespace(_ family: MetricFamily, _ value: (StatusReport) -> Double) -> Family {
            Family(family, top.map { ([("netns", $0.identifier.description)], value($0.report)) })
        }
        let fullest = host.members.first?.report.readings
        var families = [
            Family(MetricCatalogue.status, Double(host.verdict.rawValue)),
            Family(MetricCatalogue.statusPartial, host.isPartial ? 1 : 0),
            perNamespace(MetricCatalogue.namespaceStatus) { Double($0.verdict.rawValue) },
            Family(
                MetricCatalogue.netnsInfo,
                top.map {
                    ([("netns", $0.identifier.description), ("kind", $0.report.readings.namespace.kind?.rawValue ?? "unknown")], 1)
                }),
            perNamespace(MetricCatalogue.entries) { Double($0.readings.current.count) },
            Family(MetricCatalogue.max, Double(fullest?.current.max ?? 0)),
            perNamespace(MetricCatalogue.fillRatio) { $0.readings.current.fillRatio },
            Family(MetricCatalogue.maxFillRatio, fullest?.current.fillRatio ?? 0),
            Family(MetricCatalogue.buckets, fullest?.current.buckets.map { [([], Double($0))] } ?? []),
        ]
        for counter in ConntrackSample.reportedCounters {
            families.append(perNamespace(MetricCatalogue.namespaceCounter(counter)) { Double($0.readings.current.counter(counter)) })
        }
        families += [
            Family(MetricCatalogue.namespaces, Double(host.members.count)),
            Family(MetricCatalogue.namespacesUnreadable, Double(host.failures.count)),
            Family(MetricCatalogue.allNamespacesEntries, Double(host.totalEntries)),
        ]
        for counter in ConntrackSample.packetLossCounters + ["early_drop"] {
            families.append(
                Family(
                    MetricCatalogue.allNamespacesCounter(counter),
                    Double(host.members.map { $0.report.readings.current.counter(counter) }.reduce(0, +))))
        }
        for member in top {
            families += censusFamilies(member.report.readings, netns: [("netns", member.identifier.description)])
        }
        if let slab = host.slab { families.append(Family(MetricCatalogue.slabBytes, Double(slab.bytes))) }
        families += driftFamilies(drift)
        families.append(
            Family(
                MetricCatalogue.statusTimestamp, (host.members.first?.report.readings.wallClock ?? Date()).timeIntervalSince1970.rounded()))
        return merged(families).filter { !$0.samples.isEmpty }.map(text).joined()
    }

    /// One family per name: the census families of several namespaces
    /// become one block each (a name may appear once in an exposition).
    static func merged(_ families: [Family]) -> [Family] {
        var result: [Family] = []
        for family in families {
            if let index = result.firstIndex(where: { $0.name == family.name }) {
                result[index].samples += family.samples
            } else {
                result.append(family)
            }
        }
        return result
    }
}
