import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// One namespace's readings with every optional reading present, so every
/// family a writer can emit is emitted.
private func fullReadings(inode: UInt64, count: Int, kind: NetworkNamespace = .nonInitial) -> StatusReadings {
    var census = EntryCensus(source: "test")
    census.add(protocolName: "tcp", tcpState: "TIME_WAIT", remainingSeconds: 100, establishedTimeout: 432_000)
    census.add(protocolName: "udp", tcpState: nil, remainingSeconds: 20, establishedTimeout: 432_000)
    census.byClass = [
        FlowClass(direction: .outbound, protocolNumber: 6, service: .port(443)): .init(entries: 1, states: ["TIME_WAIT": 1]),
        FlowClass(direction: .inbound, protocolNumber: 17, service: .port(53)): .init(entries: 1, states: ["unreplied": 1]),
    ]
    var readings = StatusReadings(
        namespace: NamespaceIdentity(kind: kind, inode: inode),
        previous: ConntrackSample(takenAt: 1, count: count, max: 1000, buckets: 1024, counters: ["drop": 1]),
        current: ConntrackSample(takenAt: 2, count: count, max: 1000, buckets: 1024, counters: ["drop": 2]),
        timeouts: [.udpTimeout: 30], slab: SlabUsage(activeObjects: 10, objectBytes: 256), census: census,
        kernelLog: KernelLogEvidence(lines: []), secondsSinceBoot: 2, wallClock: Date(timeIntervalSince1970: 1_800_000_000))
    readings.cures = [CureInForce(className: "dns", protocolName: "udp", policy: [], cure: .notrack)]
    return readings
}

/// `# HELP` and `# TYPE` lines of a rendered textfile, by family name.
private func headers(_ text: String) -> [String: (help: String, type: String)] {
    var result: [String: (help: String, type: String)] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("# ") {
        let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
        if parts[1] == "HELP" { result[parts[2], default: ("", "")].help = parts.count > 3 ? parts[3] : "" }
        if parts[1] == "TYPE" { result[parts[2], default: ("", "")].type = parts[3] }
    }
    return result
}

/// Label names of every sample line, by family name.
private func labelNames(_ text: String) -> [String: Set<[String]>] {
    var result: [String: Set<[String]>] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let name = String(line.prefix { $0 != "{" && $0 != " " })
        var labels: [String] = []
        if let open = line.firstIndex(of: "{") {
            let body = line[line.index(after: open)..<line.lastIndex(of: "}")!]
            labels = body.split(separator: ",").map { String($0.prefix { $0 != "=" }) }
        }
        result[name, default: []].insert(labels)
    }
    return result
}

