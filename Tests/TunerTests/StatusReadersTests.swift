import Foundation
import SystemPackage
import Testing

@testable import Tuner

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

    @Test("conntrack -L -o xml is counted by protocol and TCP state, with idle ESTABLISHED entries as orphans")
    func censusFromXML() throws {
        // Flows as conntrack-tools 1.4.7 prints them; the timeouts are remaining seconds.
        func flow(_ proto: String, _ number: Int, state: String?, timeout: Int) -> String {
            let layer4 = "<layer4 protonum=\"\(number)\" protoname=\"\(proto)\"><sport>1</sport><dport>2</dport></layer4>"
            let layer3 = "<layer3 protonum=\"2\" protoname=\"ipv4\"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3>"
            return "<flow><meta direction=\"original\">\(layer3)\(layer4)</meta><meta direction=\"reply\">\(layer3)\(layer4)</meta>"
                + "<meta direction=\"independent\">\(state.map { "<state>\($0)</state>" } ?? "")<timeout>\(timeout)</timeout><mark>0</mark><use>1</use><id>1</id><assured/></meta></flow>"
        }
        let xml =
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n"
            + [
                flow("tcp", 6, state: "ESTABLISHED", timeout: 431_998),  // idle 2 s
                flow("tcp", 6, state: "ESTABLISHED", timeout: 400_000),  // idle 32000 s: orphan
                flow("tcp", 6, state: "TIME_WAIT", timeout: 100),
                flow("udp", 17, state: nil, timeout: 28),
                flow("icmp", 1, state: nil, timeout: 20),
            ].joined(separator: "\n") + "\n</conntrack>\n"
        let census = try EntryCensus.parseXML(Data(xml.utf8), establishedTimeout: 432_000)
        #expect(census.total == 5)
        #expect(census.byProtocol == ["tcp": 3, "udp": 1, "icmp": 1])
        #expect(census.tcpStates == ["ESTABLISHED": 2, "TIME_WAIT": 1])
        #expect(census.orphans == 1)
        #expect(census.oldestIdleSeconds == 32_000)
        #expect(census.source == "conntrack -L -o xml")
    }

    @Test("an empty table (conntrack prints no XML at all) is an empty census; broken XML is an error")
    func emptyAndBrokenXML() throws {
        #expect(try EntryCensus.parseXML(Data("\n".utf8), establishedTimeout: nil).total == 0)
        #expect(throws: TunerError.malformed(path: "conntrack -L -o xml output", detail: "the dump ends before </conntrack>")) {
            try EntryCensus.parseXML(Data("<conntrack><flow>".utf8), establishedTimeout: nil)
        }
        #expect(throws: TunerError.self) { try EntryCensus.parseXML(Data("<conntrack><flow></conntrack>".utf8), establishedTimeout: nil) }
    }

    @Test("a dump larger than libxml2's 10 MB chunk limit (20000 entries, 11 MB) is counted completely")
    func largeDump() throws {
        let flow =
            "<flow><meta direction=\"original\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3><layer4 protonum=\"6\" protoname=\"tcp\"><sport>32826</sport><dport>9000</dport></layer4></meta><meta direction=\"reply\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3><layer4 protonum=\"6\" protoname=\"tcp\"><sport>9000</sport><dport>32826</dport></layer4></meta><meta direction=\"independent\"><state>TIME_WAIT</state><timeout>100</timeout><mark>0</mark><use>1</use><id>3942760363</id><assured/></meta></flow>\n"
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n" + String(repeating: flow, count: 20_000) + "</conntrack>\n"
        #expect(xml.utf8.count > 10_485_760)
        let census = try EntryCensus.parseXML(Data(xml.utf8), establishedTimeout: 432_000)
        #expect(census.tcpStates == ["TIME_WAIT": 20_000])
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
