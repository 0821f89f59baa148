import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// The status as Prometheus text-exposition metrics (format 0.0.4), for
/// node_exporter's textfile collector. Every family comes from
/// `MetricCatalogue`: names prefixed `cttune_`, a HELP and a TYPE line each,
/// labels for the namespace and what the catalogue names.
public enum PrometheusTextfile {
    struct Family {
        var family: MetricFamily
        var samples: [(labels: [(String, String)], value: Double)]

        var name: String { family.name }

        init(_ family: MetricFamily, _ samples: [(labels: [(String, String)], value: Double)]) {
            self.family = family
            self.samples = samples
            assert(samples.allSatisfy { $0.labels.map(\.0) == family.labels }, "\(family.name): labels other than the catalogue's")
        }

        /// One sample without labels.
        init(_ family: MetricFamily, _ value: Double) { self.init(family, [([], value)]) }
    }

    /// One namespace's metrics (`cttune status --textfile`): the label
    /// `netns` is the namespace inode (its kind where the inode is unknown).
    public static func render(_ report: StatusReport, drift: PlanDrift? = nil) -> String {
        let readings = report.readings
        let sample = readings.current
        let netns = [("netns", readings.namespace.inode.map(String.init) ?? readings.namespace.kind?.rawValue ?? "unknown")]
        func perNamespace(_ family: MetricFamily, _ value: Double?) -> Family { Family(family, value.map { [(netns, $0)] } ?? []) }
        var families = [
            Family(MetricCatalogue.status, Double(report.verdict.rawValue)),
            Family(MetricCatalogue.statusPartial, readings.isPartial ? 1 : 0),
            perNamespace(MetricCatalogue.namespaceStatus, Double(report.verdict.rawValue)),
            Family(MetricCatalogue.netnsInfo, [(netns + [("kind", readings.namespace.kind?.rawValue ?? "unknown")], 1)]),
            perNamespace(MetricCatalogue.entries, Double(sample.count)),
            Family(MetricCatalogue.max, Double(sample.max)),
            perNamespace(MetricCatalogue.fillRatio, sample.fillRatio),
            Family(MetricCatalogue.buckets, sample.buckets.map { [([], Double($0))] } ?? []),
        ]
        for counter in ConntrackSample.reportedCounters {
            families.append(perNamespace(MetricCatalogue.namespaceCounter(counter), Double(sample.counter(counter))))
        }
        families.append(
            Family(
                MetricCatalogue.timeoutSeconds,
                ConntrackSetting.timeouts.compactMap { setting in
                    readings.timeouts[setting].map { (netns + [("timeout", setting.shortName)], Double($0)) }
                }))
        families += censusFamilies(readings, netns: netns)
        if readings.kernelLog.readable {
            families.append(perNamespace(MetricCatalogue.tableFullLogLines, Double(readings.kernelLog.lines.count)))
        }
        if let slab = readings.slab { families.append(Family(MetricCatalogue.slabBytes, Double(slab.bytes))) }
        families += driftFamilies(drift)
        families.append(Family(MetricCatalogue.statusTimestamp, readings.wallClock.timeIntervalSince1970.rounded()))
        return families.filter { !$0.samples.isEmpty }.map(text).joined()
    }

    /// The census's families for one namespace; none when it did not run.
    static func censusFamilies(_ readings: StatusReadings, netns: [(String, String)]) -> [Family] {
        guard let census = readings.census else { return [] }
        return [
            Family(
                MetricCatalogue.protocolEntries,
                census.byProtocol.sorted { $0.key < $1.key }.map { (netns + [("protocol", $0.key)], Double($0.value)) }),
            Family(
                MetricCatalogue.tcpStateEntries,
                census.tcpStates.sorted { $0.key < $1.key }.map { (netns + [("state", $0.key)], Double($0.value)) }),
            Family(
                MetricCatalogue.classEntries,
                census.topClasses(census.topShown).map { (netns + [("class", $0.label)], Double($0.count.entries)) }),
            Family(
                MetricCatalogue.censusSampleRatio,
                [(netns, census.sample.map { Double($0.entriesRead) / Double(Swift.max($0.tableEntries, 1)) } ?? 1)]),
            Family(MetricCatalogue.orphanEntries, [(netns, Double(census.orphans))]),
            Family(
                MetricCatalogue.classNotrackRuleConflicts,
                (readings.cures ?? []).filter { $0.cure == .notrack }.map {
                    (netns + [("class", $0.className)], Double($0.conflicts.count))
                }),
        ]
    }

    /// The drift from cttune's persisted plan and the writers that undo it;
    /// none when cttune has persisted no plan.
    static func driftFamilies(_ drift: PlanDrift?) -> [Family] {
        guard let drift else { return [] }
        return [
            Family(
                MetricCatalogue.planDrift,
                ConntrackSetting.allCases.compactMap { setting in
                    drift.drifted(setting).map { ([("setting", setting.key)], $0 ? 1 : 0) }
                }),
            Family(
                MetricCatalogue.writerUndoneSettings,
                drift.undoneByWriter.sorted { $0.key < $1.key }.map { ([("writer", $0.key)], Double($0.value)) }),
        ]
    }

    static func text(_ family: Family) -> String {
        var out = "# HELP \(family.name) \(escapeHelp(family.family.help))\n# TYPE \(family.name) \(family.family.kind.rawValue)\n"
        for sample in family.samples {
            let labels =
                sample.labels.isEmpty ? "" : "{" + sample.labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
            out += "\(family.name)\(labels) \(number(sample.value))\n"
        }
        return out
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    static func escapeHelp(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }

    static func escapeLabel(_ text: String) -> String {
        escapeHelp(text).replacing("\"", with: "\\\"")
    }

    /// Writes `contents` to `path` atomically (AtomicFile: the temporary
    /// name does not end in .prom, so the collector never reads it half
    /// written). The directory must exist: it is node_exporter's.
    public static func write(_ contents: String, to path: String) throws {
        do {
            try AtomicFile.write(contents, to: FilePath(path), createDirectories: false)
        } catch TunerError.fileWriteFailed(let failedPath, let errno) {
            throw TunerError.cannotWrite(
                path: failedPath, reason: errnoText(errno),
                fix: "give --textfile a path in an existing, writable directory (node_exporter's --collector.textfile.directory)")
        }
    }
}