@Suite("the metric catalogue: every textfile family defined once, by Prometheus's naming rules")
struct MetricCatalogueTests {
    /// The catalogue as released: a rename, a new label or a type change
    /// fails here first, and docs/status.md must say so.
    static let pinned: [(name: String, kind: String, labels: [String])] = [
        ("cttune_status", "gauge", []), ("cttune_status_partial", "gauge", []), ("cttune_namespace_status", "gauge", ["netns"]),
        ("cttune_netns_info", "gauge", ["netns", "kind"]), ("cttune_conntrack_entries", "gauge", ["netns"]),
        ("cttune_conntrack_max", "gauge", []), ("cttune_conntrack_fill_ratio", "gauge", ["netns"]),
        ("cttune_conntrack_max_fill_ratio", "gauge", []), ("cttune_conntrack_buckets", "gauge", []),
        ("cttune_conntrack_found_total", "counter", ["netns"]), ("cttune_conntrack_invalid_total", "counter", ["netns"]),
        ("cttune_conntrack_insert_total", "counter", ["netns"]), ("cttune_conntrack_insert_failed_total", "counter", ["netns"]),
        ("cttune_conntrack_drop_total", "counter", ["netns"]), ("cttune_conntrack_early_drop_total", "counter", ["netns"]),
        ("cttune_conntrack_search_restart_total", "counter", ["netns"]), ("cttune_conntrack_namespaces", "gauge", []),
        ("cttune_conntrack_namespaces_unreadable", "gauge", []), ("cttune_conntrack_all_namespaces_entries", "gauge", []),
        ("cttune_conntrack_all_namespaces_drop_total", "counter", []),
        ("cttune_conntrack_all_namespaces_insert_failed_total", "counter", []),
        ("cttune_conntrack_all_namespaces_early_drop_total", "counter", []),
        ("cttune_conntrack_timeout_seconds", "gauge", ["netns", "timeout"]),
        ("cttune_conntrack_protocol_entries", "gauge", ["netns", "protocol"]),
        ("cttune_conntrack_tcp_state_entries", "gauge", ["netns", "state"]),
        ("cttune_conntrack_class_entries", "gauge", ["netns", "class"]),
        ("cttune_conntrack_census_sample_ratio", "gauge", ["netns"]), ("cttune_conntrack_orphan_entries", "gauge", ["netns"]),
        ("cttune_conntrack_table_full_log_lines", "gauge", ["netns"]), ("cttune_conntrack_slab_bytes", "gauge", []),
        ("cttune_plan_drift", "gauge", ["setting"]), ("cttune_writer_undone_settings", "gauge", ["writer"]),
        ("cttune_class_notrack_rule_conflicts", "gauge", ["netns", "class"]), ("cttune_status_timestamp_seconds", "gauge", []),
    ]

    @Test("the catalogue is the pinned list: names, types and label sets")
    func pinnedCatalogue() {
        let actual = MetricCatalogue.all.map { "\($0.name) \($0.kind.rawValue) \($0.labels)" }
        #expect(actual == Self.pinned.map { "\($0.name) \($0.kind) \($0.labels)" })
    }

    @Test("names: unique, cttune_ prefixed; counters and only counters end in _total; the unit is the base unit the name ends with")
    func namingRules() {
        let names = MetricCatalogue.all.map(\.name)
        #expect(Set(names).count == names.count)
        for family in MetricCatalogue.all {
            #expect(family.name.hasPrefix("cttune_"), "\(family.name)")
            #expect(family.name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(family.name)")
            #expect(family.name.hasSuffix("_total") == (family.kind == .counter), "\(family.name)")
            let stem = family.kind == .counter ? String(family.name.dropLast("_total".count)) : family.name
            for unit in MetricFamily.Unit.allCases where unit != .count {
                #expect(stem.hasSuffix("_\(unit.rawValue)") == (family.unit == unit), "\(family.name): unit \(family.unit)")
            }
            // Prefixed or non-base units (milliseconds, kilobytes, percent) are not used.
            for wrong in ["_milliseconds", "_microseconds", "_minutes", "_hours", "_kilobytes", "_megabytes", "_percent", "_bits"] {
                #expect(!stem.hasSuffix(wrong), "\(family.name)")
            }
            #expect(!family.help.isEmpty && family.help.hasSuffix("."), "\(family.name): help \"\(family.help)\"")
        }
    }

    @Test("every label is bounded: its values come from a fixed set or a top N that the catalogue names")
    func labelsBounded() {
        for family in MetricCatalogue.all {
            for label in family.labels {
                #expect(MetricCatalogue.labelBounds[label] != nil, "\(family.name): label \(label) has no stated bound")
            }
            #expect(!family.labels.contains("le") && !family.labels.contains("quantile"), "\(family.name)")
        }
    }

