import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

@Suite("status textfile for node_exporter", .enabled(if: PrometheusParser.isAvailable))
struct PrometheusTextfileTests {
    @Test("every metric parses with prometheus_client, is prefixed cttune_, has HELP and TYPE, and carries the values")
    func parsesWithTheRealParser() throws {
        var census = EntryCensus(source: "test")
        census.add(protocolName: "tcp", tcpState: "TIME_WAIT", remainingSeconds: 100, establishedTimeout: 432_000)
        census.add(protocolName: "tcp", tcpState: "ESTABLISHED", remainingSeconds: 1000, establishedTimeout: 432_000)
        census.add(protocolName: "udp", tcpState: nil, remainingSeconds: 20, establishedTimeout: 432_000)
        let readings = StatusReadings(
            namespace: NamespaceIdentity(kind: .nonInitial, inode: 4026532317),
            previous: ConntrackSample(takenAt: 1, count: 920, max: 1000, buckets: 1024, counters: ["drop": 5]),
            current: ConntrackSample(takenAt: 2, count: 950, max: 1000, buckets: 1024, counters: ["drop": 9, "insert_failed": 1]),
            timeouts: [.tcpTimeoutEstablished: 432_000, .udpTimeout: 30], slab: SlabUsage(activeObjects: 960, objectBytes: 256),
            census: census, kernelLog: KernelLogEvidence(lines: [.init(secondsSinceBoot: 1, message: "table full")]),
            secondsSinceBoot: 2, wallClock: Date(timeIntervalSince1970: 1_800_000_000))
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cttune.prom").path
        try PrometheusTextfile.write(PrometheusTextfile.render(StatusReport(readings)), to: path)

        let families = try PrometheusParser.parse(path)
        #expect(families.keys.allSatisfy { $0.hasPrefix("cttune_") })
        #expect(families.values.allSatisfy { !$0.help.isEmpty && ["gauge", "counter"].contains($0.type) })
        let netns = ["netns": "4026532317"]
        #expect(PrometheusParser.value(families, "cttune_status") == 2)
        #expect(PrometheusParser.value(families, "cttune_namespace_status", netns) == 2)
        #expect(PrometheusParser.value(families, "cttune_netns_info", ["kind": "non-initial"]) == 1)
        #expect(PrometheusParser.value(families, "cttune_conntrack_entries", netns) == 950)
        #expect(PrometheusParser.value(families, "cttune_conntrack_fill_ratio", netns) == 0.95)
        #expect(PrometheusParser.value(families, "cttune_conntrack_drop", netns) == 9)
        #expect(PrometheusParser.value(families, "cttune_conntrack_insert_failed", netns) == 1)
        #expect(PrometheusParser.value(families, "cttune_conntrack_tcp_state_entries", ["state": "TIME_WAIT"]) == 1)
        #expect(PrometheusParser.value(families, "cttune_conntrack_protocol_entries", ["protocol": "udp"]) == 1)
        #expect(PrometheusParser.value(families, "cttune_conntrack_timeout_seconds", ["timeout": "nf_conntrack_udp_timeout"]) == 30)
        #expect(PrometheusParser.value(families, "cttune_conntrack_slab_bytes") == 245_760)
        #expect(PrometheusParser.value(families, "cttune_conntrack_table_full_log_lines", netns) == 1)
        #expect(PrometheusParser.value(families, "cttune_status_timestamp_seconds") == 1_800_000_000)
    }

    @Test("label values with quotes, backslashes and newlines are escaped so the parser reads them back intact")
    func escapesLabels() throws {
        let family = PrometheusTextfile.Family(
            MetricFamily(name: "cttune_test", kind: .gauge, unit: .count, labels: ["state"], help: "a \\ help\nline"),
            [([("state", "A\"B\\C\nD")], 1)])
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("t.prom").path
        try PrometheusTextfile.write(PrometheusTextfile.text(family), to: path)
        let parsed = try PrometheusParser.parse(path)
        #expect(parsed["cttune_test"]?.samples.first?.labels["state"] == "A\"B\\C\nD")
        #expect(parsed["cttune_test"]?.help == "a \\ help\nline")
    }

    @Test("the real parser rejects a broken exposition, so the checks above can fail")
    func parserRejectsGarbage() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.prom").path
        try "cttune_x{netns=\"1\" 1\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: Shell.Failure.self) { try PrometheusParser.parse(path) }
    }
}
