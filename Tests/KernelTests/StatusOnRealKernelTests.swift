import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// `cttune status` run inside a namespace; the JSON object it printed.
private func status(in namespace: TestNamespace, _ arguments: [String]) throws -> (code: Int32, json: [String: Any]) {
    let result = try namespace.run([TestPaths.cttune, "status", "--format", "json"] + arguments)
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    return (result.status, try #require(object, "status printed no JSON object: \(result.stdout) \(result.stderr)"))
}

/// A value in nested JSON objects: `dig(json, "table", "count")`.
private func dig(_ object: Any?, _ keys: String...) -> Any? {
    keys.reduce(object) { ($0 as? [String: Any])?[$1] }
}

/// A number in nested JSON objects; -1 when absent, so `> 0` checks fail.
private func number(_ object: Any?, _ keys: String...) -> Double {
    (keys.reduce(object) { ($0 as? [String: Any])?[$1] } as? NSNumber)?.doubleValue ?? -1
}

/// ct-loadgen inside `namespace`: `rate` connections/s for `seconds`; a short
/// connect timeout so a dropped SYN costs 50 ms, not a second.
private func startLoad(in namespace: TestNamespace, rate: Int, seconds: Int, port: Int) throws -> BackgroundProcess {
    try BackgroundProcess([
        "ip", "netns", "exec", namespace.name, TestPaths.loadgen, "--rate", String(rate),
        "--seconds", String(seconds), "--connect-timeout-ms", "50", "--port", String(port),
    ])
}

@Suite("status on the real kernel", .serialized, .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
struct StatusOnRealKernelTests {
    static let countPath = "/proc/sys/net/netfilter/nf_conntrack_count"
    /// Small enough for 100 connections/s to fill it in 3 s, far above the
    /// initial namespace's own count here (about 0).
    static let smallMax = 300

    @Test(
        "a load that overflows a small table: rising count, drops, a critical table-full verdict with log evidence; raised max leaves a warning that says when"
    )
    func overflowIsCritical() throws {
        let namespace = try TestNamespace("status")
        defer { namespace.delete() }
        try namespace.trackLoopback()
        let baseline = try status(in: namespace, ["--window", "0"])
        #expect(baseline.code == 0)
        #expect(number(baseline.json, "counters", "drop") == 0)
        let inode = try #require(dig(baseline.json, "netns", "inode") as? Int)
        #expect(dig(baseline.json, "netns", "kind") as? String == "non-initial")

        try GlobalConntrack.withExclusiveAccess {
            let savedMax = try GlobalConntrack.read(GlobalConntrack.maxPath)
            try #require(
                try GlobalConntrack.read(Self.countPath) < Self.smallMax / 2,
                "the initial namespace holds too many entries to shrink the max safely")
            try GlobalConntrack.write(GlobalConntrack.maxPath, Self.smallMax)
            let load = try startLoad(in: namespace, rate: 100, seconds: 10, port: 18091)

            // --watch from the start: the count climbs ~100/s, then the table is full and SYNs are dropped.
            let watch = try namespace.run([TestPaths.cttune, "status", "--watch", "1", "--count", "5", "--format", "json"])
            let rows = watch.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
            #expect(watch.status == 2)
            #expect(rows.count == 5)
            let counts = rows.map { number($0, "table", "count") }
            #expect(number(rows.first, "window", "entries_per_second") > 50)
            #expect(counts.count == 5 && counts[1] > counts[0])
            #expect(number(rows.first, "window", "seconds") >= 0.9 && number(rows.first, "window", "seconds") < 2)
            #expect(rows.contains { number($0, "window", "drops_per_second") > 0 && dig($0, "verdict") as? String == "critical" })

            // One check while the load still runs: drops inside its window.
            let during = try status(in: namespace, [])
            #expect(during.code == 2)
            #expect(dig(during.json, "verdict") as? String == "critical")
            #expect(number(during.json, "table", "count") >= 0.9 * Double(Self.smallMax))
            #expect(number(during.json, "table", "max") == Double(Self.smallMax))
            #expect(number(during.json, "window", "rises", "drop") > 0)
            #expect((dig(during.json, "summary") as? String)?.contains("packets dropped in the last") == true)
            #expect(number(during.json, "entries", "tcp_states", "TIME_WAIT") > 0)
            #expect(dig(during.json, "fix", "profile") as? String == "web-frontend")
            if dig(during.json, "kernel_log", "readable") as? Bool == true {
                #expect(number(during.json, "kernel_log", "table_full_lines") > 0)
                let recent = dig(during.json, "kernel_log", "recent") as? [[String: Any]] ?? []
                #expect((recent.last?["message"] as? String)?.contains("table full in netns \(inode)") == true)
            }

            // The same state for people: the verdict line first, then the fix.
            let text = try namespace.run([TestPaths.cttune, "status", "--window", "0"])
            #expect(text.status == 2)
            #expect(text.stdout.hasPrefix("CRITICAL: table "))
            #expect(text.stdout.contains("fix: cttune plan --profile web-frontend --explain"))

            // The textfile, read back by prometheus_client's parser.
            if PrometheusParser.isAvailable {
                let directory = try TestPaths.temporaryDirectory()
                defer { try? FileManager.default.removeItem(at: directory) }
                let path = directory.appendingPathComponent("cttune.prom").path
                let written = try namespace.run([TestPaths.cttune, "status", "--window", "0", "--textfile", path])
                #expect(written.status == 2)
                let families = try PrometheusParser.parse(path)
                let labels = ["netns": String(inode)]
                // The run's verdict has no label; the namespace's is cttune_namespace_status{netns}.
                #expect(PrometheusParser.value(families, "cttune_status") == 2)
                #expect(PrometheusParser.value(families, "cttune_namespace_status", labels) == 2)
                #expect(families["cttune_conntrack_drop"]?.type == "counter")
                #expect((PrometheusParser.value(families, "cttune_conntrack_drop", labels) ?? 0) > 0)
                // The max is global: no netns label.
                #expect(PrometheusParser.value(families, "cttune_conntrack_max") == Double(Self.smallMax))
                #expect(
                    (PrometheusParser.value(
                        families, "cttune_conntrack_tcp_state_entries", labels.merging(["state": "TIME_WAIT"]) { a, _ in a }) ?? 0) > 0)
            }

            let loadResult = try JSONSerialization.jsonObject(with: Data(load.wait().utf8)) as? [String: Any]
            #expect(number(loadResult, "failures") > 0, "the small table made connections fail")

            // Raised max: the entries fit, but the drops remain in the counters.
            try GlobalConntrack.write(GlobalConntrack.maxPath, savedMax)
            let after = try status(in: namespace, [])
            #expect(after.code == 1)
            #expect(dig(after.json, "verdict") as? String == "warning")
            let summary = dig(after.json, "summary") as? String ?? ""
            #expect(summary.contains("packets dropped since the namespace was created"))
            #expect(summary.contains("none in the last 1.0 s"))
            if dig(after.json, "kernel_log", "readable") as? Bool == true {
                #expect(summary.contains("ago (last \"table full\" kernel log line)"))
            }
        }
    }

    @Test("the same load with the max at its normal size is ok: the count rises, nothing is dropped")
    func normalMaxIsOk() throws {
        let namespace = try TestNamespace("status")
        defer { namespace.delete() }
        try namespace.trackLoopback()
        try GlobalConntrack.withExclusiveAccess {
            try #require(try GlobalConntrack.read(GlobalConntrack.maxPath) >= 65536)
            let load = try startLoad(in: namespace, rate: 100, seconds: 4, port: 18092)
            Thread.sleep(forTimeInterval: 1.5)
            let during = try status(in: namespace, [])
            _ = load.wait()
            #expect(during.code == 0)
            #expect(dig(during.json, "verdict") as? String == "ok")
            #expect(number(during.json, "window", "entries_per_second") > 50)
            #expect(number(during.json, "table", "count") > 100)
            #expect(number(during.json, "counters", "drop") == 0)
            #expect(dig(during.json, "fix") is NSNull)
        }
    }

    @Test("--watch without --count runs until Ctrl-C, then exits cleanly with the rows so far and the verdict's code")
    func watchStopsOnInterrupt() throws {
        let namespace = try TestNamespace("status")
        defer { namespace.delete() }
        let watch = try BackgroundProcess(["ip", "netns", "exec", namespace.name, TestPaths.cttune, "status", "--watch", "1"])
        Thread.sleep(forTimeInterval: 2.5)
        watch.interrupt()
        let (output, endedInTime) = watch.wait(atMost: 1.5)
        let lines = output.split(separator: "\n")
        #expect(endedInTime, "status --watch still ran 1.5 s after SIGINT")
        #expect(watch.exitStatus == 0)
        #expect(lines.first?.hasPrefix("TIME ") == true)
        #expect(lines.count == 3)  // header and the samples at 1 s and 2 s
        #expect(lines.dropFirst().allSatisfy { $0.hasSuffix("ok") })
    }

    @Test("without root, status still judges from the count and counters; the census (EPERM) makes it partial, in one stderr line")
    func worksWithoutRoot() throws {
        let namespace = try TestNamespace("status")
        defer { namespace.delete() }
        let result = try namespace.run([
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            TestPaths.cttune, "status", "--format", "json", "--window", "0", "--census",
        ])
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(result.status == 0, "\(result.stderr)")
        #expect(dig(json, "verdict") as? String == "ok")
        #expect(dig(json, "partial") as? Bool == true)
        #expect(number(json, "table", "max") > 0)
        #expect(dig(json, "entries") is NSNull)
        #expect((dig(json, "entries_unreadable_reason") as? String)?.contains("operation not permitted") == true)
        let stderrLines = result.stderr.split(separator: "\n")
        #expect(stderrLines.count == 1 && stderrLines[0].hasPrefix("cttune: partial: the census failed"), "\(result.stderr)")
        #expect(dig(json, "kernel_log", "readable") as? Bool == false)
    }

    @Test(
        "usage errors exit 64 and an unwritable textfile is UNKNOWN (3) naming the path",
        arguments: [
            (["--count", "2"], Int32(64), "--count needs --watch"),
            (["--watch", "0"], 64, "--watch must be between"),
            (["--watch", "1", "--textfile", "x.prom"], 64, "--textfile writes one snapshot"),
            (["--window", "0", "--textfile", "/nonexistent-cttune-dir/x.prom"], 3, "cannot write /nonexistent-cttune-dir/x.prom"),
        ])
    func usageAndUnknown(arguments: [String], code: Int32, message: String) throws {
        let namespace = try TestNamespace("status")
        defer { namespace.delete() }
        let result = try namespace.run([TestPaths.cttune, "status"] + arguments)
        #expect(result.status == code)
        #expect(result.stderr.contains(message))
    }
}
