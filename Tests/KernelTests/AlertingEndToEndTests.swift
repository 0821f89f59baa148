import Foundation
import TestSupport
import Testing

/// Debian's node_exporter and Prometheus, run by the test on loopback ports.
private enum Monitoring {
    static let nodeExporter = "/usr/bin/prometheus-node-exporter"
    static let prometheus = "/usr/bin/prometheus"
    static let python = "/usr/bin/python3"
    static let curl = "/usr/bin/curl"
    static let isAvailable = [nodeExporter, prometheus, python, curl].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    static let rules = TestPaths.package.appendingPathComponent("contrib/prometheus/cttune.rules.yml").path
    static let statusUnit = TestPaths.package.appendingPathComponent("contrib/systemd/cttune-status.service").path

    /// A loopback TCP port nothing listens on now (the kernel's pick for port 0).
    static func freePort() throws -> Int {
        let output = try Shell.check([
            python, "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])",
        ])
        return try #require(Int(output.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The body of an HTTP GET on loopback; nil when nothing answers.
    static func get(_ url: String) -> String? {
        guard let result = try? Shell.run([curl, "-sf", "--max-time", "5", url]), result.status == 0 else { return nil }
        return result.stdout
    }

    /// Polls `condition` every half second for at most `seconds`.
    static func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return condition()
    }

    /// cttune-status.service's command line, as the timer runs it, with the
    /// test's binary and textfile: `/etc/default/cttune`'s CTTUNE_TEXTFILE.
    static func statusCommand(textfile: String) throws -> [String] {
        let unit = try String(contentsOfFile: statusUnit, encoding: .utf8)
        let line = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        return line.dropFirst("ExecStart=".count).split(separator: " ").map { word in
            word == "${CTTUNE_TEXTFILE}" ? textfile : word.replacingOccurrences(of: "@BINDIR@/cttune", with: TestPaths.cttune)
        }
    }

    /// A server started through `sh -c 'exec … 2>&1'`, so its log is kept for a failure message.
    static func start(_ arguments: [String]) throws -> BackgroundProcess {
        try BackgroundProcess(["sh", "-c", "exec \"$0\" \"$@\" 2>&1"] + arguments)
    }

    /// Stops a server as its init system would: SIGTERM, then SIGKILL after 10 s; returns its log.
    static func stop(_ process: BackgroundProcess) -> String {
        if let pid = process.pid { kill(pid, SIGTERM) }
        return process.wait(atMost: 10).output
    }

    /// The `state` of the alert `name` with label netns=`netns` in
    /// /api/v1/alerts ("pending", "firing"), or nil when it is not active.
    static func alertState(_ base: String, _ name: String, netns: String) -> String? {
        guard let body = get("\(base)/api/v1/alerts"),
            let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let alerts = (json["data"] as? [String: Any])?["alerts"] as? [[String: Any]]
        else { return nil }
        let alert = alerts.first {
            let labels = $0["labels"] as? [String: String]
            return labels?["alertname"] == name && labels?["netns"] == netns
        }
        return alert?["state"] as? String
    }
}

@Suite(
    "alerting end to end: cttune's timer command, node_exporter's textfile collector, Prometheus with the shipped rules",
    .serialized, .enabled(if: TestHost.realKernel, TestHost.realKernelReason),
    .enabled(if: Monitoring.isAvailable, "needs prometheus, prometheus-node-exporter, python3 and curl (scripts/install-deps.sh test)"))
struct AlertingEndToEndTests {
    /// Above the critical fill (0.9), below max: nothing is dropped.
    static let fillShare = 0.93
    /// Fills larger than this take too long for the suite: the test says it skipped.
    static let largestFill = 600_000

    @Test(
        "a namespace filled past the critical threshold: CttuneConntrackTableFull fires in Prometheus after its for:, and resolves once drained"
    )
    func criticalAlertFiresAndResolves() throws {
        // Read under the lock, as the fill depends on it: a holder that shrank
        // the max for a while (status on the real kernel) restores it when it ends.
        let max = try GlobalConntrack.withExclusiveAccess { try GlobalConntrack.read(GlobalConntrack.maxPath) }
        let wanted = Int((Double(max) * Self.fillShare).rounded(.up))
        guard wanted <= Self.largestFill else {
            print(
                "skipped: nf_conntrack_max \(max) needs \(wanted) entries to pass 90 %, more than this test creates (\(Self.largestFill))")
            return
        }
        let directory = try TestPaths.temporaryDirectory("cttune-alerting")
        defer { try? FileManager.default.removeItem(at: directory) }
        let textDirectory = directory.appendingPathComponent("textfile")
        try FileManager.default.createDirectory(at: textDirectory, withIntermediateDirectories: true)
        let status = try Monitoring.statusCommand(textfile: textDirectory.appendingPathComponent("cttune.prom").path)
        #expect(status.contains("--all-namespaces") && status.contains("--textfile"))

        let exporterPort = try Monitoring.freePort()
        let exporter = try Monitoring.start([
            Monitoring.nodeExporter, "--web.listen-address=127.0.0.1:\(exporterPort)", "--collector.disable-defaults",
            "--collector.textfile", "--collector.textfile.directory=\(textDirectory.path)",
        ])
        defer { _ = Monitoring.stop(exporter) }
        let prometheusPort = try Monitoring.freePort()
        let config = directory.appendingPathComponent("prometheus.yml")
        try """
        global: {scrape_interval: 1s, evaluation_interval: 1s}
        rule_files: ["\(Monitoring.rules)"]
        scrape_configs:
          - job_name: node
            static_configs: [{targets: ["127.0.0.1:\(exporterPort)"]}]
        """.write(to: config, atomically: true, encoding: .utf8)
        let prometheus = try Monitoring.start([
            Monitoring.prometheus, "--config.file=\(config.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(prometheusPort)",
        ])
        defer { _ = Monitoring.stop(prometheus) }
        let base = "http://127.0.0.1:\(prometheusPort)"
        try #require(
            Monitoring.waitFor(30) {
                Monitoring.get("\(base)/-/ready") != nil && Monitoring.get("http://127.0.0.1:\(exporterPort)/metrics") != nil
            },
            "Prometheus and node_exporter ready on loopback")

