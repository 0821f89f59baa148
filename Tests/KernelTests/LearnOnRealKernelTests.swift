import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

/// The loop the tool promises: learn a load from the kernel's own events,
/// plan from what was learned, apply it, and carry the same load without a
/// drop in a table that the load actually fills.
@Suite("learn on the real kernel: a known load is learned, planned and carried", .serialized)
struct LearnOnRealKernelTests {
    /// The generated mix (ct-loadgen): shares are of the TCP flows, exact by construction.
    static let tcpRate = 40.0, udpRate = 20.0, holdSeconds = 1.0
    static let rstShare = 0.15, halfOpenShare = 0.10, orphanShare = 0.05, udpStreamShare = 0.25
    static let burstFactor = 3.0, burstSeconds = 8.0
    static let learnSeconds = 30.0
    /// The load starts this long before learn, whose first dump then finds entries alive.
    static let leadSeconds = 2.0
    static let ports = (server: 18080, orphan: 18081, udp: 18082, unanswered: 18083)
    /// Short enough that every fate is known inside the window: an unanswered
    /// SYN after 5 s, a one-shot UDP flow after 5 s.
    static let learningTimeouts: [(String, Int)] = [
        ("tcp_timeout_syn_sent", 5), ("tcp_timeout_syn_recv", 5), ("tcp_timeout_time_wait", 5), ("tcp_timeout_close", 3),
        ("tcp_timeout_fin_wait", 5), ("tcp_timeout_close_wait", 5), ("tcp_timeout_last_ack", 5), ("udp_timeout", 5),
        ("udp_timeout_stream", 10),
    ]
    /// The rerun's timeouts, pinned in the plan. The plan adds the modelled
    /// GC gap (about half the lifetimes here), so a rerun that lasts the
    /// lifetimes holds at least 45 / (67.5 x headroom 1.25) = 53 % of max
    /// whatever the GC phase, and more as the rerun goes past them.
    static let carriedTimeoutSeconds = 45
    static let rerunSeconds = 60.0

    /// The conntrack rules of the test namespace: track loopback, never
    /// answer SYNs to one port, and hide the FIN and RST of the flows to
    /// another from conntrack (raw priority, before conntrack's output hook
    /// at -200), so those stay ESTABLISHED: orphans.
    static func prepare(_ namespace: TestNamespace) throws {
        try namespace.exec(
            ["nft", "-f", "-"],
            input: """
                table inet cttune_learn {
                  chain input {
                    type filter hook input priority 0; policy accept;
                    ct state established,related accept
                    tcp dport \(ports.unanswered) drop
                  }
                  chain orphans {
                    type filter hook output priority -300; policy accept;
                    tcp dport \(ports.orphan) tcp flags & (fin | rst) != 0 drop
                    tcp sport \(ports.orphan) tcp flags & (fin | rst) != 0 drop
                  }
                }
                """)
    }

    static func loadgen(in namespace: TestNamespace, seconds: Double, rateScale: Double, burst: Bool) throws -> BackgroundProcess {
        var arguments = [
            "ip", "netns", "exec", namespace.name, TestPaths.loadgen, "--seconds", "\(seconds)", "--sample", "0.5",
            "--rate", "\(tcpRate * rateScale)", "--hold", "\(holdSeconds)", "--rst-share", "\(rstShare)",
            "--half-open-share", "\(halfOpenShare)", "--half-open-port", "\(ports.unanswered)", "--orphan-share", "\(orphanShare)",
            "--orphan-port", "\(ports.orphan)", "--udp-rate", "\(udpRate * rateScale)", "--udp-port", "\(ports.udp)",
            "--udp-stream-share", "\(udpStreamShare)", "--port", "\(ports.server)",
        ]
        if burst {
            arguments += ["--burst-factor", "\(burstFactor)", "--burst-at", "\(leadSeconds + 12)", "--burst-seconds", "\(burstSeconds)"]
        }
        return try BackgroundProcess(arguments)
    }

    /// Within `tolerance` (relative) of `expected`.
    static func close(_ value: Double?, _ expected: Double, _ tolerance: Double) -> Bool {
        guard let value else { return false }
        return abs(value - expected) <= tolerance * expected
    }

