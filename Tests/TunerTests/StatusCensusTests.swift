import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// A value in nested JSON objects: `dig(json, "table", "count")`.
private func dig(_ object: Any?, _ keys: String...) -> Any? {
    keys.reduce(object) { ($0 as? [String: Any])?[$1] }
}

/// Inserts entries with conntrack -I (one shell, long pinned timeouts so
/// nothing expires between the two reads): TCP in eight states (one IPv6),
/// UDP unreplied and assured, ICMP.
private func insertMixedEntries(in namespace: TestNamespace) throws {
    var commands: [String] = []
    func tcp(_ port: Int, _ state: String, replied: Bool, family: String = "4") {
        let (source, destination) = family == "4" ? ("10.9.0.1", "10.9.0.2") : ("fd00:9::1", "fd00:9::2")
        commands.append(
            "conntrack -I -p tcp -s \(source) -d \(destination) --sport \(port) --dport 80 --state \(state) -t 50000"
                + (replied ? " -u SEEN_REPLY,ASSURED" : ""))
    }
    tcp(1001, "ESTABLISHED", replied: true)
    tcp(1002, "ESTABLISHED", replied: true)
    tcp(1003, "ESTABLISHED", replied: true, family: "6")
    tcp(1004, "TIME_WAIT", replied: true)
    tcp(1005, "TIME_WAIT", replied: true)
    tcp(1006, "SYN_SENT", replied: false)
    tcp(1007, "SYN_SENT", replied: false)
    tcp(1008, "SYN_RECV", replied: true)
    tcp(1009, "FIN_WAIT", replied: true)
    tcp(1010, "CLOSE_WAIT", replied: true)
    tcp(1011, "LAST_ACK", replied: true)
    tcp(1012, "CLOSE", replied: true)
    for port in 2001...2003 { commands.append("conntrack -I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport \(port) --dport 53 -t 50000") }
    commands.append("conntrack -I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport 2004 --dport 53 -t 50000 -u SEEN_REPLY,ASSURED")
    for id in 1...2 {
        commands.append("conntrack -I -p icmp -s 10.9.0.1 -d 10.9.0.2 --icmp-type 8 --icmp-code 0 --icmp-id \(id) -t 50000")
    }
    try namespace.exec(["sh", "-ec", commands.joined(separator: " 2>/dev/null\n") + " 2>/dev/null"])
}

/// What `conntrack -L` lists (both families), counted the census's way.
private struct ToolCount: Equatable {
    var total = 0
    var protocols: [String: Int] = [:]
    var states: [String: Int] = [:]
    var assured = 0
    var unreplied = 0

    init(listing: String) {
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, Int(fields[1]) != nil else { continue }
            total += 1
            protocols[String(fields[0]), default: 0] += 1
            if fields[0] == "tcp" { states[String(fields[3]), default: 0] += 1 }
            if line.contains("[ASSURED]") { assured += 1 }
            if line.contains("[UNREPLIED]") { unreplied += 1 }
        }
    }

    init(census: Any?) {
        total = (dig(census, "total") as? Int) ?? -1
        protocols = (dig(census, "by_protocol") as? [String: Int]) ?? [:]
        states = (dig(census, "tcp_states") as? [String: Int]) ?? [:]
        assured = (dig(census, "assured") as? Int) ?? -1
        unreplied = (dig(census, "unreplied") as? Int) ?? -1
    }
}

private func jsonObject(_ result: Shell.Result) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    return try #require(object, "no JSON object: \(result.stdout) \(result.stderr)")
}

private func count(in namespace: TestNamespace) throws -> Int {
    try namespace.sysctl("net.netfilter.nf_conntrack_count")
}

