import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

extension StatusReport {
    /// The `status` JSON object (one per sample with `--watch`).
    public func json() -> [(String, JSONValue)] {
        let readings = self.readings
        let sample = readings.current
        return [
            ("command", .string("status")),
            ("verdict", .string(verdict.name)),
            ("exit_code", .int(Int(verdict.rawValue))),
            ("summary", .string(summary)),
            ("partial", .bool(readings.isPartial)),
            (
                "netns",
                .object([
                    ("kind", (readings.namespace.kind?.rawValue).json),
                    ("inode", readings.namespace.inode.map { JSONValue.int(Int($0)) } ?? .null),
                ])
            ),
            (
                "table",
                .object([
                    ("count", .int(sample.count)),
                    ("max", .int(sample.max)),
                    ("fill_percent", .double(Self.rounded(sample.fillRatio * 100))),
                    ("buckets", sample.buckets.json),
                    (
                        "average_chain_length",
                        sample.buckets.map { .double(Self.rounded(Double(sample.count) / Double(Swift.max($0, 1)))) } ?? .null
                    ),
                ])
            ),
            // null when the kernel has no /proc/net/stat/nf_conntrack.
            (
                "counters",
                sample.counters.isEmpty ? .null : .object(ConntrackSample.reportedCounters.map { ($0, .int(sample.counter($0))) })
            ),
            (
                "window",
                .object([
                    ("seconds", .double(Self.rounded(readings.windowSeconds))),
                    ("entries_per_second", readings.entriesPerSecond.map { .double(Self.rounded($0)) } ?? .null),
                    ("drops_per_second", readings.rate("drop").map { .double(Self.rounded($0)) } ?? .null),
                    ("insert_failed_per_second", readings.rate("insert_failed").map { .double(Self.rounded($0)) } ?? .null),
                    ("rises", .object(ConntrackSample.reportedCounters.map { ($0, .int(readings.rise($0))) })),
                ])
            ),
            ("timeouts", .object(ConntrackSetting.timeouts.map { ($0.shortName, readings.timeouts[$0].json) })),
            (
                "slab",
                readings.slab.map { slab in
                    .object([
                        ("scope", .string("host")), ("active_objects", .int(slab.activeObjects)),
                        ("object_bytes", .int(slab.objectBytes)), ("bytes", .int(slab.bytes)),
                    ])
                } ?? .null
            ),
            (
                "census",
                .object([
                    ("ran", .bool(readings.census != nil || readings.censusProblem != nil)),
                    ("reason", readings.censusReason.json),
                ])
            ),
            ("entries", readings.census.map(Self.json) ?? .null),
            ("entries_unreadable_reason", readings.censusProblem.json),
            (
                "cures",
                readings.cures.map { cures in
                    .array(
                        cures.map { cure in
                            .object([
                                ("class", .string(cure.className)), ("protocol", .string(cure.protocolName)),
                                ("cure", .string(cure.cure.rawValue)),
                                ("policy", .object(cure.policy.map { ($0.state, .int($0.seconds)) })),
                                ("conflicts", .array(cure.conflicts.map(JSONValue.string))),
                            ])
                        })
                } ?? .null
            ),
            ("cures_unreadable_reason", readings.curesProblem.json),
            ("kernel_log", json(readings.kernelLog)),
            ("findings", .array(findings.map { .object([("level", .string($0.level.name)), ("message", .string($0.message))]) })),
            (
                "fix",
                fix.map { fix in
                    .object([
                        ("profile", .string(fix.profile)), ("commands", .array(fix.commands.map(JSONValue.string))),
                        ("minimum_max", .int(fix.minimumMax)), ("note", .string(fix.note)),
                    ])
                } ?? .null
            ),
        ]
    }