        let namespace = try TestNamespace("alert")
        defer { namespace.delete() }
        try namespace.trackLoopback()
        // The global max must not move while the table is full: the lock keeps
        // other tests from lowering it; nothing global is changed here.
        try GlobalConntrack.withExclusiveAccess {
            // Every holder restores what it changed: the max is what was read above.
            try #require(try GlobalConntrack.read(GlobalConntrack.maxPath) == max, "the global max moved between two holders")
            try namespace.setSysctl("net.netfilter.nf_conntrack_udp_timeout", 600)
            // Unreplied UDP entries: one per (source port, destination port) pair.
            try namespace.exec([
                Monitoring.python, "-c",
                """
                import socket
                wanted, sent = \(wanted), 0
                while sent < wanted:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    for port in range(1, 65536):
                        if sent == wanted: break
                        s.sendto(b'x', ('127.0.0.1', port)); sent += 1
                    s.close()
                """,
            ])
            let count = try namespace.sysctl("net.netfilter.nf_conntrack_count")
            try #require(Double(count) >= 0.9 * Double(max), "filled \(count) of \(max)")

            let started = Date()
            var firing = false
            // 240 s: the for: minute plus status runs that a loaded machine slows
            // (each counts the full table: it is over the census threshold).
            var lastStatus: Shell.Result?
            while !firing && Date().timeIntervalSince(started) < 240 {
                lastStatus = try Shell.run(status)
                firing = Monitoring.waitFor(3) {
                    Monitoring.alertState(base, "CttuneConntrackTableFull", netns: namespace.name) == "firing"
                }
            }
            let firedAfter = Date().timeIntervalSince(started)
            // What the timer wrote for this namespace and in total, for a failure message.
            func textfileLines(_ name: String) -> String {
                let text = (try? String(contentsOf: textDirectory.appendingPathComponent("cttune.prom"), encoding: .utf8)) ?? "(unreadable)"
                return text.split(separator: "\n").filter { $0.contains(name) || $0.hasPrefix("cttune_status") || $0.contains("partial") }
                    .prefix(40).joined(separator: "\n")
            }
            if !firing {
                Issue.record(
                    """
                    CttuneConntrackTableFull not firing within 240 s (for: 1m); alerts: \(Monitoring.get("\(base)/api/v1/alerts") ?? "none")
                    last status run: exit \(lastStatus?.status ?? -1), \(lastStatus?.stderr.suffix(500) ?? "")
                    count now: \((try? namespace.sysctl("net.netfilter.nf_conntrack_count")) ?? -1), max \(max)
                    fill ratios scraped: \(Monitoring.get("\(base)/api/v1/query?query=cttune_conntrack_fill_ratio")?.prefix(1500) ?? "none")
                    textfile: \(textfileLines(namespace.name))
                    Prometheus: \(Monitoring.stop(prometheus).suffix(2000))
                    node_exporter: \(Monitoring.stop(exporter).suffix(2000))
                    """)
                return
            }
            #expect(firedAfter >= 55, "not before its for: of 1 minute (fired after \(Int(firedAfter)) s)")
            let query = Monitoring.get("\(base)/api/v1/query?query=cttune_conntrack_fill_ratio") ?? ""
            #expect(query.contains("\"netns\":\"\(namespace.name)\""), "the netns series scraped: \(query.prefix(400))")

            // Drained: the next timer run writes a low fill and the alert resolves.
            try namespace.exec(["conntrack", "-F"])
            let resolved = Monitoring.waitFor(30) {
                _ = try? Shell.run(status)
                return Monitoring.alertState(base, "CttuneConntrackTableFull", netns: namespace.name) == nil
            }
            #expect(resolved, "CttuneConntrackTableFull resolved within 30 s of the drain")
            print("alerting end to end: \(count) of \(max) entries; firing after \(Int(firedAfter)) s; resolved: \(resolved)")
        }
    }
}