@Suite(
    "the ctnetlink census and every namespace, on the real kernel", .serialized,
    .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
struct StatusCensusTests {
    @Test("the census counts per protocol, TCP state and status bit what conntrack -L lists for the same table")
    func censusMatchesConntrackList() throws {
        let namespace = try TestNamespace("census")
        defer { namespace.delete() }
        try insertMixedEntries(in: namespace)
        let listing = try namespace.exec(["conntrack", "-L", "-f", "ipv4"]) + (try namespace.exec(["conntrack", "-L", "-f", "ipv6"]))
        let oracle = ToolCount(listing: listing)
        #expect(oracle.total == 18)
        #expect(oracle.states.count == 8, "conntrack -I did not make every TCP state: \(oracle.states)")

        let result = try namespace.run([TestPaths.cttune, "status", "--census", "--window", "0", "--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try jsonObject(result)
        #expect(dig(json, "entries", "source") as? String == "ctnetlink")
        #expect(dig(json, "partial") as? Bool == false)
        #expect(ToolCount(census: dig(json, "entries")) == oracle)

        // Without --census, a healthy table is not listed, and the output says why.
        let cheap = try jsonObject(try namespace.run([TestPaths.cttune, "status", "--window", "0", "--format", "json"]))
        #expect(dig(cheap, "entries") is NSNull)
        #expect(dig(cheap, "census", "ran") as? Bool == false)
        #expect((dig(cheap, "census", "reason") as? String)?.contains("--census") == true)

        // A sample reads 6 entries and scales them to the 18 live ones, and says so.
        let sampled = try jsonObject(
            try namespace.run([TestPaths.cttune, "status", "--census", "--census-sample", "6", "--window", "0", "--format", "json"]))
        #expect(dig(sampled, "entries", "sample", "entries_read") as? Int == 6)
        #expect(dig(sampled, "entries", "sample", "table_entries") as? Int == 18)
        #expect(dig(sampled, "entries", "total") as? Int == 18)
    }

    @Test("--top 0 counts what the census by class counts and lists no class")
    func censusWithoutClasses() throws {
        let namespace = try TestNamespace("census")
        defer { namespace.delete() }
        try insertMixedEntries(in: namespace)
        func entries(_ top: String) throws -> [String: Any] {
            let result = try namespace.run([TestPaths.cttune, "status", "--census", "--top", top, "--window", "0", "--format", "json"])
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(dig(try jsonObject(result), "entries") as? [String: Any], "no census: \(result.stdout)")
        }
        let byClass = try entries("10")
        let unclassified = try entries("0")
        #expect((unclassified["by_class"] as? [Any])?.isEmpty == true, "by_class: \(unclassified["by_class"] ?? "absent")")
        let rows = try #require(byClass["by_class"] as? [[String: Any]])
        #expect(rows.reduce(0) { $0 + ((($1["entries"]) as? Int) ?? 0) } == 18, "the classes add up to the total: \(rows)")
        #expect(ToolCount(census: unclassified) == ToolCount(census: byClass))
        #expect(ToolCount(census: unclassified).total == 18)
        #expect(dig(unclassified, "orphans", "count") as? Int == dig(byClass, "orphans", "count") as? Int)
    }

    @Test("status executes no program for the census: one execve (its own), traced with strace", .enabled(if: Fleet.has("strace")))
    func noToolRuns() throws {
        let namespace = try TestNamespace("census")
        defer { namespace.delete() }
        try insertMixedEntries(in: namespace)
        let trace = try TestPaths.temporaryDirectory("cttune-strace")
        defer { try? FileManager.default.removeItem(at: trace) }
        let log = trace.appendingPathComponent("exec.log").path
        for arguments in [["--census"], ["--census", "--all-namespaces"]] {
            let result = try namespace.run(
                [
                    "strace", "-f", "-qq", "-e", "trace=execve,execveat", "-o", log, TestPaths.cttune, "status", "--window", "0",
                    "--format", "json",
                ]
                    + arguments)
            let json = try jsonObject(result)
            #expect(json["verdict"] as? String != nil)
            let execs = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains("execve") }
            #expect(execs.count == 1 && execs[0].contains(TestPaths.cttune), "\(arguments): \(execs)")
        }
    }

    @Test(
        "--all-namespaces finds every namespace the test made (named, and one only a process holds) with the right counts, one at its max"
    )
    func everyNamespace() throws {
        let light = try TestNamespace("ns-light")
        defer { light.delete() }
        let mixed = try TestNamespace("ns-mixed")
        defer { mixed.delete() }
        let full = try TestNamespace("ns-full")
        defer { full.delete() }
        try insertMixedEntries(in: mixed)
        try light.exec(["conntrack", "-I", "-p", "udp", "-s", "10.8.0.1", "-d", "10.8.0.2", "--sport", "1", "--dport", "2", "-t", "50000"])
        // A namespace no name points to: only its process holds it (pid:N).
        // It outlives a long wait for the global lock; the defer ends it.
        let holder = try BackgroundProcess(["unshare", "--net", "sleep", "1800"])
        let holderPid = try #require(holder.pid)
        // SIGKILL: the test runner's threads block SIGINT, and the child inherits that mask.
        defer { kill(holderPid, SIGKILL) }
        let own = NamespaceIdentity.inode(of: "/proc/self/ns/net")
        for _ in 0..<100 where NamespaceIdentity.inode(of: "/proc/\(holderPid)/ns/net") == own {
            Thread.sleep(forTimeInterval: 0.05)
        }
        try Shell.check([
            "nsenter", "-t", String(holderPid), "-n", "conntrack", "-I", "-p", "udp", "-s", "10.7.0.1", "-d", "10.7.0.2", "--sport", "5",
            "--dport", "6", "-t", "50000",
        ])

        try full.trackLoopback()
        try full.setSysctl("net.netfilter.nf_conntrack_udp_timeout", 3600)
        try GlobalConntrack.withExclusiveAccess {
            let initialCount = try GlobalConntrack.read("/proc/sys/net/netfilter/nf_conntrack_count")
            let max = initialCount + 200
            try GlobalConntrack.write(GlobalConntrack.maxPath, max)
            // UDP to exactly max ports: the namespace fills to max and drops
            // nothing. A drop would arm the gc_worker's early eviction
            // (nf_conntrack_max95): its next pass kills unassured entries
            // until the count is under 95 % of max (seen: 189 of 200).
            try full.exec([
                "python3", "-c",
                // A full table drops the packet at output: sendto fails with EPERM.
                "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in range(20000,20000+\(max)):\n"
                    + "  try: s.sendto(b'x',('127.0.0.1',p))\n  except PermissionError: pass",
            ])
            let counts = [
                light.name: try count(in: light), mixed.name: try count(in: mixed), full.name: try count(in: full), "pid:\(holderPid)": 1,
            ]
            #expect(counts[full.name] == max)
            #expect(counts[mixed.name] == 18)
            let result = try Shell.run([TestPaths.cttune, "status", "--all-namespaces", "--window", "0", "--format", "json"])
            let json = try jsonObject(result)
            #expect(result.status == 2, "\(result.stderr)")
            let namespaces = try #require(json["namespaces"] as? [[String: Any]])
            let byID = Dictionary(namespaces.map { ($0["id"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            for (id, expected) in counts {
                let found = try #require(byID[id], "\(id) missing from \(byID.keys.sorted())")
                #expect(dig(found, "table", "count") as? Int == expected, "\(id)")
                #expect(dig(found, "table", "max") as? Int == max)
            }
            #expect(dig(byID[full.name], "verdict") as? String == "critical")
            #expect(dig(byID[full.name], "table", "fill_percent") as? Double == 100)
            #expect(dig(byID[light.name], "verdict") as? String == "ok")
            #expect((json["nearest_max"] as? [String])?.contains(full.name) == true)
            let initial = namespaces.filter { dig($0, "netns", "kind") as? String == "initial" }
            #expect(initial.count == 1)
            #expect((dig(initial.first, "table", "count") as? Int ?? max) < max)
            let sum = namespaces.compactMap { dig($0, "table", "count") as? Int }.reduce(0, +)
            #expect(dig(json, "totals", "entries") as? Int == sum)
            #expect(dig(json, "totals", "namespaces") as? Int == namespaces.count)
            #expect(dig(json, "totals", "slab", "bytes") as? Int ?? 0 > 0)
        }
    }

    @Test(
        "a namespace that vanishes between the scan and the visit is reported, not fatal; an unknown --namespace makes the result partial")
    func vanishedNamespace() throws {
        let kept = try TestNamespace("ns-kept")
        defer { kept.delete() }
        let doomed = try TestNamespace("ns-gone")
        defer { doomed.delete() }
        let entries = [kept.name, doomed.name].compactMap { name in
            NamespaceDirectory.inode(of: .named(name), under: .live).map { NamespaceDirectory.Entry(identifier: .named(name), inode: $0) }
        }
        #expect(entries.count == 2)
        doomed.delete()
        let results = NamespaceVisitor.visit(entries, under: .live) { _ in
            try ConntrackSample.read(from: .live, statPath: KernelPaths.threadConntrackStat).count
        }
        #expect((try? results[0].get()) == 0)
        guard case .failure(let failure) = results[1] else {
            Issue.record("the deleted namespace was read")
            return
        }
        #expect(failure.description == "namespace \(doomed.name): vanished during the scan")

        let result = try Shell.run([
            TestPaths.cttune, "status", "--namespace", kept.name, "--namespace", doomed.name, "--window", "0", "--format", "json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try jsonObject(result)
        #expect(json["partial"] as? Bool == true)
        #expect(dig(json, "totals", "namespaces") as? Int == 1)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("cttune: partial: namespace \(doomed.name): no such namespace"), "\(result.stderr)")
    }

    @Test("the same netlink layer, in a namespace entered by the visitor thread, delivers NEW and DESTROY events with the entry's id")
    func conntrackEvents() throws {
        let namespace = try TestNamespace("events")
        defer { namespace.delete() }
        let inode = try #require(NamespaceDirectory.inode(of: .named(namespace.name), under: .live))
        let entry = NamespaceDirectory.Entry(identifier: .named(namespace.name), inode: inode)
        let results = NamespaceVisitor.visit([entry], under: .live) { _ -> [ConntrackEntry] in
            let netlink = try ConntrackNetlink()
            try netlink.subscribe(to: [.created, .destroyed])
            let tuple = ["-p", "udp", "-s", "10.6.0.1", "-d", "10.6.0.2", "--sport", "7", "--dport", "8"]
            try namespace.exec(["conntrack", "-I"] + tuple + ["-t", "500"])
            try namespace.exec(["conntrack", "-D"] + tuple)
            var seen: [ConntrackEntry] = []
            for _ in 0..<50 where seen.count < 2 {
                _ = try netlink.receiveEvents(timeoutMilliseconds: 100) { seen.append($0) }
            }
            return seen
        }
        let events = try results[0].get()
        #expect(events.map(\.event) == [.created, .destroyed])
        #expect(events.allSatisfy { $0.protocolName == "udp" && $0.id != nil })
        #expect(Set(events.compactMap(\.id)).count == 1)
    }

    @Test("the status units pass systemd-analyze verify, and their ExecStart line, run directly, writes the textfile and prints nothing")
    func statusUnits() throws {
        let directory = try TestPaths.temporaryDirectory("cttune-units")
        defer { try? FileManager.default.removeItem(at: directory) }
        var service = ""
        for unit in ["cttune-apply.service", "cttune-status.service", "cttune-status.timer"] {
            let text = try String(contentsOf: TestPaths.package.appendingPathComponent("contrib/systemd/\(unit)"), encoding: .utf8)
                .replacingOccurrences(of: "@BINDIR@", with: TestPaths.products.path)
            try text.write(to: directory.appendingPathComponent(unit), atomically: true, encoding: .utf8)
            if unit == "cttune-status.service" { service = text }
        }
        if Fleet.has("systemd-analyze") {
            let units = ["cttune-apply.service", "cttune-status.service", "cttune-status.timer"].map {
                directory.appendingPathComponent($0).path
            }
            let verified = try Shell.run(["systemd-analyze", "verify", "--man=no"] + units)
            #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        }
        let execStart = try #require(service.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }).dropFirst("ExecStart=".count)
        #expect(execStart.contains("--quiet") && execStart.contains("--textfile"))
        let textfile = directory.appendingPathComponent("cttune.prom").path
        let namespace = try TestNamespace("units")
        defer { namespace.delete() }
        let result = try namespace.run(["env", "CTTUNE_TEXTFILE=\(textfile)", "sh", "-c", String(execStart)])
        // Every namespace on the host is read, other tests' too: the verdict
        // is theirs. --quiet prints nothing when ok, else the one summary line;
        // stderr holds only namespaces that vanished during the scan.
        #expect([0, 1, 2].contains(result.status), "\(result.stderr)")
        #expect(service.contains("\nSuccessExitStatus=1 2\n"))
        let printed = result.stdout.split(separator: "\n")
        #expect(result.status == 0 ? printed.isEmpty : printed.count == 1, "\(result.stdout)")
        #expect(result.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("cttune: partial: namespace ") }, "\(result.stderr)")
        let quiet = try namespace.run([TestPaths.cttune, "status", "--window", "0", "--quiet", "--textfile", textfile])
        #expect(quiet.status == 0 && quiet.stdout.isEmpty && quiet.stderr.isEmpty, "\(quiet.stdout)\(quiet.stderr)")
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("\ncttune_conntrack_entries{"))
    }
}