    @Test("both writers emit only catalogue families, each with the catalogue's HELP, TYPE and label set")
    func writersUseTheCatalogue() {
        let single = StatusReport(fullReadings(inode: 4_026_532_317, count: 950))
        let drift = PlanDrift(
            planned: [.max: 2000, .udpTimeout: 30], running: [.max: 1000, .udpTimeout: 30], undoneByWriter: ["kube-proxy": 1])
        var members = (0..<(HostStatusReport.labelledNamespaces + 3)).map { index in
            HostStatusReport.Member(
                identifier: .named("ns\(index)"), report: StatusReport(fullReadings(inode: UInt64(100 + index), count: index * 70)))
        }
        members[0].report = StatusReport(fullReadings(inode: 1, count: 10, kind: .initial))
        let host = HostStatusReport(members: members, failures: [], slab: SlabUsage(activeObjects: 10, objectBytes: 256))
        let catalogue = Dictionary(uniqueKeysWithValues: MetricCatalogue.all.map { ($0.name, $0) })
        var emitted: Set<String> = []
        for text in [PrometheusTextfile.render(single, drift: drift), PrometheusTextfile.render(host, drift: drift)] {
            for (name, header) in headers(text) {
                emitted.insert(name)
                let family = catalogue[name]
                #expect(family != nil, "\(name) is not in the catalogue")
                #expect(header.help == family?.help && header.type == family?.kind.rawValue, "\(name)")
            }
            for (name, labelSets) in labelNames(text) {
                #expect(labelSets == [catalogue[name]?.labels ?? ["?"]], "\(name): \(labelSets)")
            }
        }
        let unemitted = Set(MetricCatalogue.all.filter { !$0.reserved }.map(\.name)).subtracting(emitted)
        #expect(unemitted.isEmpty, "catalogued but never written: \(unemitted.sorted())")
        #expect(MetricCatalogue.all.allSatisfy { !$0.reserved }, "every family has a writer")
        let hostText = PrometheusTextfile.render(host)
        let labelled = Set(hostText.split(separator: "\n").filter { $0.hasPrefix("cttune_conntrack_entries{") })
        #expect(labelled.count == HostStatusReport.labelledNamespaces, "the per-namespace series stay bounded")
    }

    @Test("drift: a running value other than cttune's file's is 1, an equal one 0; a writer's count of undone settings")
    func driftSeries() {
        let drift = PlanDrift(
            planned: [.max: 2000, .udpTimeout: 30, .hashsize: 512], running: [.max: 1000, .udpTimeout: 30],
            undoneByWriter: ["kube-proxy": 2])
        let text = PrometheusTextfile.render(StatusReport(fullReadings(inode: 7, count: 1)), drift: drift)
        #expect(text.contains("cttune_plan_drift{setting=\"net.netfilter.nf_conntrack_max\"} 1\n"))
        #expect(text.contains("cttune_plan_drift{setting=\"net.netfilter.nf_conntrack_udp_timeout\"} 0\n"))
        #expect(!text.contains("nf_conntrack.hashsize"), "no series where the running value is unknown")
        #expect(text.contains("cttune_writer_undone_settings{writer=\"kube-proxy\"} 2\n"))
        #expect(!PrometheusTextfile.render(StatusReport(fullReadings(inode: 7, count: 1))).contains("cttune_plan_drift"))
    }

    @Test("drift reads cttune's boot-time files: the sysctl.d values and the hash size")
    func plannedValuesFromFiles() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let sysctl = root.appendingPathComponent("etc/sysctl.d")
        try FileManager.default.createDirectory(at: sysctl, withIntermediateDirectories: true)
        try """
        \(PersistentConfig.headerMarker) from profile test.
        net.netfilter.nf_conntrack_max = 65536
        net.netfilter.nf_conntrack_buckets = 16384
        net.netfilter.nf_conntrack_udp_timeout = 20
        """.write(to: sysctl.appendingPathComponent("90-cttune.conf"), atomically: true, encoding: .utf8)
        let planned = PlanDrift.plannedValues(under: SystemRoot(base: FilePath(root.path)))
        #expect(planned == [.max: 65536, .hashsize: 16384, .udpTimeout: 20])
        let empty = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(PlanDrift.plannedValues(under: SystemRoot(base: FilePath(empty.path))).isEmpty)
    }
}