    // The time limit also covers waiting for the global lock (other suites hold it for minutes).
    @Test(
        "each learned number is within 10 % of the generated mix (20 % burst and orphans); the plan from it carries the load with no drop and a table at least half full",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason), .timeLimit(.minutes(20)))
    func learnPlanCarry() throws {
        let started = Date()
        let namespace = try TestNamespace("learn")
        defer { namespace.delete() }
        try Self.prepare(namespace)
        for (name, seconds) in Self.learningTimeouts { try namespace.setSysctl("net.netfilter.nf_conntrack_\(name)", seconds) }
        let directory = try TestPaths.temporaryDirectory("cttune-learn")
        defer { try? FileManager.default.removeItem(at: directory) }
        let learnedFile = directory.appendingPathComponent("learned.yaml").path

        // 1. Learn while the known mix runs (it starts first and outlasts the window).
        let load = try Self.loadgen(
            in: namespace, seconds: Self.learnSeconds + Self.leadSeconds + 3, rateScale: 1, burst: true)
        Thread.sleep(forTimeInterval: Self.leadSeconds)
        let learn = try BackgroundProcess([
            TestPaths.cttune, "learn", "--seconds", "\(Int(Self.learnSeconds))", "--namespace", namespace.name,
            "--format", "json", "--output", learnedFile,
        ])
        let (printed, learnEnded) = learn.wait(atMost: Self.learnSeconds + 30)
        let (_, loadEnded) = load.wait(atMost: 30)
        try #require(learnEnded && loadEnded && learn.exitStatus == 0, "learn exited \(learn.exitStatus): \(printed)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        let measured = try #require(report["measurements"] as? [String: [String: Any]])
        func value(_ name: String) -> Double? { (measured[name]?["value"] as? NSNumber)?.doubleValue }
        print("learned: \(measured.mapValues { $0["value"] ?? "null" }) events \(report["events"] ?? "-")")

        // The burst lies inside the window, so the mean rate over it is this much above the base rate.
        let scale = 1 + (Self.burstFactor - 1) * Self.burstSeconds / Self.learnSeconds
        let closing = 1 - Self.orphanShare - Self.halfOpenShare
        let expectations: [(String, Double, Double)] = [
            ("tcp_new_per_second", Self.tcpRate * scale, 0.10),
            ("udp_new_per_second", Self.udpRate * scale, 0.10),
            ("tcp_established_seconds", Self.holdSeconds, 0.10),
            ("tcp_rst_close_ratio", Self.rstShare / closing, 0.10),
            ("tcp_half_open_ratio", Self.halfOpenShare, 0.10),
            ("tcp_orphan_ratio", Self.orphanShare, 0.20),
            ("udp_stream_ratio", Self.udpStreamShare, 0.10),
            ("burst_factor", Self.burstFactor / scale, 0.20),
        ]
        for (name, expected, tolerance) in expectations {
            #expect(
                Self.close(value(name), expected, tolerance),
                "\(name): learned \(value(name).map { String($0) } ?? "null"), generated \(expected) (± \(Int(tolerance * 100)) %)")
        }
        #expect((value("other_per_second") ?? 1) < 0.5, "nothing but TCP and UDP was generated")
        #expect(measured["tcp_orphan_ratio"]?["estimate"] as? Bool == true, "orphans are always marked as an estimate")
        #expect(measured["burst_factor"]?["estimate"] as? Bool == true, "a 30 s window cannot measure the busiest minute")
        let events = try #require(report["events"] as? [String: Any])
        #expect((events["preexisting"] as? Int ?? 0) > 0, "the load's entries from before the window were found by the first dump")

        // 2. Plan from the learned profile as written, with the rerun's timeouts pinned.
        let carried = directory.appendingPathComponent("carried.yaml").path
        let timeoutKeys = [
            "tcp_timeout_established", "tcp_timeout_syn_sent", "tcp_timeout_syn_recv", "tcp_timeout_time_wait",
            "tcp_timeout_close", "tcp_timeout_fin_wait", "tcp_timeout_close_wait", "tcp_timeout_last_ack", "udp_timeout",
            "udp_timeout_stream",
        ]
        try
            (["extends: \(learnedFile)", "timeouts:"]
            + timeoutKeys.map { "  nf_conntrack_\($0): \(Self.carriedTimeoutSeconds)" })
            .joined(separator: "\n").appending("\n").write(toFile: carried, atomically: true, encoding: .utf8)
        let planJSON = try Shell.check([TestPaths.cttune, "plan", "--profile", carried, "--format", "json"])
        let plan = try PrintedPlan(planJSON)
        let plannedMax = try #require(plan.planned(ConntrackSetting.max.key))

        // 3. Apply: the max globally (restored afterwards), the timeouts in the namespace; rerun the load at its peak rate.
        print("learn loop: learned and planned after \(Int(Date().timeIntervalSince(started))) s")
        try GlobalConntrack.withExclusiveAccess {
            print("learn loop: global lock taken after \(Int(Date().timeIntervalSince(started))) s")
            let hostCount = try GlobalConntrack.read("/proc/sys/net/netfilter/nf_conntrack_count")
            try #require(hostCount < plannedMax / 2, "the initial namespace's \(hostCount) entries stay well below the planned max")
            try GlobalConntrack.write(GlobalConntrack.maxPath, plannedMax)
            for key in timeoutKeys {
                let planned = try #require(plan.planned("net.netfilter.nf_conntrack_\(key)"), "the plan sets \(key)")
                try namespace.setSysctl("net.netfilter.nf_conntrack_\(key)", planned)
            }
            let dropsBefore = try conntrackDrops(in: namespace)
            let rerun = try Self.loadgen(in: namespace, seconds: Self.rerunSeconds, rateScale: Self.burstFactor, burst: false)
            let (output, ended) = rerun.wait(atMost: Self.rerunSeconds + 30)
            try #require(ended, "ct-loadgen ended")
            let run = try LoadRun(output)
            let drops = try conntrackDrops(in: namespace) - dropsBefore
            let fill = Double(run.peakCount) / Double(plannedMax)
            print(
                "learn loop: \(Int(Date().timeIntervalSince(started))) s, planned max \(plannedMax), rerun \(run.rate) TCP/s, peak \(run.peakCount) (\(Int(fill * 100)) %), drops \(drops), failures \(run.failures)"
            )
            #expect(drops == 0, "no packet dropped for a full table")
            #expect(run.peakCount < plannedMax)
            #expect(fill >= 0.5, "the table the plan sized is used: peak \(run.peakCount) of max \(plannedMax)")
        }
    }

    @Test(
        "learn refuses, exit 1 with one stderr line, when nf_conntrack_events is 0",
        .enabled(if: TestHost.realKernel, TestHost.realKernelReason))
    func refusesWithoutEvents() throws {
        let namespace = try TestNamespace("learnoff")
        defer { namespace.delete() }
        try namespace.setSysctl("net.netfilter.nf_conntrack_events", 0)
        let result = try Shell.run([TestPaths.cttune, "learn", "--seconds", "1", "--namespace", namespace.name])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("nf_conntrack_events") && lines[0].contains("is 0"), "\(result.stderr)")
        let usage = try Shell.run([TestPaths.cttune, "learn", "--seconds", "0"])
        #expect(usage.status == 64, "a window of 0 s is a usage error")
    }
}
