import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// A tree standing for / with the files status reads, in the kernel's formats
/// as read on 6.18 (header names, hex columns, kmsg records).
private struct StatusTree {
    let url: URL
    var root: SystemRoot { SystemRoot(base: FilePath(url.path)) }

    init() throws {
        url = try TestPaths.temporaryDirectory("cttune-status")
    }

    func write(_ relative: String, _ text: String) throws {
        let file = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: false, encoding: .utf8)
    }

    func writeBasics(count: Int, max: Int) throws {
        try write("proc/sys/net/netfilter/nf_conntrack_count", "\(count)\n")
        try write("proc/sys/net/netfilter/nf_conntrack_max", "\(max)\n")
        try write("proc/sys/net/netfilter/nf_conntrack_buckets", "1024\n")
        try write("proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established", "7200\n")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("proc/self/ns"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: url.appendingPathComponent("proc/self/ns/net").path,
            withDestinationPath: "net:[4026532317]")
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

@Suite("status readers")
struct StatusReadersTests {
    static let statHeader =
        "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart"

    @Test("per-CPU hex counters are summed by header name; entries is taken once")
    func sumsStatTableByHeader() throws {
        let table = """
            \(Self.statHeader)
            0000012c  00000000 00000003 00000000 00000001 00000000 00000000 00000000 00000000 00000000 0000000a 00000000 00000000  00000000 00000000 00000000 00000000
            0000012c  00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000004 00000046 00000002 00000000  00000000 00000000 00000000 00000005

            """
        let totals = try ConntrackStatTable.sum(table, path: "/proc/net/stat/nf_conntrack")
        #expect(totals["entries"] == 300)
        #expect(totals["found"] == 5)
        #expect(totals["invalid"] == 1)
        #expect(totals["drop"] == 80)
        #expect(totals["insert_failed"] == 4)
        #expect(totals["early_drop"] == 2)
        #expect(totals["search_restart"] == 5)
    }

    @Test("columns are found by name, whatever their order on another kernel")
    func columnsByName() throws {
        let totals = try ConntrackStatTable.sum("drop entries\n00000010 00000001\n00000001 00000001\n", path: "x")
        #expect(totals == ["drop": 17, "entries": 1])
    }

    @Test(
        "a malformed statistics table is an error naming the file and the problem",
        arguments: [
            ("drop entries\n0000001 zz\n", "entries is not hexadecimal"),
            ("drop entries\n00000001\n", "a row has 1 fields, the header names 2"),
        ])
    func malformedStat(text: String, problem: String) {
        #expect(
            throws: TunerError.malformed(
                path: "/proc/net/stat/nf_conntrack",
                detail: problem == "entries is not hexadecimal" ? "entries is not hexadecimal: \"zz\"" : problem)
        ) {
            try ConntrackStatTable.sum(text, path: "/proc/net/stat/nf_conntrack")
        }
    }

    @Test("dumped entries are counted by protocol, TCP state and status bits, with idle ESTABLISHED entries as orphans")
    func censusTally() {
        // The default status is IPS_SEEN_REPLY | IPS_ASSURED.
        func entry(_ proto: UInt8, _ state: TCPConntrackState?, timeout: Int, status: UInt32 = 0x2 | 0x4) -> ConntrackEntry {
            ConntrackEntry(
                family: 2, protocolNumber: proto, tcpState: state, status: status, timeoutSeconds: timeout, id: 1, event: .dumped)
        }
        var tally = Tally(establishedTimeout: 432_000, limit: nil)
        for item in [
            entry(6, .established, timeout: 431_998),  // idle 2 s
            entry(6, .established, timeout: 400_000),  // idle 32000 s: orphan
            entry(6, .timeWait, timeout: 100),
            entry(17, nil, timeout: 28, status: 0),  // unreplied, not assured
            entry(1, nil, timeout: 20, status: 0),
        ] {
            let more = tally.add(item)
            #expect(more)
        }
        let census = tally.census()
        #expect(census.total == 5)
        #expect(census.byProtocol == ["tcp": 3, "udp": 1, "icmp": 1])
        #expect(census.tcpStates == ["ESTABLISHED": 2, "TIME_WAIT": 1])
        #expect(census.orphans == 1)
        #expect(census.oldestIdleSeconds == 32_000)
        #expect(census.assured == 3)
        #expect(census.unreplied == 2)
        #expect(census.source == "ctnetlink")
    }

    @Test("a sampled census stops at its limit and scales its counts to the live count")
    func sampledCensus() {
        var tally = Tally(establishedTimeout: nil, limit: 4)
        let udp = ConntrackEntry(family: 2, protocolNumber: 17, tcpState: nil, status: 0, timeoutSeconds: 30, id: nil, event: .dumped)
        let tcp = ConntrackEntry(
            family: 2, protocolNumber: 6, tcpState: .timeWait, status: 0xc, timeoutSeconds: 60, id: nil, event: .dumped)
        let answers = [tally.add(udp), tally.add(udp), tally.add(udp), tally.add(tcp)]
        #expect(answers == [true, true, true, false])
        var census = tally.census()
        census.scale(to: 1000)
        #expect(census.total == 1000)
        #expect(census.byProtocol == ["udp": 750, "tcp": 250])
        #expect(census.tcpStates == ["TIME_WAIT": 250])
        #expect(census.sample == EntryCensus.Sample(entriesRead: 4, tableEntries: 1000))
    }

    @Test("/proc/net/nf_conntrack lines are counted the same way")
    func censusFromProcTable() {
        let table = """
            ipv4     2 tcp      6 431998 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=32826 dport=9000 src=127.0.0.1 dst=127.0.0.1 sport=9000 dport=32826 [ASSURED] mark=0 zone=0 use=2
            ipv4     2 tcp      6 3000 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=1 dport=9000 src=127.0.0.1 dst=127.0.0.1 sport=9000 dport=1 [ASSURED] mark=0 zone=0 use=2
            ipv4     2 udp      17 28 src=127.0.0.1 dst=127.0.0.1 sport=49518 dport=53 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=53 dport=49518 mark=0 zone=0 use=2
            ipv6     10 tcp      6 117 TIME_WAIT src=::1 dst=::1 sport=2 dport=80 src=::1 dst=::1 sport=80 dport=2 [ASSURED] mark=0 zone=0 use=2

            """
        let census = EntryCensus.parseProcTable(table, establishedTimeout: 7200)
        #expect(census.total == 4)
        #expect(census.byProtocol == ["tcp": 3, "udp": 1])
        #expect(census.tcpStates == ["ESTABLISHED": 2, "TIME_WAIT": 1])
        #expect(census.orphans == 1)  // idle 4200 s
        #expect(census.oldestIdleSeconds == 4200)
    }

    @Test("kernel log records are kept only when they say table full about this namespace")
    func kernelLogAttribution() {
        let records = """
            4,5601,2580112233,-;nf_conntrack: nf_conntrack: table full in netns 4026532317, dropping packet
            4,5602,2581000000,-;nf_conntrack: nf_conntrack: table full in netns 4026532999, dropping packet
            4,5603,2582500000,-;nf_conntrack: table full, dropping packet
             SUBSYSTEM=net
            6,5604,2583000000,-;eth0: link up
            """
        let ours = KernelLogEvidence.tableFullLines(in: records, for: NamespaceIdentity(kind: .nonInitial, inode: 4026532317))
        #expect(ours.lines.map(\.secondsSinceBoot) == [2580.112233])
        #expect(ours.lines.first?.netnsInode == 4026532317)
        #expect(ours.otherNamespaceLines == 2)
        let initial = KernelLogEvidence.tableFullLines(in: records, for: NamespaceIdentity(kind: .initial, inode: 4026531833))
        #expect(initial.lines.map(\.message) == ["nf_conntrack: table full, dropping packet"])
        #expect(initial.otherNamespaceLines == 2)
    }

    @Test("the log reader keeps the table-full records whatever the reads cut: one record per read, or a file read in chunks of any size")
    func kernelLogFilterAcrossReads() {
        let records = """
            6,5600,2580000000,-;eth0: link up
            4,5601,2580112233,-;nf_conntrack: nf_conntrack: table full in netns 4026532317, dropping packet
             SUBSYSTEM=net
            6,5602,2580200000,-;nf_conntrack: table fu
            4,5603,2582500000,-;nf_conntrack: table full, dropping packet
            """
        let expected = """
            4,5601,2580112233,-;nf_conntrack: nf_conntrack: table full in netns 4026532317, dropping packet
            4,5603,2582500000,-;nf_conntrack: table full, dropping packet

            """
        let bytes = Array(records.utf8)
        for chunk in 1...bytes.count {
            var filter = MarkedLines(marker: Array(KernelLogEvidence.marker.utf8))
            for start in stride(from: 0, to: bytes.count, by: chunk) {
                filter.add(bytes[start..<min(start + chunk, bytes.count)])
            }
            filter.finish()
            #expect(String(decoding: filter.kept, as: UTF8.self) == expected, "reads of \(chunk) bytes")
        }
    }

    @Test("a probe of a tree reads count, max, counters, timeouts, slab, entries, log and namespace through the root")
    func probeReadsATree() throws {
        let tree = try StatusTree()
        defer { tree.remove() }
        try tree.writeBasics(count: 950, max: 1000)
        try tree.write(
            "proc/net/stat/nf_conntrack",
            "\(Self.statHeader)\n"
                + String(
                    repeating:
                        "000003b6  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000010 00000000 00000000  00000000 00000000 00000000 00000000\n",
                    count: 2))
        try tree.write(
            "proc/net/nf_conntrack",
            "ipv4     2 tcp      6 100 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=1 dport=2 src=127.0.0.1 dst=127.0.0.1 sport=2 dport=1 [ASSURED] mark=0 zone=0 use=2\n"
        )
        try tree.write(
            "proc/slabinfo",
            "slabinfo - version: 2.1\nnf_conntrack         960    960    256   16    1 : tunables    0    0    0 : slabdata     60     60      0\n"
        )
        try tree.write("dev/kmsg", "4,1,5000000,-;nf_conntrack: nf_conntrack: table full in netns 4026532317, dropping packet\n")
        let readings = try StatusProbe(root: tree.root).readings(since: nil)
        #expect(readings.current.count == 950)
        #expect(readings.current.max == 1000)
        #expect(readings.current.buckets == 1024)
        #expect(readings.current.counter("drop") == 32)
        #expect(readings.current.counter("insert_failed") == 2)
        #expect(readings.timeouts[.tcpTimeoutEstablished] == 7200)
        #expect(readings.timeouts[.tcpTimeoutTimeWait] == nil)
        #expect(readings.slab == SlabUsage(activeObjects: 960, objectBytes: 256))
        #expect(readings.census?.tcpStates == ["TIME_WAIT": 1])
        #expect(readings.census?.source == "/proc/net/nf_conntrack")
        #expect(readings.namespace == NamespaceIdentity(kind: .initial, inode: 4026532317))
        // The line names the tree's namespace inode, so it is this namespace's.
        #expect(readings.kernelLog.lines.map(\.secondsSinceBoot) == [5])
        #expect(readings.kernelLog.otherNamespaceLines == 0)
        let report = StatusReport(readings)
        #expect(report.verdict == .critical)
    }

    @Test("without nf_conntrack there is nothing to judge: a typed error naming the missing file")
    func noConntrack() throws {
        let tree = try StatusTree()
        defer { tree.remove() }
        #expect(throws: TunerError.conntrackNotLoaded(path: tree.url.path + "/proc/sys/net/netfilter/nf_conntrack_count")) {
            try StatusProbe(root: tree.root).sample()
        }
    }

    @Test("the textfile is replaced atomically and no temporary file is left behind")
    func atomicTextfile() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cttune.prom").path
        try PrometheusTextfile.write("old 1\n", to: path)
        try PrometheusTextfile.write("new 2\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new 2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["cttune.prom"])
        let missing = directory.appendingPathComponent("absent/cttune.prom").path
        #expect(
            throws: TunerError.cannotWrite(
                path: missing, reason: "no such file or directory",
                fix: "give --textfile a path in an existing, writable directory (node_exporter's --collector.textfile.directory)")
        ) {
            try PrometheusTextfile.write("x 1\n", to: missing)
        }
    }
}