    static func json(_ census: EntryCensus) -> JSONValue {
        .object([
            ("source", .string(census.source)),
            ("total", .int(census.total)),
            ("by_protocol", .object(census.byProtocol.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("tcp_states", .object(census.tcpStates.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("assured", .int(census.assured)),
            ("unreplied", .int(census.unreplied)),
            (
                "sample",
                census.sample.map { sample in
                    .object([
                        ("entries_read", .int(sample.entriesRead)), ("table_entries", .int(sample.tableEntries)),
                        ("scale", .double(Self.rounded(sample.scale))),
                    ])
                } ?? .null
            ),
            ("inconsistent", .bool(census.inconsistent)),
            ("by_class", .array(census.topClasses(census.topShown).map(Self.json))),
            (
                "orphans",
                .object([
                    ("idle_threshold_seconds", .int(EntryCensus.orphanIdleSeconds)),
                    ("count", .int(census.orphans)),
                    ("oldest_idle_seconds", census.oldestIdleSeconds.json),
                ])
            ),
        ])
    }

    /// One row of the classes list: `{"class", "entries", "share", "states"}`.
    static func json(_ row: EntryCensus.ClassRow) -> JSONValue {
        .object([
            ("class", .string(row.label)), ("entries", .int(row.count.entries)), ("share", .double(Self.rounded(row.share))),
            ("states", .object(row.count.states.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
        ])
    }

    func json(_ log: KernelLogEvidence) -> JSONValue {
        .object([
            ("readable", .bool(log.readable)),
            ("unreadable_reason", log.unreadableReason.json),
            ("table_full_lines", .int(log.lines.count)),
            ("other_namespace_lines", .int(log.otherNamespaceLines)),
            (
                "recent",
                .array(
                    log.lines.suffix(Self.recentLogLines).map { line in
                        .object([
                            ("seconds_since_boot", .double(Self.rounded(line.secondsSinceBoot))),
                            ("time", .string(Self.isoTime(readings.wallClock(ofSecondsSinceBoot: line.secondsSinceBoot)))),
                            ("message", .string(line.message)),
                        ])
                    })
            ),
        ])
    }

    /// Where the census came from, with its sampling stated.
    static func censusSource(_ census: EntryCensus) -> String {
        guard let sample = census.sample else { return census.source }
        return census.source
            + String(
                cFormat: ", sampled: first %ld of %ld entries in hash order, counts scaled x%.1f", sample.entriesRead,
                sample.tableEntries, sample.scale)
    }

    /// How many of the newest "table full" lines are shown.
    static let recentLogLines = 5

    static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

    /// The diagnosis for people: the verdict line first, as monitoring plugins print it.
    public func text() -> String {
        let readings = self.readings
        let sample = readings.current
        var lines = [summary, "netns: \(readings.namespace.label)"]
        let chain =
            sample.buckets.map {
                String(cFormat: ", %ld buckets, %.2f entries per bucket", $0, Double(sample.count) / Double(Swift.max($0, 1)))
            } ?? ""
        lines.append("table: \(sample.count) of \(sample.max) entries (\(Self.percent(sample.fillRatio)))\(chain)")
        if readings.windowSeconds > 0 {
            lines.append(
                String(
                    cFormat: "last %.1f s: %+.1f entries/s, %.1f drops/s, %.1f insert failures/s",
                    readings.windowSeconds, readings.entriesPerSecond ?? 0, readings.rate("drop") ?? 0, readings.rate("insert_failed") ?? 0)
            )
        }
        lines.append(
            "counters since the namespace was created: "
                + ConntrackSample.reportedCounters.map { "\($0) \(sample.counter($0))" }.joined(separator: ", "))
        if let census = readings.census {
            let protocols = census.byProtocol.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let states = census.tcpStates.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("entries (\(Self.censusSource(census))): \(census.total)\(protocols.isEmpty ? "" : " — \(protocols)")")
            lines.append("status bits: \(census.assured) assured, \(census.unreplied) unreplied")
            let rows = census.topClasses(census.topShown)
            if !rows.isEmpty {
                lines.append("entries by class (the \(census.topShown) largest, then the rest):")
                lines += Table.render(
                    header: ["  CLASS", "ENTRIES", "SHARE", "STATES"],
                    rows: rows.map { row in
                        [
                            "  " + row.label, String(row.count.entries), Self.percent(row.share),
                            row.count.states.sorted { $0.value > $1.value }.prefix(4).map { "\($0.key) \($0.value)" }.joined(
                                separator: ", "),
                        ]
                    })
            }
            if !states.isEmpty { lines.append("TCP states: \(states)") }
            lines.append(
                "orphans: \(census.orphans) ESTABLISHED entries idle over \(EntryCensus.orphanIdleSeconds / 3600) h"
                    + (census.oldestIdleSeconds.map { " (longest idle \(Self.duration(Double($0))))" } ?? ""))
        } else if let problem = readings.censusProblem {
            lines.append("entries: not listed (\(problem))")
        } else {
            lines.append("entries: not counted (\(readings.censusReason ?? "census not requested"))")
        }
        if let cures = readings.cures, !cures.isEmpty {
            lines.append(
                "cures in force (table \(CureTable.qualifiedName)): "
                    + cures.map { cure in
                        "\(Echo.escaped(cure.className)): \(cure.protocolName) "
                            + (cure.cure == .notrack
                                ? "notrack" + (cure.conflicts.isEmpty ? "" : " (\(cure.conflicts.count) conflicting)")
                                : cure.policy.map { "\($0.state) \($0.seconds) s" }.joined(separator: ", "))
                    }.joined(separator: "; "))
        } else if let problem = readings.curesProblem {
            lines.append("cures: not read (\(problem))")
        }
        lines.append(
            "timeouts: "
                + ConntrackSetting.timeouts.compactMap { setting in
                    readings.timeouts[setting].map { "\(setting.shortName.replacing("nf_conntrack_", with: "")) \($0) s" }
                }.joined(separator: ", "))
        if let slab = readings.slab {
            lines.append("slab (host-wide): \(slab.activeObjects) entries x \(slab.objectBytes) B = \(Formatting.size(slab.bytes))")
        }
        let log = readings.kernelLog
        if log.readable {
            lines.append("kernel log: \(log.lines.count) \"table full\" lines for this namespace, \(log.otherNamespaceLines) for others")
            for line in log.lines.suffix(Self.recentLogLines) {
                lines.append("  \(Self.isoTime(readings.wallClock(ofSecondsSinceBoot: line.secondsSinceBoot)))  \(line.message)")
            }
        } else {
            lines.append("kernel log: not read (\(log.unreadableReason ?? ""))")
        }
        if findings.count > 1 || (findings.first.map { $0.level != verdict } ?? false) {
            lines.append("findings:")
            lines += findings.map { "  \($0.level.name): \($0.message)" }
        }
        if let partialReason {
            lines.append("partial: \(partialReason); the verdict stands on the counters")
        }
        if let fix {
            lines.append("fix: \(fix.commands.joined(separator: "; then ")) — \(fix.note)")
        }
        return lines.joined(separator: "\n")
    }

    /// The `--watch` header and one row per sample.
    public static let watchHeader = ["TIME", "COUNT", "FILL", "ENTRIES/S", "DROPS/S", "INSERT_FAILED/S", "VERDICT"]

    public func watchRow() -> [String] {
        let readings = self.readings
        return [
            Self.isoTime(readings.wallClock), String(readings.current.count), Self.percent(readings.current.fillRatio),
            String(cFormat: "%+.1f", readings.entriesPerSecond ?? 0), String(cFormat: "%.1f", readings.rate("drop") ?? 0),
            String(cFormat: "%.1f", readings.rate("insert_failed") ?? 0), verdict.name,
        ]
    }
}

extension StatusReport {
    /// Pads `--watch` fields to fixed columns, so rows line up as they stream.
    public static func watchLine(_ fields: [String]) -> String {
        let widths = [21, 8, 9, 10, 8, 16]
        return fields.enumerated().map { index, field in
            index < widths.count ? field.padded(toLength: Swift.max(widths[index], field.count + 1)) : field
        }.joined()
    }
}
