import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem
import TunerWorkflows

/// The status as Prometheus text-exposition metrics (format 0.0.4), for
/// node_exporter's textfile collector: names prefixed `cttune_`, a HELP and a
/// TYPE line per family, labels for the network namespace and TCP state.
public enum PrometheusTextfile {
    struct Family {
        var name: String
        var type: String
        var help: String
        var samples: [(labels: [(String, String)], value: Double)]
    }

    public static func render(_ report: StatusReport) -> String {
        let readings = report.readings
        let sample = readings.current
        let netns = [("netns", readings.namespace.inode.map(String.init) ?? readings.namespace.kind?.rawValue ?? "unknown")]
        func gauge(_ name: String, _ help: String, _ value: Double?) -> Family {
            Family(name: name, type: "gauge", help: help, samples: value.map { [(netns, $0)] } ?? [])
        }
        var families = [
            gauge("cttune_status", "Verdict of cttune status: 0 ok, 1 warning, 2 critical, 3 unknown.", Double(report.verdict.rawValue)),
            gauge(
                "cttune_status_partial", "1 when a reading failed or may be incomplete (the census); the verdict stands on the counters.",
                readings.isPartial ? 1 : 0),
            Family(
                name: "cttune_netns_info", type: "gauge",
                help: "The network namespace the metrics describe (kind: initial or non-initial).",
                samples: [(netns + [("kind", readings.namespace.kind?.rawValue ?? "unknown")], 1)]),
            gauge(
                "cttune_conntrack_entries", "Live conntrack entries in the network namespace (nf_conntrack_count).", Double(sample.count)),
            gauge(
                "cttune_conntrack_max", "Global table limit the namespace's count is checked against (nf_conntrack_max).",
                Double(sample.max)),
            gauge("cttune_conntrack_fill_ratio", "Entries divided by max; warning from 0.75, critical from 0.9.", sample.fillRatio),
            gauge("cttune_conntrack_buckets", "Hash table buckets (nf_conntrack_buckets).", sample.buckets.map(Double.init)),
        ]
        for counter in ConntrackSample.reportedCounters {
            families.append(
                Family(
                    name: "cttune_conntrack_\(counter)_total", type: "counter",
                    help: "Per-CPU \(counter) statistic of /proc/net/stat/nf_conntrack, summed, since the namespace was created.",
                    samples: [(netns, Double(sample.counter(counter)))]))
        }
        families.append(
            Family(
                name: "cttune_conntrack_timeout_seconds", type: "gauge", help: "Conntrack timeouts in force in the namespace.",
                samples: ConntrackSetting.timeouts.compactMap { setting in
                    readings.timeouts[setting].map { (netns + [("timeout", setting.shortName)], Double($0)) }
                }))
        if let census = readings.census {
            families.append(
                Family(
                    name: "cttune_conntrack_protocol_entries", type: "gauge", help: "Live entries by layer-4 protocol.",
                    samples: census.byProtocol.sorted { $0.key < $1.key }.map { (netns + [("protocol", $0.key)], Double($0.value)) }))
            families.append(
                Family(
                    name: "cttune_conntrack_tcp_state_entries", type: "gauge", help: "Live TCP entries by conntrack TCP state.",
                    samples: census.tcpStates.sorted { $0.key < $1.key }.map { (netns + [("state", $0.key)], Double($0.value)) }))
            families.append(
                gauge(
                    "cttune_conntrack_census_sample_ratio",
                    "Share of the entries the census read: 1 for a full dump, less with --census-sample (counts scaled up).",
                    census.sample.map { Double($0.entriesRead) / Double(Swift.max($0.tableEntries, 1)) } ?? 1))
            families.append(
                gauge(
                    "cttune_conntrack_orphan_entries", "ESTABLISHED entries idle at least \(EntryCensus.orphanIdleSeconds) s.",
                    Double(census.orphans)))
        }
        if readings.kernelLog.readable {
            families.append(
                gauge(
                    "cttune_conntrack_table_full_log_lines",
                    "Kernel log lines 'nf_conntrack: table full' about the namespace still in the ring buffer.",
                    Double(readings.kernelLog.lines.count)))
        }
        if let slab = readings.slab {
            families.append(
                Family(
                    name: "cttune_conntrack_slab_bytes", type: "gauge",
                    help: "Slab memory of all conntrack entries on the host (active objects x object size).",
                    samples: [([], Double(slab.bytes))]))
        }
        families.append(
            Family(
                name: "cttune_status_timestamp_seconds", type: "gauge", help: "When cttune status wrote these metrics (Unix time).",
                samples: [([], readings.wallClock.timeIntervalSince1970.rounded())]))
        return families.filter { !$0.samples.isEmpty }.map(text).joined()
    }

    static func text(_ family: Family) -> String {
        var out = "# HELP \(family.name) \(escapeHelp(family.help))\n# TYPE \(family.name) \(family.type)\n"
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
